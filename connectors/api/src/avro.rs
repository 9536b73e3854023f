//! A writer schema of Confluent Avro payloads, parsed once per schema id and shared by every record written
//! with it: generic JSON decoding, and typed decoding into generated types with one cached
//! [`ursa_avro::ConfluentDecoder`] per type.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock, RwLock};

use ursa_avro::schema::SchemaSet;
use ursa_avro::{AvroRecord, ConfluentDecoder};

/// A parsed writer schema (with the schemas its references named) and the typed decoders made for it.
pub struct AvroWriter {
    id: u32,
    set: SchemaSet,
    /// The JSON program of the schema (field keys, enum symbols and punctuation as text), made on the first
    /// JSON write.
    json_plan: OnceLock<ursa_avro::value::JsonPlan>,
    /// The length of the last JSON text written, to size the next one's buffer.
    text_len: std::sync::atomic::AtomicUsize,
    /// The self-contained form (references inlined), made on the first typed decode.
    self_contained: OnceLock<String>,
    typed: TypedDecoders,
}

impl fmt::Debug for AvroWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AvroWriter")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl AvroWriter {
    /// The writer schema `id`, parsed as `set` (the schema itself is the set's last root).
    pub fn new(id: u32, set: SchemaSet) -> AvroWriter {
        AvroWriter {
            id,
            set,
            json_plan: OnceLock::new(),
            text_len: std::sync::atomic::AtomicUsize::new(0),
            self_contained: OnceLock::new(),
            typed: TypedDecoders::default(),
        }
    }

    /// Parses a self-contained schema (tests and sinks that know their schema).
    pub fn parse(id: u32, schema: &str) -> Result<AvroWriter, ursa_avro::Error> {
        let set = SchemaSet::parse_str(schema).map_err(ursa_avro::Error::from)?;
        Ok(AvroWriter::new(id, set))
    }

    /// The registry schema id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The parsed schema set.
    pub fn schema_set(&self) -> &SchemaSet {
        &self.set
    }

    /// The full name of the writer's top-level record (or enum, fixed), e.g. `com.teddy.child.ChildRegistered`;
    /// `None` for a primitive, array, map or union schema.
    pub fn record_name(&self) -> Option<String> {
        match &self.set.last_root().kind {
            ursa_avro::schema::SchemaKind::Named(id) => Some(self.set.named(*id).name.fullname()),
            _ => None,
        }
    }

    /// Decodes a datum (without the Confluent header) into generic JSON.
    pub fn decode_json(&self, datum: &[u8]) -> Result<serde_json::Value, ursa_avro::Error> {
        ursa_avro::value::decode_json(&self.set, self.set.last_root(), datum)
    }

    /// Appends a datum's (without the Confluent header) JSON text to `out`: the text of [`Self::decode_json`]'s
    /// value, written without building it. On an error `out` is left as it was.
    pub fn write_json(&self, datum: &[u8], out: &mut Vec<u8>) -> Result<(), ursa_avro::Error> {
        let plan = self
            .json_plan
            .get_or_init(|| ursa_avro::value::JsonPlan::new(&self.set, self.set.last_root()));
        ursa_avro::value::write_json_planned(&self.set, plan, datum, out)
    }

    /// A datum's JSON text in a buffer of its own, sized from the last one written with this schema (one
    /// allocation, no regrowth, for datums of similar size).
    pub fn json_text(&self, datum: &[u8]) -> Result<Vec<u8>, ursa_avro::Error> {
        use std::sync::atomic::Ordering;
        let last = self.text_len.load(Ordering::Relaxed);
        let mut out = Vec::with_capacity((last + last / 8).max(datum.len() * 2) + 16);
        self.write_json(datum, &mut out)?;
        self.text_len.store(out.len(), Ordering::Relaxed);
        Ok(out)
    }

    /// Decodes a Confluent-framed payload into the generated type `T` (schema resolution from this writer
    /// schema; the plan is made once per type).
    pub fn decode_typed<T: AvroRecord>(&self, framed: &[u8]) -> Result<T, ursa_avro::Error> {
        let decoder = self.typed.get::<T>();
        decoder.decode(framed, |_| Ok(self.self_contained().to_owned()))
    }

    fn self_contained(&self) -> &str {
        self.self_contained
            .get_or_init(|| self.set.full_json(self.set.last_root()).to_string())
    }
}

/// One [`ConfluentDecoder`] per generated type.
#[derive(Default)]
struct TypedDecoders {
    by_type: RwLock<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl TypedDecoders {
    fn get<T: AvroRecord>(&self) -> Arc<ConfluentDecoder<T>> {
        let id = TypeId::of::<T>();
        let found = self.by_type.read().ok().and_then(|m| m.get(&id).cloned());
        let any = match found {
            Some(any) => any,
            None => match self.by_type.write() {
                Ok(mut m) => Arc::clone(
                    m.entry(id)
                        .or_insert_with(|| Arc::new(ConfluentDecoder::<T>::new())),
                ),
                Err(_) => return Arc::new(ConfluentDecoder::new()),
            },
        };
        any.downcast::<ConfluentDecoder<T>>()
            .unwrap_or_else(|_| Arc::new(ConfluentDecoder::new()))
    }
}
