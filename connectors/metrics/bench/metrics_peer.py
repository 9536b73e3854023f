#!/usr/bin/env python3
"""Python peers of `cargo xtask bench metrics`.

Usage:

    metrics_peer.py job      BOOTSTRAP REGISTRY DEFINITIONS_TOML COUNT TOPIC...
    metrics_peer.py distinct BOOTSTRAP REGISTRY TOPIC SCHEMA_FILE COUNT CHILDREN
    metrics_peer.py wait     BOOTSTRAP GROUP TOTAL TOPIC...

- job: the metrics sink's work in Python: confluent-kafka `consume(500)` from the beginning of the topics,
  fastavro (writer schema from the registry by id, parsed once), and the definitions of DEFINITIONS_TOML
  (the sink's own file) applied with prometheus_client: counters of records or of a field, histograms of a
  field, `scale`, filters (`equals`, `ge`, `gt`, `le`, `lt`, `exists`), labels from paths with `normalise`
  (`trim`, `lower`, `upper`, `snake`), `max_length` and `default`. No cardinality guard (prometheus_client
  has none). Until COUNT records; prints records, seconds, CPU seconds, the same from the first record on
  (steady_…), live series and peak RSS as JSON;
- distinct: COUNT `UsageStats` events for CHILDREN children in turn (CHILDREN live series for a metric
  labelled by child);
- wait: polls GROUP's committed offsets on the topics until they add up to TOTAL; prints "reached".
"""

import io
import json
import re
import resource
import sys
import time
import tomllib
import urllib.request
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient


def report(**fields):
    fields["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(fields))


def lookup(value, path):
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def normalised(v, spec):
    if v is None:
        return spec.get("default", "none")
    if isinstance(v, bool):
        s = "true" if v else "false"
    else:
        s = str(v)
    for n in spec.get("normalise", []):
        if n == "trim":
            s = s.strip()
        elif n == "lower":
            s = s.lower()
        elif n == "upper":
            s = s.upper()
        elif n == "snake":
            s = re.sub(r"[^0-9a-z]+", "_", s.lower()).strip("_")
    return s[: spec.get("max_length", 64)]


def passes(value, filters):
    for f in filters:
        v = lookup(value, f["path"])
        if "equals" in f and v != f["equals"]:
            return False
        if "exists" in f and (v is not None) != f["exists"]:
            return False
        for op, test in (("ge", lambda a, b: a >= b), ("gt", lambda a, b: a > b), ("le", lambda a, b: a <= b), ("lt", lambda a, b: a < b)):
            if op in f and not (isinstance(v, (int, float)) and test(v, f[op])):
                return False
    return True


def job(bootstrap, registry, definitions, count, *topics):
    import fastavro
    from prometheus_client import CollectorRegistry, Counter, Histogram

    r0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.monotonic()
    reg = CollectorRegistry()
    metrics = []
    for d in tomllib.load(open(definitions, "rb"))["metric"]:
        labels = {k: ({"path": v} if isinstance(v, str) else v) for k, v in d.get("labels", {}).items()}
        names = d.get("label_order") or sorted(labels)
        name = d["name"].removesuffix("_total")
        if d["type"] == "histogram":
            m = Histogram(name, d["help"], names, buckets=d["buckets"], registry=reg)
        else:
            m = Counter(name, d["help"], names, registry=reg)
        metrics.append((set(d.get("topics", topics)), d, m, [(n, labels[n]) for n in names]))
    by_topic = {t: [m for m in metrics if t in m[0]] for t in topics}
    schemas = {}

    def reader(schema_id):
        if schema_id not in schemas:
            with urllib.request.urlopen(f"{registry}/schemas/ids/{schema_id}") as r:
                schemas[schema_id] = fastavro.parse_schema(json.loads(json.loads(r.read())["schema"]))
        return schemas[schema_id]

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"py-metrics-{uuid.uuid4()}", "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe(list(topics))
    done, first = 0, None
    while done < int(count):
        for msg in consumer.consume(500, 1.0):
            if msg.error():
                continue
            if first is None:
                first = (time.monotonic(), resource.getrusage(resource.RUSAGE_SELF))
            raw = msg.value()
            value = fastavro.schemaless_reader(io.BytesIO(raw[5:]), reader(int.from_bytes(raw[1:5], "big")), return_record_name=False)
            for _, d, m, labels in by_topic.get(msg.topic(), []):
                if not passes(value, d.get("filter", [])):
                    continue
                child = m.labels(*[normalised(lookup(value, spec["path"]), spec) for _, spec in labels]) if labels else m
                amount = 1.0
                if "value" in d:
                    v = lookup(value, d["value"])
                    if not isinstance(v, (int, float)):
                        continue
                    amount = float(v) * d.get("scale", 1.0)
                    if d["type"] != "histogram" and amount < 0:
                        continue  # a counter never goes down (the sink counts it as an invalid value)
                if d["type"] == "histogram":
                    child.observe(amount)
                else:
                    child.inc(amount)
            done += 1
    end = time.monotonic()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    f_at, f_r = first or (end, r1)
    series = sum(len(fam.samples) for fam in reg.collect())
    consumer.close()
    report(
        records=done,
        seconds=end - start,
        cpu_seconds=(r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
        steady_seconds=end - f_at,
        steady_cpu_seconds=(r1.ru_utime - f_r.ru_utime) + (r1.ru_stime - f_r.ru_stime),
        samples=series,
    )


def distinct(bootstrap, registry, topic, schema_file, count, children):
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    ser = AvroSerializer(SchemaRegistryClient({"url": registry, "timeout": 30}), open(schema_file, encoding="utf-8").read())
    ctx = SerializationContext(topic, MessageField.VALUE)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "queue.buffering.max.messages": 1000000})
    now = int(time.time() * 1000)
    for i in range(int(count)):
        child = str(uuid.UUID(int=0x0B6C5D1E2F3A4B5C8D9E000000000000 + i % int(children)))
        v = {
            "metadata": {"event_id": str(uuid.uuid4()), "occurred_at": now, "correlation_id": None, "causation_id": None, "producer": "bench", "schema_version": 1, "trace_parent": None},
            "child": {"child_id": child, "household_id": child},
            "device": {"device_id": f"bear-{i}", "firmware_version": "2.1.0"},
            "period_start": now - 86_400_000, "period_end": now, "conversation_count": 3,
            "message_count": 40, "talk_time_ms": 1_200_000, "feature_usage": {}, "daily": [],
        }
        while True:
            try:
                p.produce(topic, key=child.encode(), value=ser(v, ctx))
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
    if p.flush(120):
        sys.exit("undelivered records")
    print(json.dumps({"records": int(count)}))


def wait(bootstrap, group, total, *topics):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    parts = []
    for t in topics:
        md = admin.list_topics(t, timeout=30).topics[t]
        parts += [TopicPartition(t, p) for p in md.partitions]
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            got = sum(max(tp.offset, 0) for tp in consumer.committed(parts, timeout=10))
            if got >= int(total):
                print("reached", flush=True)
                return
        except Exception:  # the group's coordinator may be loading
            pass
        time.sleep(0.05)  # polling the committed offsets, as the bench's clock
    sys.exit(f"group {group} never committed {total} records")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"job": job, "distinct": distinct, "wait": wait}[cmd](*args)
