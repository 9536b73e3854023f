"""Produces Avro records to Kafka with confluent-kafka's AvroSerializer against a Schema Registry.

usage: produce_avro.py BOOTSTRAP REGISTRY_URL TOPIC SCHEMA_FILE COUNT

Values are generated from the schema (valid for its logical types). Prints one JSON line per record with the
fields the test checks. Exits non-zero on any delivery error.
"""
import datetime
import json
import random
import sys
import uuid

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

rng = random.Random(7)
named = {}


def value(schema, ns=None):
    if isinstance(schema, list):
        branches = [b for b in schema if b != "null"]
        if "null" in schema and rng.random() < 0.3:
            return None
        return value(rng.choice(branches), ns)
    if isinstance(schema, str):
        if schema in named:
            return value(named[schema], ns)
        if ns and f"{ns}.{schema}" in named:
            return value(named[f"{ns}.{schema}"], ns)
        schema = {"type": schema}
    t = schema["type"]
    lt = schema.get("logicalType")
    if isinstance(t, (dict, list)):
        return value(t, ns)
    if t in ("record", "enum", "fixed"):
        name = schema["name"]
        full = name if "." in name else f"{schema.get('namespace', ns)}.{name}"
        named[full] = schema
        ns = full.rsplit(".", 1)[0]
    if t == "record":
        return {f["name"]: value(f["type"], ns) for f in schema["fields"]}
    if t == "enum":
        return rng.choice(schema["symbols"])
    if t == "fixed":
        return bytes(rng.randrange(256) for _ in range(schema["size"]))
    if t == "array":
        return [value(schema["items"], ns) for _ in range(rng.randrange(3))]
    if t == "map":
        return {f"k{i}": value(schema["values"], ns) for i in range(rng.randrange(3))}
    if lt == "uuid":
        return str(uuid.UUID(int=rng.getrandbits(128)))
    if lt in ("timestamp-millis", "timestamp-micros"):
        return datetime.datetime(2026, 11, 26, 12, 0, tzinfo=datetime.timezone.utc) + datetime.timedelta(seconds=rng.randrange(10**6))
    if lt == "date":
        return datetime.date(2020, 1, 1) + datetime.timedelta(days=rng.randrange(2000))
    if lt == "decimal":
        import decimal
        return decimal.Decimal(rng.randrange(10**6)).scaleb(-schema.get("scale", 0))
    return {
        "null": lambda: None,
        "boolean": lambda: rng.random() < 0.5,
        "int": lambda: rng.randrange(-1000, 1000),
        "long": lambda: rng.randrange(-10**12, 10**12),
        "float": lambda: float(rng.randrange(1000)) / 4,
        "double": lambda: rng.random(),
        "bytes": lambda: bytes(rng.randrange(256) for _ in range(rng.randrange(8))),
        "string": lambda: "hello " + "".join(rng.choice("abcxyzé✓") for _ in range(rng.randrange(12))),
    }[t]()


def serialize(serializer, record, ctx, attempts=3):
    """The serializer's call, again when the registry leaves a request unanswered past the client's timeout
    (seen once from Apicurio in CI: the peer hung on a request with no timeout). Registering the same schema
    again, and fetching it again, are idempotent; each retry is reported on stderr."""
    try:  # the HTTP client confluent-kafka uses (httpx2, else httpx)
        from confluent_kafka.schema_registry.common._httpx_compat import httpx
    except ImportError:
        import httpx

    for attempt in range(1, attempts + 1):
        try:
            return serializer(record, ctx)
        except httpx.TimeoutException as e:
            if attempt == attempts:
                raise
            print(f"the schema registry did not answer ({e!r}); attempt {attempt + 1} of {attempts}", file=sys.stderr, flush=True)


def main():
    bootstrap, registry, topic, schema_file, count = sys.argv[1:6]
    schema_text = open(schema_file, encoding="utf-8").read()
    schema = json.loads(schema_text)
    serializer = AvroSerializer(SchemaRegistryClient({"url": registry, "timeout": 20}), schema_text)
    producer = Producer({"bootstrap.servers": bootstrap})
    errors = []
    for i in range(int(count)):
        record = value(schema)
        payload = serialize(serializer, record, SerializationContext(topic, MessageField.VALUE))
        producer.produce(topic, key=str(i).encode(), value=payload, on_delivery=lambda err, msg: err and errors.append(err))
        print(json.dumps({"sequence_number": record["sequence_number"], "text": record["text"]}, ensure_ascii=False))
    producer.flush(30)
    if errors or len(producer):
        sys.exit(f"delivery failed: {errors} ({len(producer)} undelivered)")


if __name__ == "__main__":
    main()
