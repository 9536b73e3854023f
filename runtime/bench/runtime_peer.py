#!/usr/bin/env python3
"""Python peers of the `runtime` benchmark (run by `cargo xtask bench runtime`).

Usage:

    runtime_peer.py produce BOOTSTRAP REGISTRY_URL TOPIC PARTITIONS SCHEMA_FILE COUNT [KEYS]
    runtime_peer.py raw     BOOTSTRAP TOPIC COUNT
    runtime_peer.py job     BOOTSTRAP REGISTRY_URL TOPIC COUNT OUT_FILE

- produce: creates TOPIC, serializes DISTINCT records generated from the schema (the generator of
  runtime/tests/python/produce_avro.py) with confluent-kafka's AvroSerializer (which registers the schema),
  then produces COUNT records cycling through those pre-serialized values (key = the record's index, or
  the index modulo KEYS when given), so production is fast;
- raw: the floor of any consumer: confluent-kafka `consume(500)` from the beginning, doing nothing with the
  records, until COUNT have arrived;
- job: what `ursa run` does with the file sink and the Avro converter, in Python: `consume(500)`, strip the
  5-byte Confluent header, decode with `fastavro.schemaless_reader` (writer schema fetched from the registry
  by id and parsed once per id), convert logical types for JSON (UUIDs as text, timestamps as RFC 3339) and
  write one JSON line per record (topic, partition, offset, timestamp, headers, key, value) to OUT_FILE;
  every 500 ms (ursa's `offset.flush.interval.ms` in the bench) it flushes and fsyncs the file and commits
  the offsets, and once more at the end.

Each command prints one JSON object on stdout: records, seconds (from client creation to the COUNT-th
record, for the consumers), CPU seconds of the whole process (`resource.getrusage`, librdkafka's threads
included) and peak RSS.
"""

import datetime
import io
import json
import os
import resource
import sys
import time
import urllib.request
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

DISTINCT = 500
COMMIT_INTERVAL = 0.5


def usage():
    return resource.getrusage(resource.RUSAGE_SELF)


def cpu_seconds(start, end):
    return (end.ru_utime - start.ru_utime) + (end.ru_stime - start.ru_stime)


def report(**fields):
    r = usage()
    fields["peak_rss_mib"] = r.ru_maxrss / 1024
    print(json.dumps(fields))


def create_topic(bootstrap, topic, partitions):
    """Creates TOPIC with PARTITIONS partitions (replication factor 1), retrying while the broker elects its
    controller."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + 60
    while True:
        try:
            for f in admin.create_topics([NewTopic(topic, num_partitions=int(partitions), replication_factor=1)]).values():
                f.result(30)
            return
        except Exception as e:  # the broker may still be electing its controller
            if "TOPIC_ALREADY_EXISTS" in str(e):
                return
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def produce_cycling(bootstrap, topic, values, count, keys=None):
    """Produces COUNT records to TOPIC cycling through the pre-serialized VALUES (key = the index, or the index
    modulo KEYS), as fast as the producer takes them; returns (seconds, value bytes produced). Exits on any
    delivery error."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "batch.size": 1000000,
            "queue.buffering.max.messages": 1000000,
            "queue.buffering.max.kbytes": 1048576,
        }
    )
    errors = []

    def on_delivery(err, _msg):
        if err:
            errors.append(err)

    start = time.monotonic()
    total_bytes = 0
    for i in range(int(count)):
        value = values[i % len(values)]
        total_bytes += len(value)
        key = str(i if keys is None else i % int(keys)).encode()
        while True:
            try:
                producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.01)
        if i % 10000 == 0:
            producer.poll(0)
    left = producer.flush(120)
    seconds = time.monotonic() - start
    if errors or left:
        sys.exit(f"delivery failed: {errors[:5]} ({left} undelivered)")
    return seconds, total_bytes


def produce(bootstrap, registry, topic, partitions, schema_file, count, keys=None):
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "python"))
    import produce_avro  # the schema-driven value generator of the tests

    create_topic(bootstrap, topic, partitions)
    schema_text = open(schema_file, encoding="utf-8").read()
    schema = json.loads(schema_text)
    serializer = AvroSerializer(SchemaRegistryClient({"url": registry, "timeout": 30}), schema_text)
    ctx = SerializationContext(topic, MessageField.VALUE)
    values = [serializer(produce_avro.value(schema), ctx) for _ in range(DISTINCT)]
    seconds, total_bytes = produce_cycling(bootstrap, topic, values, count, keys)
    report(records=int(count), seconds=seconds, bytes=total_bytes, avg_value_bytes=total_bytes / int(count))


def consumer(bootstrap, group):
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": False,
        }
    )


def raw(bootstrap, topic, count):
    count = int(count)
    r0 = usage()
    start = time.monotonic()
    c = consumer(bootstrap, f"bench-raw-{uuid.uuid4()}")
    c.subscribe([topic])
    n = 0
    while n < count:
        for m in c.consume(500, 1.0):
            if m.error() is None:
                n += 1
    seconds = time.monotonic() - start
    cpu = cpu_seconds(r0, usage())
    c.close()
    report(records=n, seconds=seconds, cpu_seconds=cpu)


def jsonable(v):
    """fastavro's Python values as JSON: UUIDs as text, timestamps as RFC 3339 in UTC, bytes as latin-1."""
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, list):
        return [jsonable(x) for x in v]
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, datetime.datetime):
        return v.astimezone(datetime.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
    if isinstance(v, datetime.date):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.decode("latin-1")
    return v


def job(bootstrap, registry, topic, count, out_file):
    import fastavro

    count = int(count)
    r0 = usage()
    start = time.monotonic()
    schemas = {}

    def writer_schema(schema_id):
        s = schemas.get(schema_id)
        if s is None:
            with urllib.request.urlopen(f"{registry}/schemas/ids/{schema_id}") as resp:
                text = json.load(resp)["schema"]
            s = schemas[schema_id] = fastavro.parse_schema(json.loads(text))
        return s

    c = consumer(bootstrap, f"bench-job-{uuid.uuid4()}")
    c.subscribe([topic])
    out = open(out_file, "w", encoding="utf-8", buffering=1 << 20)
    n = 0
    last_commit = time.monotonic()

    def commit():
        out.flush()
        os.fsync(out.fileno())
        try:
            c.commit(asynchronous=True)
        except Exception:  # nothing stored yet
            pass

    while n < count:
        for m in c.consume(500, 1.0):
            if m.error() is not None:
                continue
            payload = m.value()
            if payload is None or len(payload) < 5 or payload[0] != 0:
                raise SystemExit(f"not Confluent Avro at {m.partition()}@{m.offset()}")
            value = fastavro.schemaless_reader(io.BytesIO(payload[5:]), writer_schema(int.from_bytes(payload[1:5], "big")))
            key = m.key()
            headers = m.headers() or []
            line = {
                "topic": m.topic(),
                "partition": m.partition(),
                "offset": m.offset(),
                "timestamp": m.timestamp()[1],
                "headers": [{"key": k, "value": None if v is None else v.decode("utf-8", "replace")} for k, v in headers],
                "key": None if key is None else key.decode("utf-8", "replace"),
                "value": jsonable(value),
            }
            out.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")))
            out.write("\n")
            c.store_offsets(m)
            n += 1
        if time.monotonic() - last_commit >= COMMIT_INTERVAL:
            commit()
            last_commit = time.monotonic()
    commit()
    seconds = time.monotonic() - start
    cpu = cpu_seconds(r0, usage())
    out.close()
    c.close()
    report(records=n, seconds=seconds, cpu_seconds=cpu)


def main():
    commands = {"produce": (produce, 6), "raw": (raw, 3), "job": (job, 5)}
    optional = {"produce": 1}
    if (
        len(sys.argv) < 2
        or sys.argv[1] not in commands
        or not 0 <= len(sys.argv) - commands[sys.argv[1]][1] - 2 <= optional.get(sys.argv[1], 0)
    ):
        sys.exit(__doc__)
    fn, _ = commands[sys.argv[1]]
    fn(*sys.argv[2:])


if __name__ == "__main__":
    main()
