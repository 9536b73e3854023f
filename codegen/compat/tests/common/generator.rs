//! A seeded generator of schema evolutions: a random base schema (records nesting records, arrays, maps,
//! unions, enums with and without defaults, fixed, namespaces, recursion) and a mutated copy (fields added or
//! removed with and without defaults, promotions both ways, union widening and narrowing, enum symbols and
//! defaults, renames with and without aliases, fixed sizes, namespaces, nested changes).

use serde_json::{Map, Value, json};

/// splitmix64: small, seeded, deterministic.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// `true` with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum P {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
}

const PRIMS: [P; 8] = [
    P::Null,
    P::Boolean,
    P::Int,
    P::Long,
    P::Float,
    P::Double,
    P::Bytes,
    P::String,
];

impl P {
    fn name(self) -> &'static str {
        match self {
            P::Null => "null",
            P::Boolean => "boolean",
            P::Int => "int",
            P::Long => "long",
            P::Float => "float",
            P::Double => "double",
            P::Bytes => "bytes",
            P::String => "string",
        }
    }

    /// A valid logical type for this primitive, as extra attributes.
    fn logical(self, rng: &mut Rng) -> Option<Value> {
        Some(match self {
            P::Int => json!({"logicalType": rng.pick(&["date", "time-millis"])}),
            P::Long => {
                json!({"logicalType": rng.pick(&["timestamp-millis", "timestamp-micros", "local-timestamp-millis", "time-micros"])})
            }
            P::Bytes => {
                let precision = 4 + rng.below(8);
                json!({"logicalType": "decimal", "precision": precision, "scale": rng.below(3)})
            }
            P::String => json!({"logicalType": "uuid"}),
            _ => return None,
        })
    }
}

/// A type in the model; named types are indices into [`Model::defs`].
#[derive(Debug, Clone)]
pub enum T {
    Prim(P, Option<Value>),
    Array(Box<T>),
    Map(Box<T>),
    Union(Vec<T>),
    Ref(usize),
}

#[derive(Debug, Clone)]
pub struct Fld {
    pub name: String,
    pub ty: T,
    pub has_default: bool,
    pub aliases: Vec<String>,
    pub doc: bool,
}

#[derive(Debug, Clone)]
pub enum K {
    Record(Vec<Fld>),
    Enum {
        symbols: Vec<String>,
        default: Option<String>,
    },
    Fixed(usize),
}

#[derive(Debug, Clone)]
pub struct Def {
    pub name: String,
    pub ns: Option<String>,
    /// As written: unqualified aliases are qualified with the type's namespace by Avro Java.
    pub aliases: Vec<String>,
    pub kind: K,
}

#[derive(Debug, Clone)]
pub struct Model {
    pub defs: Vec<Def>,
    pub root: T,
    counter: usize,
}

const NAMESPACES: [Option<&str>; 4] = [
    None,
    Some("com.acme"),
    Some("org.other.v1"),
    Some("com.acme"),
];
const SYMBOLS: [&str; 6] = ["A", "B", "C", "D", "E", "F"];

fn ns_pick(rng: &mut Rng) -> Option<String> {
    rng.pick(&NAMESPACES).map(str::to_owned)
}

/// Why a model cannot be written for all three implementations.
#[derive(Debug)]
pub struct Skip;

impl Model {
    fn fresh(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}{}", self.counter)
    }

    /// A random base schema.
    pub fn generate(rng: &mut Rng) -> Model {
        let mut m = Model {
            defs: Vec::new(),
            root: T::Prim(P::Null, None),
            counter: 0,
        };
        let ns = ns_pick(rng);
        m.root = if rng.chance(88) {
            T::Ref(m.new_record(rng, ns, 0))
        } else {
            m.gen_type(rng, ns.as_deref(), 1)
        };
        m
    }

    fn new_record(&mut self, rng: &mut Rng, ns: Option<String>, depth: usize) -> usize {
        let id = self.defs.len();
        let name = self.fresh("R");
        self.defs.push(Def {
            name,
            ns: ns.clone(),
            aliases: Vec::new(),
            kind: K::Record(Vec::new()),
        });
        let n = 1 + rng.below(if depth == 0 { 6 } else { 4 });
        let mut fields = Vec::new();
        for _ in 0..n {
            fields.push(self.new_field(rng, ns.as_deref(), depth + 1));
        }
        if rng.chance(12) {
            // Recursion: a linked list or a tree.
            let ty = if rng.chance(50) {
                T::Union(vec![T::Prim(P::Null, None), T::Ref(id)])
            } else {
                T::Array(Box::new(T::Ref(id)))
            };
            fields.push(Fld {
                name: self.fresh("next"),
                ty,
                has_default: rng.chance(50),
                aliases: Vec::new(),
                doc: false,
            });
        }
        self.defs[id].kind = K::Record(fields);
        id
    }

    fn new_field(&mut self, rng: &mut Rng, ns: Option<&str>, depth: usize) -> Fld {
        Fld {
            name: self.fresh("f"),
            ty: self.gen_type(rng, ns, depth),
            has_default: rng.chance(40),
            aliases: Vec::new(),
            doc: rng.chance(10),
        }
    }

    fn new_enum(&mut self, rng: &mut Rng, ns: Option<String>) -> usize {
        let n = 1 + rng.below(4);
        let start = rng.below(3);
        let symbols: Vec<String> = SYMBOLS[start..start + n]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let default = rng.chance(35).then(|| rng.pick(&symbols).clone());
        let name = self.fresh("E");
        self.defs.push(Def {
            name,
            ns,
            aliases: Vec::new(),
            kind: K::Enum { symbols, default },
        });
        self.defs.len() - 1
    }

    fn new_fixed(&mut self, rng: &mut Rng, ns: Option<String>) -> usize {
        let name = self.fresh("X");
        self.defs.push(Def {
            name,
            ns,
            aliases: Vec::new(),
            kind: K::Fixed(1 + rng.below(16)),
        });
        self.defs.len() - 1
    }

    fn child_ns(&self, rng: &mut Rng, ns: Option<&str>) -> Option<String> {
        if rng.chance(70) {
            ns.map(str::to_owned)
        } else {
            ns_pick(rng)
        }
    }

    fn prim(rng: &mut Rng) -> T {
        let p = *rng.pick(&PRIMS[1..]);
        let logical = if rng.chance(15) { p.logical(rng) } else { None };
        T::Prim(p, logical)
    }

    /// A random type; `depth` bounds nesting.
    pub fn gen_type(&mut self, rng: &mut Rng, ns: Option<&str>, depth: usize) -> T {
        let roll = if depth >= 3 {
            rng.below(55)
        } else {
            rng.below(100)
        };
        match roll {
            0..=34 => Self::prim(rng),
            35..=42 => {
                let ns = self.child_ns(rng, ns);
                T::Ref(self.new_enum(rng, ns))
            }
            43..=48 => {
                let ns = self.child_ns(rng, ns);
                T::Ref(self.new_fixed(rng, ns))
            }
            49..=54 if !self.defs.is_empty() => T::Ref(rng.below(self.defs.len())),
            49..=54 => Self::prim(rng),
            55..=63 => T::Array(Box::new(self.gen_type(rng, ns, depth + 1))),
            64..=71 => T::Map(Box::new(self.gen_type(rng, ns, depth + 1))),
            72..=87 => self.gen_union(rng, ns, depth),
            _ => {
                let ns = self.child_ns(rng, ns);
                T::Ref(self.new_record(rng, ns, depth))
            }
        }
    }

    fn gen_union(&mut self, rng: &mut Rng, ns: Option<&str>, depth: usize) -> T {
        let n = 1 + rng.below(3);
        let mut branches: Vec<T> = Vec::new();
        if rng.chance(60) {
            branches.push(T::Prim(P::Null, None));
        }
        let mut tries = 0;
        while branches.len() < n + 1 && tries < 10 {
            tries += 1;
            let b = loop {
                let t = self.gen_type(rng, ns, depth + 1);
                if !matches!(t, T::Union(_)) {
                    break t;
                }
            };
            if !branches.iter().any(|x| self.same_key(x, &b)) {
                branches.push(b);
            }
        }
        if rng.chance(25) && branches.len() > 1 {
            branches.swap(0, 1);
        }
        T::Union(branches)
    }

    /// Whether two union branches would clash (same primitive, both arrays, both maps, same named type).
    fn same_key(&self, a: &T, b: &T) -> bool {
        match (a, b) {
            (T::Prim(x, _), T::Prim(y, _)) => x == y,
            (T::Array(_), T::Array(_)) | (T::Map(_), T::Map(_)) | (T::Union(_), T::Union(_)) => {
                true
            }
            (T::Ref(x), T::Ref(y)) => self.full_name(*x) == self.full_name(*y),
            _ => false,
        }
    }

    fn full_name(&self, id: usize) -> String {
        let d = &self.defs[id];
        match &d.ns {
            Some(ns) => format!("{ns}.{}", d.name),
            None => d.name.clone(),
        }
    }

    // ----------------------------------------------------------------------------------------------------
    // Mutations

    fn reachable(&self) -> Vec<usize> {
        fn walk(m: &Model, t: &T, seen: &mut Vec<bool>) {
            match t {
                T::Prim(..) => {}
                T::Array(i) | T::Map(i) => walk(m, i, seen),
                T::Union(bs) => bs.iter().for_each(|b| walk(m, b, seen)),
                T::Ref(id) => {
                    if !seen[*id] {
                        seen[*id] = true;
                        if let K::Record(fields) = &m.defs[*id].kind {
                            fields.iter().for_each(|f| walk(m, &f.ty, seen));
                        }
                    }
                }
            }
        }
        let mut seen = vec![false; self.defs.len()];
        walk(self, &self.root, &mut seen);
        (0..self.defs.len()).filter(|i| seen[*i]).collect()
    }

    fn reachable_of(&self, want: fn(&K) -> bool) -> Vec<usize> {
        self.reachable()
            .into_iter()
            .filter(|i| want(&self.defs[*i].kind))
            .collect()
    }

    /// Every type position inside field types: (record, field, steps into arrays/maps/unions).
    fn slots(&self) -> Vec<(usize, usize, Vec<usize>)> {
        fn walk(t: &T, steps: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
            out.push(steps.clone());
            match t {
                T::Array(i) | T::Map(i) => {
                    steps.push(0);
                    walk(i, steps, out);
                    steps.pop();
                }
                T::Union(bs) => {
                    for (k, b) in bs.iter().enumerate() {
                        steps.push(k);
                        walk(b, steps, out);
                        steps.pop();
                    }
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        for r in self.reachable_of(|k| matches!(k, K::Record(_))) {
            if let K::Record(fields) = &self.defs[r].kind {
                for (fi, f) in fields.iter().enumerate() {
                    let mut paths = Vec::new();
                    walk(&f.ty, &mut Vec::new(), &mut paths);
                    out.extend(paths.into_iter().map(|p| (r, fi, p)));
                }
            }
        }
        out
    }

    fn slot_mut(&mut self, r: usize, fi: usize, steps: &[usize]) -> Option<&mut T> {
        let K::Record(fields) = &mut self.defs[r].kind else {
            return None;
        };
        let mut t = &mut fields.get_mut(fi)?.ty;
        for s in steps {
            t = match t {
                T::Array(i) | T::Map(i) => i,
                T::Union(bs) => bs.get_mut(*s)?,
                _ => return None,
            };
        }
        Some(t)
    }

    fn fields_mut(&mut self, r: usize) -> Option<&mut Vec<Fld>> {
        match &mut self.defs[r].kind {
            K::Record(fields) => Some(fields),
            _ => None,
        }
    }

    /// Applies one random mutation; returns its name.
    pub fn mutate(&mut self, rng: &mut Rng) -> &'static str {
        let records = self.reachable_of(|k| matches!(k, K::Record(_)));
        let enums = self.reachable_of(|k| matches!(k, K::Enum { .. }));
        let fixeds = self.reachable_of(|k| matches!(k, K::Fixed(_)));
        let named = self.reachable();
        let slots = self.slots();
        let choice = rng.below(17);
        match choice {
            0 | 1 if !records.is_empty() => {
                let r = *rng.pick(&records);
                let ns = self.defs[r].ns.clone();
                let mut f = self.new_field(rng, ns.as_deref(), 2);
                f.has_default = choice == 0;
                let fields = self.fields_mut(r);
                if let Some(fields) = fields {
                    let at = rng.below(fields.len() + 1);
                    fields.insert(at, f);
                }
                if choice == 0 {
                    "add field with default"
                } else {
                    "add field without default"
                }
            }
            2 if !records.is_empty() => {
                let r = *rng.pick(&records);
                if let Some(fields) = self.fields_mut(r)
                    && fields.len() > 1
                {
                    let at = rng.below(fields.len());
                    fields.remove(at);
                }
                "remove field"
            }
            3 | 4 if !slots.is_empty() => {
                // Promotions and demotions among primitives, or any primitive change.
                let (r, fi, steps) = rng.pick(&slots).clone();
                let to = *rng.pick(&PRIMS[1..]);
                let widen = rng.chance(50);
                if let Some(t) = self.slot_mut(r, fi, &steps) {
                    if let T::Prim(p, _) = t {
                        let next = match (*p, widen) {
                            (P::Int, true) => *rng.pick(&[P::Long, P::Float, P::Double]),
                            (P::Long, true) => *rng.pick(&[P::Float, P::Double]),
                            (P::Float, true) => P::Double,
                            (P::String, _) => P::Bytes,
                            (P::Bytes, _) => P::String,
                            (P::Double, false) => *rng.pick(&[P::Int, P::Long, P::Float]),
                            (P::Float, false) => *rng.pick(&[P::Int, P::Long]),
                            (P::Long, false) => P::Int,
                            _ => to,
                        };
                        *t = T::Prim(next, None);
                    } else {
                        *t = T::Prim(to, None);
                    }
                }
                "primitive change"
            }
            5 if !slots.is_empty() => {
                let (r, fi, steps) = rng.pick(&slots).clone();
                let ns = self.defs[r].ns.clone();
                let new = self.gen_type(rng, ns.as_deref(), 2);
                if let Some(t) = self.slot_mut(r, fi, &steps) {
                    *t = new;
                }
                "replace a type"
            }
            6 if !slots.is_empty() => {
                let (r, fi, steps) = rng.pick(&slots).clone();
                if let Some(t) = self.slot_mut(r, fi, &steps) {
                    let old = std::mem::replace(t, T::Prim(P::Null, None));
                    *t = match old {
                        T::Union(mut bs)
                            if bs.len() == 2 && matches!(bs[0], T::Prim(P::Null, _)) =>
                        {
                            bs.remove(1)
                        }
                        T::Union(bs) => T::Union(bs),
                        T::Prim(P::Null, l) => T::Prim(P::Null, l),
                        other => T::Union(vec![T::Prim(P::Null, None), other]),
                    };
                }
                "toggle nullable"
            }
            7 if !slots.is_empty() => {
                let (r, fi, steps) = rng.pick(&slots).clone();
                let ns = self.defs[r].ns.clone();
                let extra = loop {
                    let t = self.gen_type(rng, ns.as_deref(), 3);
                    if !matches!(t, T::Union(_)) {
                        break t;
                    }
                };
                let narrow = rng.chance(50);
                let pick = rng.next() as usize;
                if let Some(t) = self.slot_mut(r, fi, &steps) {
                    match t {
                        T::Union(bs) if narrow && bs.len() > 1 => {
                            bs.remove(pick % bs.len());
                        }
                        T::Union(bs) => bs.insert(pick % (bs.len() + 1), extra),
                        other => {
                            let old = std::mem::replace(other, T::Prim(P::Null, None));
                            *other = T::Union(vec![old, extra]);
                        }
                    }
                }
                if narrow {
                    "union narrowing"
                } else {
                    "union widening"
                }
            }
            8 if !enums.is_empty() => {
                let e = *rng.pick(&enums);
                let op = rng.below(4);
                let pick = rng.next() as usize;
                if let K::Enum { symbols, default } = &mut self.defs[e].kind {
                    match op {
                        0 => {
                            if let Some(s) =
                                SYMBOLS.iter().find(|s| !symbols.iter().any(|x| x == *s))
                            {
                                symbols.insert(pick % (symbols.len() + 1), (*s).to_owned());
                            }
                        }
                        1 if symbols.len() > 1 => {
                            let gone = symbols.remove(pick % symbols.len());
                            if default.as_ref() == Some(&gone) {
                                *default = None;
                            }
                        }
                        2 => *default = Some(symbols[pick % symbols.len()].clone()),
                        _ => *default = None,
                    }
                }
                "enum symbols/default"
            }
            9 if !records.is_empty() => {
                let r = *rng.pick(&records);
                let new_name = self.fresh("g");
                let with_alias = rng.chance(60);
                if let Some(fields) = self.fields_mut(r) {
                    let at = rng.below(fields.len());
                    let old = std::mem::replace(&mut fields[at].name, new_name);
                    if with_alias {
                        fields[at].aliases.push(old);
                    }
                }
                if with_alias {
                    "rename field with alias"
                } else {
                    "rename field"
                }
            }
            10 if !records.is_empty() => {
                // An alias naming another field (ambiguous in Java) or a made-up one.
                let r = *rng.pick(&records);
                let made_up = self.fresh("h");
                let pick = rng.next() as usize;
                let other = rng.next() as usize;
                if let Some(fields) = self.fields_mut(r) {
                    let at = pick % fields.len();
                    let alias = if fields.len() > 1 && other % 3 != 0 {
                        fields[(at + 1 + other % (fields.len() - 1)) % fields.len()]
                            .name
                            .clone()
                    } else {
                        made_up
                    };
                    fields[at].aliases.push(alias);
                }
                "field alias"
            }
            11 | 12 if !named.is_empty() => {
                let d = *rng.pick(&named);
                let new_name = self.fresh(match self.defs[d].kind {
                    K::Record(_) => "R",
                    K::Enum { .. } => "E",
                    K::Fixed(_) => "X",
                });
                let alias = rng.below(3);
                let old_full = self.full_name(d);
                let def = &mut self.defs[d];
                let old = std::mem::replace(&mut def.name, new_name);
                match alias {
                    0 => {}
                    1 => def.aliases.push(old_full),
                    _ => def.aliases.push(old),
                }
                "rename type"
            }
            13 if !fixeds.is_empty() => {
                let f = *rng.pick(&fixeds);
                let delta = 1 + rng.below(3);
                if let K::Fixed(size) = &mut self.defs[f].kind {
                    *size = if rng.chance(50) {
                        *size + delta
                    } else {
                        size.saturating_sub(delta).max(1)
                    };
                }
                "fixed size"
            }
            14 if !named.is_empty() => {
                let d = *rng.pick(&named);
                let ns = ns_pick(rng);
                self.defs[d].ns = ns;
                "namespace change"
            }
            15 if !records.is_empty() => {
                let r = *rng.pick(&records);
                let pick = rng.next() as usize;
                if let Some(fields) = self.fields_mut(r) {
                    let at = pick % fields.len();
                    fields[at].has_default = !fields[at].has_default;
                }
                "toggle default"
            }
            _ if !records.is_empty() => {
                let r = *rng.pick(&records);
                let a = rng.next() as usize;
                let b = rng.next() as usize;
                if let Some(fields) = self.fields_mut(r) {
                    let n = fields.len();
                    fields.swap(a % n, b % n);
                }
                "reorder fields"
            }
            _ => "none",
        }
    }

    // ----------------------------------------------------------------------------------------------------
    // Serialisation

    /// The schema JSON. With `qualify_aliases`, unqualified type aliases are written qualified with the
    /// type's namespace, as Avro Java reads them.
    pub fn to_json(&self, qualify_aliases: bool) -> Result<Value, Skip> {
        let mut defined = vec![false; self.defs.len()];
        self.ser(&self.root, None, &mut defined, qualify_aliases)
    }

    fn ser(
        &self,
        t: &T,
        enclosing: Option<&str>,
        defined: &mut Vec<bool>,
        qa: bool,
    ) -> Result<Value, Skip> {
        Ok(match t {
            T::Prim(p, None) => Value::String(p.name().to_owned()),
            T::Prim(p, Some(extra)) => {
                let mut o = Map::new();
                o.insert("type".to_owned(), Value::String(p.name().to_owned()));
                if let Value::Object(e) = extra {
                    for (k, v) in e {
                        o.insert(k.clone(), v.clone());
                    }
                }
                Value::Object(o)
            }
            T::Array(i) => json!({"type": "array", "items": self.ser(i, enclosing, defined, qa)?}),
            T::Map(v) => json!({"type": "map", "values": self.ser(v, enclosing, defined, qa)?}),
            T::Union(bs) => {
                for (i, a) in bs.iter().enumerate() {
                    if matches!(a, T::Union(_)) || bs[..i].iter().any(|b| self.same_key(a, b)) {
                        return Err(Skip);
                    }
                }
                Value::Array(
                    bs.iter()
                        .map(|b| self.ser(b, enclosing, defined, qa))
                        .collect::<Result<_, _>>()?,
                )
            }
            T::Ref(id) => {
                let d = &self.defs[*id];
                if defined[*id] {
                    // Python avro resolves a bare name in the enclosing namespace only.
                    return match (&d.ns, enclosing) {
                        (None, Some(_)) => Err(Skip),
                        _ => Ok(Value::String(self.full_name(*id))),
                    };
                }
                defined[*id] = true;
                let mut o = Map::new();
                let kind = match d.kind {
                    K::Record(_) => "record",
                    K::Enum { .. } => "enum",
                    K::Fixed(_) => "fixed",
                };
                o.insert("type".to_owned(), json!(kind));
                o.insert("name".to_owned(), json!(d.name));
                match (&d.ns, enclosing) {
                    // Python avro reads `"namespace": ""` as no namespace attribute (inheriting the enclosing
                    // one) where Java and the specification mean the null namespace: not generated.
                    (None, Some(_)) => return Err(Skip),
                    (Some(ns), e) if Some(ns.as_str()) != e => {
                        o.insert("namespace".to_owned(), json!(ns));
                    }
                    _ => {}
                }
                if !d.aliases.is_empty() {
                    let aliases: Vec<String> = d
                        .aliases
                        .iter()
                        .map(|a| match (&d.ns, qa && !a.contains('.')) {
                            (Some(ns), true) => format!("{ns}.{a}"),
                            _ => a.clone(),
                        })
                        .collect();
                    o.insert("aliases".to_owned(), json!(aliases));
                }
                match &d.kind {
                    K::Record(fields) => {
                        let mut fs = Vec::new();
                        for f in fields {
                            let mut fo = Map::new();
                            fo.insert("name".to_owned(), json!(f.name));
                            fo.insert(
                                "type".to_owned(),
                                self.ser(&f.ty, d.ns.as_deref(), defined, qa)?,
                            );
                            if f.has_default
                                && let Some(v) = self.default_of(&f.ty, 0)
                            {
                                fo.insert("default".to_owned(), v);
                            }
                            if !f.aliases.is_empty() {
                                fo.insert("aliases".to_owned(), json!(f.aliases));
                            }
                            if f.doc {
                                fo.insert("doc".to_owned(), json!("a field"));
                                fo.insert("order".to_owned(), json!("descending"));
                            }
                            fs.push(Value::Object(fo));
                        }
                        o.insert("fields".to_owned(), Value::Array(fs));
                    }
                    K::Enum { symbols, default } => {
                        o.insert("symbols".to_owned(), json!(symbols));
                        if let Some(d) = default {
                            o.insert("default".to_owned(), json!(d));
                        }
                    }
                    K::Fixed(size) => {
                        o.insert("size".to_owned(), json!(size));
                    }
                }
                Value::Object(o)
            }
        })
    }

    /// A valid default value for `t`, if one is easily made.
    fn default_of(&self, t: &T, depth: usize) -> Option<Value> {
        if depth > 4 {
            return None;
        }
        Some(match t {
            T::Prim(p, _) => match p {
                P::Null => Value::Null,
                P::Boolean => json!(true),
                P::Int | P::Long => json!(7),
                P::Float | P::Double => json!(1.5),
                P::Bytes => json!("ab"),
                P::String => json!("s"),
            },
            T::Array(_) => json!([]),
            T::Map(_) => json!({}),
            T::Union(bs) => self.default_of(bs.first()?, depth + 1)?,
            T::Ref(id) => match &self.defs[*id].kind {
                K::Enum { symbols, .. } => json!(symbols.first()?),
                K::Fixed(size) => json!("a".repeat(*size)),
                K::Record(fields) => {
                    let mut o = Map::new();
                    for f in fields {
                        o.insert(f.name.clone(), self.default_of(&f.ty, depth + 1)?);
                    }
                    Value::Object(o)
                }
            },
        })
    }
}
