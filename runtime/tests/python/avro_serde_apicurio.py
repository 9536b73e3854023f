"""confluent-kafka's AvroSerializer and AvroDeserializer with its SchemaRegistryClient, against any
Confluent-compatible registry (the Apicurio tests run it against the dev registry and Apicurio's ccompat API).

usage:
  avro_serde_apicurio.py serialize REGISTRY_URL TOPIC SCHEMA_FILE COUNT
      Serialises COUNT records generated from the schema (auto-registering it under TOPIC-value) and
      deserialises each back. Prints one JSON line per record: {"payload": hex, "sequence_number", "text",
      "roundtrip": whether the deserializer gave the record back}, then {"subject", "id", "version"} of the
      subject's latest version as the client sees it.
  avro_serde_apicurio.py deserialize REGISTRY_URL TOPIC
      Reads hex payloads (Confluent framing) from stdin, one per line, and prints each record the
      AvroDeserializer decodes (fetching the writer schema, and the schemas it references, by id) as JSON.
"""
import datetime
import decimal
import json
import os
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: E402
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer  # noqa: E402
from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: E402

from produce_avro import value  # noqa: E402


def plain(v):
    """A decoded or generated Avro value as JSON: UUIDs and decimals as text, timestamps as RFC 3339."""
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, datetime.datetime):
        return v.astimezone(datetime.timezone.utc).isoformat()
    if isinstance(v, datetime.date):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, bytes):
        return v.hex()
    return v


def serialize(client, topic, schema_file, count):
    schema_text = open(schema_file, encoding="utf-8").read()
    schema = json.loads(schema_text)
    serializer = AvroSerializer(client, schema_text)
    deserializer = AvroDeserializer(client)
    ctx = SerializationContext(topic, MessageField.VALUE)
    for _ in range(count):
        record = value(schema)
        payload = serializer(record, ctx)
        back = deserializer(payload, ctx)
        print(json.dumps({
            "payload": payload.hex(),
            "sequence_number": record["sequence_number"],
            "text": record["text"],
            "roundtrip": plain(back) == plain(record),
        }, ensure_ascii=False))
    latest = client.get_latest_version(f"{topic}-value")
    print(json.dumps({"subject": latest.subject, "id": latest.schema_id, "version": latest.version}))


def deserialize(client, topic):
    deserializer = AvroDeserializer(client)
    ctx = SerializationContext(topic, MessageField.VALUE)
    for line in sys.stdin:
        line = line.strip()
        if line:
            print(json.dumps(plain(deserializer(bytes.fromhex(line), ctx)), ensure_ascii=False))


def main():
    mode, registry, topic = sys.argv[1:4]
    client = SchemaRegistryClient({"url": registry, "timeout": 30})
    if mode == "serialize":
        serialize(client, topic, sys.argv[4], int(sys.argv[5]))
    elif mode == "deserialize":
        deserialize(client, topic)
    else:
        sys.exit(f"unknown mode {mode!r}: expected serialize or deserialize")


if __name__ == "__main__":
    main()
