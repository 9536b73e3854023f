//! The database objects of the audit store: the bookkeeping tables, one audit table per topic (created from its
//! schema, with columns added as writer schemas evolve), the append-only trigger, and the `SECURITY DEFINER`
//! functions through which a sink role with INSERT only creates tables and adds columns.
//!
//! ## Privileges
//! Run `ursa audit init --url <admin URL> --grant-to <sink role>` once as the owner of the schema (it installs
//! what is below and grants the sink role exactly this):
//!
//! ```sql
//! GRANT USAGE ON SCHEMA audit TO ursa_sink;
//! GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA audit TO ursa_sink;      -- audit and bookkeeping tables
//! ALTER DEFAULT PRIVILEGES IN SCHEMA audit GRANT SELECT, INSERT ON TABLES TO ursa_sink;  -- tables made later
//! GRANT UPDATE ON audit.ursa_audit_offsets TO ursa_sink;                -- its offsets, fenced by generation
//! GRANT USAGE ON ALL SEQUENCES IN SCHEMA audit TO ursa_sink;            -- data key ids
//! GRANT EXECUTE ON FUNCTION audit.ursa_audit_create_table(text, text, text),
//!                           audit.ursa_audit_add_column(text, text, text) TO ursa_sink;
//! ```
//!
//! The sink role then owns nothing: it cannot UPDATE, DELETE or TRUNCATE an audit row, nor disable the trigger
//! (which also refuses UPDATE, DELETE and TRUNCATE from the owner). New tables and columns are made by the two
//! functions, which run as their owner and accept only the column types of [`crate::cell::PgType`]. The
//! operator that runs `ursa audit forget` needs UPDATE on `ursa_audit_subject_keys` and INSERT on
//! `ursa_audit_erasures`. When the sink's role may create objects itself (development), it installs all of this
//! on first start.

use ring::digest;

use crate::cell::PgType;

/// The version of the installed objects ([`install_sql`]); a sink installs them when the database has another.
pub const VERSION: i32 = 1;

/// The base columns of every audit table, before the typed ones: the Kafka coordinates, the record's timestamp,
/// key and headers, the writer schema id, the value as stored, and what the sink derives (the value as `jsonb`,
/// the data subject, the row's hash in its partition's chain).
pub const BASE_COLUMNS: &[(&str, PgType)] = &[
    ("kafka_topic", PgType::Text),
    ("kafka_partition", PgType::Integer),
    ("kafka_offset", PgType::Bigint),
    ("kafka_timestamp", PgType::Timestamptz),
    ("kafka_key", PgType::Bytea),
    ("kafka_headers", PgType::Jsonb),
    ("kafka_schema_id", PgType::Integer),
    ("kafka_value", PgType::Bytea),
    ("audit_value_json", PgType::Jsonb),
    ("audit_subject", PgType::Text),
    ("audit_hash", PgType::Bytea),
];

/// A double-quoted SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A single-quoted SQL string literal.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `"schema"."name"`.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

/// The table of `topic`: the template with `${topic}` and `${connector}` replaced (each character that is not
/// an ASCII letter, digit or `_` becomes `_`), lowercased, and cut to 63 bytes with a hash suffix if longer.
pub fn table_name(template: &str, connector: &str, topic: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect()
    };
    let name = template
        .replace("${topic}", &clean(topic))
        .replace("${connector}", &clean(connector));
    if name.len() <= 63 {
        return name;
    }
    let hash = digest::digest(&digest::SHA256, name.as_bytes());
    let suffix: String = hash.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut cut = 54;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_{suffix}", &name[..cut])
}

/// The SQL that installs (idempotently) the bookkeeping tables, the trigger function and the DDL functions in
/// `schema`.
pub fn install_sql(schema: &str) -> String {
    let s = quote_ident(schema);
    let base: Vec<String> = BASE_COLUMNS
        .iter()
        .map(|(name, ty)| {
            let not_null = matches!(
                *name,
                "kafka_topic" | "kafka_partition" | "kafka_offset" | "kafka_headers" | "audit_hash"
            );
            format!(
                "{} {}{}",
                quote_ident(name),
                ty.sql(),
                if not_null { " NOT NULL" } else { "" }
            )
        })
        .collect();
    let base = base.join(", ");
    let types = "^(boolean|integer|bigint|real|double precision|text|bytea|uuid|date|time without time zone|\
                 timestamp with time zone|timestamp without time zone|numeric|numeric\\([0-9]+,[0-9]+\\)|\
                 interval|jsonb)$";
    format!(
        r#"
CREATE SCHEMA IF NOT EXISTS {s};

CREATE TABLE IF NOT EXISTS {s}.ursa_audit_tables (
    connector text NOT NULL,
    topic text NOT NULL,
    table_name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connector, topic)
);

CREATE TABLE IF NOT EXISTS {s}.ursa_audit_offsets (
    connector text NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    generation bigint NOT NULL,
    next_offset bigint,
    first_offset bigint,
    last_offset bigint,
    chain_head bytea,
    tree_size bigint NOT NULL DEFAULT 0,
    frontier bytea NOT NULL DEFAULT '\x',
    batches_since_checkpoint integer NOT NULL DEFAULT 0,
    last_checkpoint_ms bigint,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connector, topic, partition)
);

CREATE TABLE IF NOT EXISTS {s}.ursa_audit_batches (
    connector text NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    first_offset bigint NOT NULL,
    last_offset bigint NOT NULL,
    row_count integer NOT NULL,
    tree_size bigint NOT NULL,
    merkle_root bytea NOT NULL,
    chain_head bytea NOT NULL,
    generation bigint NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connector, topic, partition, first_offset)
);

CREATE TABLE IF NOT EXISTS {s}.ursa_audit_gaps (
    connector text NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    from_offset bigint NOT NULL,
    to_offset bigint NOT NULL,
    reason text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connector, topic, partition, from_offset)
);

CREATE TABLE IF NOT EXISTS {s}.ursa_audit_checkpoints (
    connector text NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    tree_size bigint NOT NULL,
    last_offset bigint NOT NULL,
    root_hash bytea NOT NULL,
    note text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connector, topic, partition, tree_size)
);

CREATE TABLE IF NOT EXISTS {s}.ursa_audit_schemas (
    schema_id integer PRIMARY KEY,
    schema text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS {s}.ursa_audit_subject_keys (
    key_id bigserial PRIMARY KEY,
    subject text NOT NULL,
    wrapped_key bytea,
    master_key_id bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    erased_at timestamptz
);
CREATE INDEX IF NOT EXISTS ursa_audit_subject_keys_subject ON {s}.ursa_audit_subject_keys (subject);

CREATE TABLE IF NOT EXISTS {s}.ursa_audit_erasures (
    seq bigint PRIMARY KEY,
    subject text NOT NULL,
    keys_destroyed integer NOT NULL,
    erased_by text NOT NULL,
    erased_at_ms bigint NOT NULL,
    reason text NOT NULL,
    hash bytea NOT NULL
);

CREATE OR REPLACE FUNCTION {s}.ursa_audit_reject() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION 'ursa audit: % on %.% is refused: the audit store is append-only', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = '42501';
END
$fn$;

CREATE OR REPLACE FUNCTION {s}.ursa_audit_protect(tbl regclass) RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = tbl AND tgname = 'ursa_audit_append_only') THEN
        EXECUTE format('CREATE TRIGGER ursa_audit_append_only BEFORE UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION {s}.ursa_audit_reject()', tbl);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = tbl AND tgname = 'ursa_audit_no_truncate') THEN
        EXECUTE format('CREATE TRIGGER ursa_audit_no_truncate BEFORE TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION {s}.ursa_audit_reject()', tbl);
    END IF;
END
$fn$;

SELECT {s}.ursa_audit_protect('{s}.ursa_audit_tables'::regclass);
SELECT {s}.ursa_audit_protect('{s}.ursa_audit_batches'::regclass);
SELECT {s}.ursa_audit_protect('{s}.ursa_audit_gaps'::regclass);
SELECT {s}.ursa_audit_protect('{s}.ursa_audit_checkpoints'::regclass);
SELECT {s}.ursa_audit_protect('{s}.ursa_audit_schemas'::regclass);
SELECT {s}.ursa_audit_protect('{s}.ursa_audit_erasures'::regclass);

CREATE OR REPLACE FUNCTION {s}.ursa_audit_create_table(conn text, top text, tbl text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('ursa_audit_ddl'));
    EXECUTE format('CREATE TABLE IF NOT EXISTS {s}.%I ({base}, PRIMARY KEY (kafka_partition, kafka_offset))', tbl);
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON {s}.%I (audit_subject)', left(tbl, 50) || '_subject', tbl);
    PERFORM {s}.ursa_audit_protect(format('{s}.%I', tbl)::regclass);
    INSERT INTO {s}.ursa_audit_tables (connector, topic, table_name) VALUES (conn, top, tbl)
        ON CONFLICT (connector, topic) DO NOTHING;
END
$fn$;

CREATE OR REPLACE FUNCTION {s}.ursa_audit_add_column(tbl text, col text, typ text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF typ !~ '{types}' THEN
        RAISE EXCEPTION 'ursa audit: column type % is not allowed', typ;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM {s}.ursa_audit_tables WHERE table_name = tbl) THEN
        RAISE EXCEPTION 'ursa audit: % is not an audit table', tbl;
    END IF;
    EXECUTE format('ALTER TABLE {s}.%I ADD COLUMN IF NOT EXISTS %I %s', tbl, col, typ);
END
$fn$;

REVOKE ALL ON FUNCTION {s}.ursa_audit_create_table(text, text, text), {s}.ursa_audit_add_column(text, text, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION {s}.ursa_audit_version() RETURNS integer LANGUAGE sql IMMUTABLE AS $fn$ SELECT {VERSION} $fn$;
"#
    )
}

/// The SQL that grants `role` what a sink needs (see the module docs).
pub fn grant_sql(schema: &str, role: &str) -> String {
    let s = quote_ident(schema);
    let r = quote_ident(role);
    format!(
        "GRANT USAGE ON SCHEMA {s} TO {r};
GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA {s} TO {r};
ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT SELECT, INSERT ON TABLES TO {r};
GRANT UPDATE ON {s}.ursa_audit_offsets TO {r};
GRANT USAGE ON ALL SEQUENCES IN SCHEMA {s} TO {r};
GRANT EXECUTE ON FUNCTION {s}.ursa_audit_create_table(text, text, text), {s}.ursa_audit_add_column(text, text, text) TO {r};
"
    )
}

/// The query for the typed and base columns of a table: `(name, format_type)` in column order.
pub fn columns_sql() -> &'static str {
    "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
     JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_follow_the_template() {
        assert_eq!(
            table_name("audit_${topic}", "c", "child.safety-violation"),
            "audit_child_safety_violation"
        );
        assert_eq!(table_name("${connector}_${topic}", "Audit", "T"), "audit_t");
        let long = table_name("audit_${topic}", "c", &"x".repeat(100));
        assert_eq!(long.len(), 63);
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
