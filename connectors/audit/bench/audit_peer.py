#!/usr/bin/env python3
"""Peers of the audit-store benchmark (run by `cargo xtask bench audit`).

Usage:

    audit_peer.py createdb DB_URL NAME
    audit_peer.py wait     DB_URL TABLE COUNT
    audit_peer.py ceiling  DB_URL TABLE CONNECTOR
    audit_peer.py job      DB_URL BOOTSTRAP REGISTRY_URL TOPIC COUNT
    audit_peer.py produce_connect BOOTSTRAP TOPIC PARTITIONS SCHEMA_FILE COUNT

- createdb: creates database NAME on DB_URL's server (dropping one of that name first) and prints nothing;
- wait: polls `SELECT count(*)` of TABLE every 50 ms (the table may not exist yet) and prints one line,
  `reached`, as soon as it holds COUNT rows: the bench measures `ursa run` until that line;

- ceiling: (a) the bare binary-COPY loop. It replays the rows the `audit-postgres` sink wrote into TABLE, in
  the sink's own batches (`ursa_audit_batches` of CONNECTOR: partition, first and last offset) and
  transactions: each batch's rows are read beforehand with `COPY (SELECT …) TO STDOUT (FORMAT binary)` (not
  timed), then, timed, one connection per partition (as the sink's partitions run concurrently) does per batch
  `BEGIN; SELECT … FOR UPDATE` on its offsets row, `COPY … FROM STDIN (FORMAT binary)` of those exact bytes
  into a copy of TABLE (same columns, indexes and primary key, no trigger), an insert into a batches table and
  the offsets update, `COMMIT`. Nothing is decoded, hashed or encrypted: the database's share of the job.
- job: (b) a hand-written Python audit consumer: confluent-kafka `consume(500)`, the 5-byte Confluent header
  stripped, fastavro `schemaless_reader` (writer schema fetched by id, parsed once), and per partition of each
  poll one transaction: psycopg 3 `COPY` of the rows (the Kafka coordinates, timestamp, key, headers as jsonb,
  schema id, the value bytes, the value as jsonb, and typed columns flattened from the record as the sink
  flattens them: nested records as `parent__child`, arrays and maps as jsonb) and the partition's next offset
  upserted in the same transaction. No hash chain, no encryption: the peer does less than the sink.

- produce_connect: for (c), Kafka Connect's JDBC sink, which needs records with a Connect schema: the same kind
  of values (generated from the Avro schema, DISTINCT of them produced COUNT times, key = the index) as
  JsonConverter's `{"schema": …, "payload": …}` envelope (timestamps as Connect `Timestamp`, UUIDs and enums as
  strings, maps as Connect maps).

Each command prints one JSON object on stdout: rows, seconds, cpu_seconds (this process) and peak_rss_mib.
"""

import datetime
import io
import json
import os
import resource
import sys
import threading
import time
import urllib.request
import uuid

_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..")
sys.path[:0] = [os.path.join(_ROOT, "runtime", "bench"), os.path.join(_ROOT, "runtime", "tests", "python")]
import runtime_peer  # noqa: E402  (the runtime bench's producers and JSON conversion)


def usage():
    return resource.getrusage(resource.RUSAGE_SELF)


def cpu_seconds(start, end):
    return (end.ru_utime - start.ru_utime) + (end.ru_stime - start.ru_stime)


def report(**fields):
    fields["peak_rss_mib"] = usage().ru_maxrss / 1024
    print(json.dumps(fields))


def ident(name):
    return '"' + name.replace('"', '""') + '"'


def ceiling(db_url, table, connector):
    import psycopg

    setup = psycopg.connect(db_url, autocommit=True)
    suffix = uuid.uuid4().hex[:8]
    copy_table = f"bench_ceiling_{suffix}"
    offsets = f"bench_ceiling_offsets_{suffix}"
    batches_table = f"bench_ceiling_batches_{suffix}"
    setup.execute(f"CREATE TABLE {ident(copy_table)} (LIKE {ident(table)} INCLUDING ALL)")
    setup.execute(
        f"CREATE TABLE {ident(offsets)} (connector text, topic text, partition integer, generation bigint, "
        "next_offset bigint, chain_head bytea, PRIMARY KEY (connector, topic, partition))"
    )
    setup.execute(
        f"CREATE TABLE {ident(batches_table)} (partition integer, first_offset bigint, last_offset bigint, "
        "row_count integer, merkle_root bytea, PRIMARY KEY (partition, first_offset))"
    )
    batches = setup.execute(
        "SELECT topic, partition, first_offset, last_offset, row_count, merkle_root FROM ursa_audit_batches "
        "WHERE connector = %s ORDER BY partition, first_offset",
        (connector,),
    ).fetchall()
    if not batches:
        sys.exit(f"no batches of connector {connector} in ursa_audit_batches")
    by_partition = {}
    for topic, partition, first, last, count, root in batches:
        buf = bytearray()
        with setup.cursor().copy(
            f"COPY (SELECT * FROM {ident(table)} WHERE kafka_partition = {int(partition)} "
            f"AND kafka_offset BETWEEN {int(first)} AND {int(last)} ORDER BY kafka_offset) TO STDOUT (FORMAT binary)"
        ) as copy:
            for chunk in copy:
                buf += chunk
        by_partition.setdefault(partition, []).append((topic, first, last, count, root, bytes(buf)))
        setup.execute(
            f"INSERT INTO {ident(offsets)} VALUES (%s, %s, %s, 1, 0, NULL) ON CONFLICT DO NOTHING",
            (connector, topic, partition),
        )
    rows = sum(b[4] for b in batches)
    errors = []

    def replay(partition, items):
        try:
            conn = psycopg.connect(db_url)
            for topic, first, last, count, root, data in items:
                with conn.transaction():
                    cur = conn.cursor()
                    cur.execute(
                        f"SELECT generation, next_offset FROM {ident(offsets)} WHERE connector = %s AND topic = %s "
                        "AND partition = %s FOR UPDATE",
                        (connector, topic, partition),
                    )
                    cur.fetchone()
                    with cur.copy(f"COPY {ident(copy_table)} FROM STDIN (FORMAT binary)") as copy:
                        copy.write(data)
                    cur.execute(
                        f"INSERT INTO {ident(batches_table)} VALUES (%s, %s, %s, %s, %s)",
                        (partition, first, last, count, root),
                    )
                    cur.execute(
                        f"UPDATE {ident(offsets)} SET next_offset = %s, chain_head = %s WHERE connector = %s "
                        "AND topic = %s AND partition = %s",
                        (last + 1, root, connector, topic, partition),
                    )
            conn.close()
        except Exception as e:  # reported by the main thread
            errors.append(e)

    r0 = usage()
    start = time.monotonic()
    threads = [threading.Thread(target=replay, args=(p, items)) for p, items in by_partition.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - start
    cpu = cpu_seconds(r0, usage())
    if errors:
        sys.exit(f"ceiling replay failed: {errors[0]}")
    copied = setup.execute(f"SELECT count(*) FROM {ident(copy_table)}").fetchone()[0]
    if copied != rows:
        sys.exit(f"ceiling replay copied {copied} rows, expected {rows}")
    for t in (copy_table, offsets, batches_table):
        setup.execute(f"DROP TABLE {ident(t)}")
    setup.close()
    report(rows=rows, batches=len(batches), seconds=seconds, cpu_seconds=cpu)


# --- (b) the Python audit consumer ----------------------------------------------------------------------------

PG_TYPES = {
    "boolean": "boolean",
    "int": "integer",
    "long": "bigint",
    "float": "real",
    "double": "double precision",
    "string": "text",
    "bytes": "bytea",
    "enum": "text",
    "fixed": "bytea",
}
LOGICAL = {
    "uuid": "uuid",
    "date": "date",
    "time-millis": "time",
    "time-micros": "time",
    "timestamp-millis": "timestamptz",
    "timestamp-micros": "timestamptz",
    "local-timestamp-millis": "timestamp",
    "local-timestamp-micros": "timestamp",
}


def columns(schema, named, path=()):
    """(column name, SQL type, field path, is_json) for each leaf, flattened like the sink's."""
    if isinstance(schema, str):
        schema = named.get(schema, {"type": schema})
    if isinstance(schema, list):
        non_null = [s for s in schema if s != "null" and s != {"type": "null"}]
        if len(non_null) == 1:
            return columns(non_null[0], named, path)
        return [("__".join(path), "jsonb", path, True)]
    t = schema["type"]
    if isinstance(t, (dict, list)):
        return columns(t, named, path)
    if "name" in schema and t in ("record", "enum", "fixed"):
        named[schema["name"]] = schema
        if "namespace" in schema:
            named[schema["namespace"] + "." + schema["name"]] = schema
    if t == "record":
        out = []
        for f in schema["fields"]:
            out.extend(columns(f["type"], named, path + (f["name"],)))
        return out
    if t in ("array", "map"):
        return [("__".join(path), "jsonb", path, True)]
    logical = schema.get("logicalType")
    if logical == "decimal":
        return [("__".join(path), "numeric", path, False)]
    return [("__".join(path), LOGICAL.get(logical, PG_TYPES.get(t, "text")), path, False)]


def leaf(value, path):
    for p in path:
        if not isinstance(value, dict):
            return None
        value = value.get(p)
    return value


def job(db_url, bootstrap, registry, topic, count):
    import fastavro
    import psycopg
    from confluent_kafka import Consumer
    from psycopg.types.json import Jsonb

    count = int(count)
    conn = psycopg.connect(db_url)
    suffix = uuid.uuid4().hex[:8]
    table = f"bench_python_{suffix}"
    offsets = f"bench_python_offsets_{suffix}"
    r0 = usage()
    start = time.monotonic()
    schemas = {}
    cols = None

    def writer_schema(schema_id):
        nonlocal cols
        s = schemas.get(schema_id)
        if s is None:
            with urllib.request.urlopen(f"{registry}/schemas/ids/{schema_id}") as resp:
                text = json.load(resp)["schema"]
            raw = json.loads(text)
            s = schemas[schema_id] = fastavro.parse_schema(raw)
            if cols is None:
                cols = columns(raw, {})
                typed = ", ".join(f"{ident(c)} {t}" for c, t, _, _ in cols)
                with conn.transaction():
                    conn.execute(
                        f"CREATE TABLE {ident(table)} (kafka_topic text, kafka_partition integer, "
                        "kafka_offset bigint, kafka_timestamp timestamptz, kafka_key bytea, kafka_headers jsonb, "
                        "kafka_schema_id integer, kafka_value bytea, audit_value_json jsonb, "
                        f"{typed}, PRIMARY KEY (kafka_partition, kafka_offset))"
                    )
                    conn.execute(
                        f"CREATE TABLE {ident(offsets)} (topic text, partition integer, next_offset bigint, "
                        "PRIMARY KEY (topic, partition))"
                    )
        return s

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-audit-python-{suffix}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    c.subscribe([topic])
    n = 0
    copy_columns = None
    while n < count:
        by_partition = {}
        for m in c.consume(500, 1.0):
            if m.error() is not None:
                continue
            by_partition.setdefault(m.partition(), []).append(m)
        for partition, messages in by_partition.items():
            rows = []
            for m in messages:
                payload = m.value()
                if payload is None or len(payload) < 5 or payload[0] != 0:
                    raise SystemExit(f"not Confluent Avro at {partition}@{m.offset()}")
                schema_id = int.from_bytes(payload[1:5], "big")
                value = fastavro.schemaless_reader(io.BytesIO(payload[5:]), writer_schema(schema_id))
                headers = {k: (None if v is None else v.decode("utf-8", "replace")) for k, v in (m.headers() or [])}
                typed = []
                for _, _, path, is_json in cols:
                    v = leaf(value, path)
                    typed.append(Jsonb(runtime_peer.jsonable(v)) if is_json and v is not None else v)
                rows.append(
                    [
                        m.topic(),
                        partition,
                        m.offset(),
                        datetime.datetime.fromtimestamp(m.timestamp()[1] / 1000, datetime.timezone.utc),
                        m.key(),
                        Jsonb(headers),
                        schema_id,
                        payload,
                        Jsonb(runtime_peer.jsonable(value)),
                    ]
                    + typed
                )
            if copy_columns is None:
                names = [
                    "kafka_topic",
                    "kafka_partition",
                    "kafka_offset",
                    "kafka_timestamp",
                    "kafka_key",
                    "kafka_headers",
                    "kafka_schema_id",
                    "kafka_value",
                    "audit_value_json",
                ] + [c_[0] for c_ in cols]
                copy_columns = ", ".join(ident(x) for x in names)
            with conn.transaction():
                cur = conn.cursor()
                with cur.copy(f"COPY {ident(table)} ({copy_columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                cur.execute(
                    f"INSERT INTO {ident(offsets)} VALUES (%s, %s, %s) ON CONFLICT (topic, partition) "
                    "DO UPDATE SET next_offset = excluded.next_offset",
                    (topic, partition, messages[-1].offset() + 1),
                )
            n += len(messages)
    seconds = time.monotonic() - start
    cpu = cpu_seconds(r0, usage())
    c.close()
    stored = conn.execute(f"SELECT count(*) FROM {ident(table)}").fetchone()[0]
    if stored != count:
        sys.exit(f"the Python consumer stored {stored} rows, expected {count}")
    with conn.transaction():
        conn.execute(f"DROP TABLE {ident(table)}")
        conn.execute(f"DROP TABLE {ident(offsets)}")
    conn.close()
    report(rows=n, seconds=seconds, cpu_seconds=cpu)


def connect_schema(schema, named, optional=False):
    """The Connect (JsonConverter) schema of an Avro schema."""
    if isinstance(schema, str):
        schema = named.get(schema, {"type": schema})
    if isinstance(schema, list):
        non_null = [s for s in schema if s != "null"]
        if len(non_null) != 1:
            raise SystemExit(f"unsupported union {schema}")
        return connect_schema(non_null[0], named, True)
    t = schema["type"]
    if isinstance(t, (dict, list)):
        return connect_schema(t, named, optional)
    if t in ("record", "enum", "fixed") and "name" in schema:
        named[schema["name"]] = schema
        named[schema["name"].rsplit(".", 1)[-1]] = schema
    logical = schema.get("logicalType")
    if t == "record":
        out = {
            "type": "struct",
            "name": schema["name"],
            "fields": [dict(connect_schema(f["type"], named), field=f["name"]) for f in schema["fields"]],
        }
    elif t == "map":
        out = {"type": "map", "keys": {"type": "string", "optional": False}, "values": connect_schema(schema["values"], named)}
    elif t == "array":
        out = {"type": "array", "items": connect_schema(schema["items"], named)}
    elif logical in ("timestamp-millis", "timestamp-micros"):
        out = {"type": "int64", "name": "org.apache.kafka.connect.data.Timestamp", "version": 1}
    else:
        out = {
            "type": {
                "boolean": "boolean",
                "int": "int32",
                "long": "int64",
                "float": "float",
                "double": "double",
                "bytes": "bytes",
                "fixed": "bytes",
            }.get(t, "string")
        }
    out["optional"] = optional
    return out


def connect_payload(v):
    if isinstance(v, dict):
        return {k: connect_payload(x) for k, x in v.items()}
    if isinstance(v, list):
        return [connect_payload(x) for x in v]
    if isinstance(v, datetime.datetime):
        return int(v.timestamp() * 1000)
    if isinstance(v, (datetime.date, datetime.time, uuid.UUID)):
        return str(v)
    return v


def produce_connect(bootstrap, topic, partitions, schema_file, count):
    import produce_avro

    runtime_peer.create_topic(bootstrap, topic, partitions)
    avro = json.load(open(schema_file, encoding="utf-8"))
    schema = connect_schema(avro, {})
    values = [
        json.dumps({"schema": schema, "payload": connect_payload(produce_avro.value(avro))}, separators=(",", ":")).encode()
        for _ in range(runtime_peer.DISTINCT)
    ]
    _, total = runtime_peer.produce_cycling(bootstrap, topic, values, count)
    report(rows=int(count), avg_value_bytes=total / int(count))


def createdb(db_url, name):
    import psycopg

    conn = psycopg.connect(db_url, autocommit=True)
    conn.execute(f"DROP DATABASE IF EXISTS {ident(name)}")
    conn.execute(f"CREATE DATABASE {ident(name)}")
    conn.close()


def wait(db_url, table, count):
    import psycopg

    count = int(count)
    conn = psycopg.connect(db_url, autocommit=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            n = conn.execute(f"SELECT count(*) FROM {ident(table)}").fetchone()[0]
        except psycopg.errors.UndefinedTable:
            n = 0
        if n >= count:
            print("reached", flush=True)
            return
        time.sleep(0.05)  # polling the sink's progress, not synchronising with it
    sys.exit(f"{table} did not reach {count} rows in 600 s")


def main():
    commands = {"createdb": (createdb, 2), "wait": (wait, 3), "ceiling": (ceiling, 3), "job": (job, 5),
                "produce_connect": (produce_connect, 5)}
    if len(sys.argv) < 2 or sys.argv[1] not in commands or len(sys.argv) != commands[sys.argv[1]][1] + 2:
        sys.exit(__doc__)
    fn, _ = commands[sys.argv[1]]
    fn(*sys.argv[2:])


if __name__ == "__main__":
    main()
