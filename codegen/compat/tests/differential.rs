//! Differential test against Python `avro` 1.12's `ReaderWriterCompatibilityChecker` (a port of Avro Java's):
//! thousands of seeded schema evolutions, each checked both ways, must get the same verdict and the same
//! set of incompatibility kinds.
//!
//! Two places where the Python port differs from Avro Java (the reference) are handled here:
//!
//! 1. Unqualified aliases of a named type in a namespace. Java qualifies them with the type's namespace
//!    (`Schema.NamedSchema.addAlias(alias, null)` uses `this.name.space`) before `schemaNameEquals` compares
//!    them with the writer's full name; Python compares the aliases *as written* (`reader.props["aliases"]`).
//!    Python is therefore given the reader with those aliases written qualified, which is what Java reads.
//! 2. A reader field whose name and aliases match more than one writer field. Java's `lookupWriterField`
//!    throws `AvroRuntimeException`; Python returns the direct match. Pairs where the checker reports
//!    `READER_FIELD_MATCHES_MULTIPLE_WRITER_FIELDS` are left out of the comparison (and counted).
//! 3. `"namespace": ""` (the null namespace, for Java and the specification) is read by Python as an absent
//!    namespace, so the type inherits the enclosing one; and Python resolves a bare name only in the enclosing
//!    namespace, where Java falls back to the null namespace. The generator does not write null-namespace
//!    types inside namespaced ones (such models are skipped).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use common::generator::{Model, Rng};
use ursa_avro::schema::SchemaSet;
use ursa_compat::{Doc, reader_writer};

const EVOLUTIONS: usize = 3000;
const FIX: &str = "run `cargo xtask test` or `python3 -m pip install avro==1.12.2`";

struct Pair {
    mutation: String,
    reader: String,
    writer: String,
    /// The reader as given to Python (unqualified type aliases qualified).
    reader_for_python: String,
}

fn python_ready() {
    let out = Command::new("python3")
        .args([
            "-c",
            "import avro, avro.compatibility; print(avro.__version__)",
        ])
        .output();
    match out {
        Err(e) => panic!("python3 is not runnable ({e}): install Python 3, then {FIX}"),
        Ok(o) if !o.status.success() => panic!(
            "Python avro is not importable: {FIX}\n{}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Ok(o) => {
            let version = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            assert!(
                version.starts_with("1.12"),
                "Python avro {version} found, 1.12.x needed: {FIX}"
            );
        }
    }
}

fn pairs() -> Vec<Pair> {
    let mut out = Vec::new();
    let mut seed = 0u64;
    let mut made = 0;
    while made < EVOLUTIONS {
        seed += 1;
        let mut rng = Rng::new(seed);
        let base = Model::generate(&mut rng);
        let mut next = base.clone();
        let mut names = vec![next.mutate(&mut rng)];
        if rng.chance(30) {
            names.push(next.mutate(&mut rng));
        }
        let (Ok(b), Ok(bq), Ok(n), Ok(nq)) = (
            base.to_json(false),
            base.to_json(true),
            next.to_json(false),
            next.to_json(true),
        ) else {
            continue;
        };
        made += 1;
        let mutation = format!("seed {seed}: {}", names.join(", "));
        out.push(Pair {
            mutation: mutation.clone(),
            reader: n.to_string(),
            writer: b.to_string(),
            reader_for_python: nq.to_string(),
        });
        out.push(Pair {
            mutation,
            reader: b.to_string(),
            writer: n.to_string(),
            reader_for_python: bq.to_string(),
        });
    }
    out
}

fn python_verdicts(pairs: &[Pair]) -> Vec<String> {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    for p in pairs {
        let line = serde_json::json!({"reader": p.reader_for_python, "writer": p.writer});
        writeln!(file, "{line}").unwrap();
    }
    file.flush().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/avro_compat.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(file.path())
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}): {FIX}"));
    assert!(
        out.status.success(),
        "{} failed: {}\n{FIX}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn agrees_with_python_avro_on_thousands_of_evolutions() {
    python_ready();
    let pairs = pairs();
    let python = python_verdicts(&pairs);
    assert_eq!(python.len(), pairs.len(), "one Python verdict per pair");

    let mut compared = 0;
    let mut incompatible = 0;
    let mut ambiguous = 0;
    let mut disagreements = Vec::new();
    let mut kinds_seen = BTreeSet::new();
    for (p, py) in pairs.iter().zip(&python) {
        let r = SchemaSet::parse_str(&p.reader).unwrap_or_else(|e| {
            panic!(
                "generated reader does not parse ({}): {e}\n{}",
                p.mutation, p.reader
            )
        });
        let w = SchemaSet::parse_str(&p.writer).unwrap_or_else(|e| {
            panic!(
                "generated writer does not parse ({}): {e}\n{}",
                p.mutation, p.writer
            )
        });
        let messages = reader_writer(Doc::last(&r), Doc::last(&w));
        let kinds: BTreeSet<&str> = messages.iter().map(|m| m.kind.as_str()).collect();
        if kinds.contains("READER_FIELD_MATCHES_MULTIPLE_WRITER_FIELDS") {
            ambiguous += 1;
            continue;
        }
        compared += 1;
        kinds_seen.extend(kinds.iter().map(|k| (*k).to_owned()));
        let ours = if kinds.is_empty() {
            "compatible".to_owned()
        } else {
            incompatible += 1;
            format!(
                "incompatible {}",
                kinds.into_iter().collect::<Vec<_>>().join(",")
            )
        };
        if &ours != py {
            let found: Vec<String> = messages
                .iter()
                .map(|m| format!("{} at {}: {}", m.kind, m.location, m.message))
                .collect();
            disagreements.push(format!(
                "{}\n  reader: {}\n  writer: {}\n  ours:   {ours}\n  python: {py}\n  found:  {found:#?}",
                p.mutation, p.reader, p.writer
            ));
        }
    }
    // How much quirk 1 matters: Python's verdicts on the readers as written, where they differ.
    let rewritten: Vec<Pair> = pairs
        .iter()
        .filter(|p| p.reader != p.reader_for_python)
        .map(|p| Pair {
            mutation: p.mutation.clone(),
            reader: p.reader.clone(),
            writer: p.writer.clone(),
            reader_for_python: p.reader.clone(),
        })
        .collect();
    let as_written = python_verdicts(&rewritten);
    let alias_quirk = pairs
        .iter()
        .zip(&python)
        .filter(|(p, _)| p.reader != p.reader_for_python)
        .zip(&as_written)
        .filter(|((_, qualified), raw)| qualified != raw)
        .count();
    eprintln!(
        "differential: {compared} pairs compared ({incompatible} incompatible), {ambiguous} left out \
         (Java throws on ambiguous field aliases), {} readers with unqualified aliases qualified for Python \
         ({alias_quirk} verdicts would differ as written), kinds seen: {kinds_seen:?}, {} disagreements",
        rewritten.len(),
        disagreements.len()
    );
    assert!(
        disagreements.is_empty(),
        "{} of {compared} verdicts differ from Python avro; first ones:\n{}",
        disagreements.len(),
        disagreements
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
    assert!(compared >= 2 * EVOLUTIONS - ambiguous);
    assert!(
        incompatible > compared / 5 && incompatible < compared * 4 / 5,
        "a balanced mix: {incompatible}/{compared}"
    );
    for kind in [
        "NAME_MISMATCH",
        "FIXED_SIZE_MISMATCH",
        "MISSING_ENUM_SYMBOLS",
        "READER_FIELD_MISSING_DEFAULT_VALUE",
        "TYPE_MISMATCH",
        "MISSING_UNION_BRANCH",
    ] {
        assert!(
            kinds_seen.contains(kind),
            "the generator never produced {kind}"
        );
    }
}
