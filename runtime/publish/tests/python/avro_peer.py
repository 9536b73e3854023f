"""Reads what ursa's publisher wrote with confluent-kafka's AvroDeserializer (keys and values), against a
Schema Registry.

usage: avro_peer.py consume BOOTSTRAP REGISTRY_URL TOPIC COUNT

Prints one JSON line per record: partition, offset, the key and the value as the AvroDeserializer returns them
(UUIDs, decimals and times as strings, bytes as hex), and the headers. Exits non-zero if fewer than COUNT
records arrive within 60 s.
"""
import datetime
import decimal
import json
import sys
import time
import uuid

from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def plain(v):
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, datetime.datetime):
        return int(v.timestamp() * 1000)
    if isinstance(v, (datetime.date, datetime.time)):
        return v.isoformat()
    return v


def consume(bootstrap, registry, topic, count):
    client = SchemaRegistryClient({"url": registry, "timeout": 30})
    deserializer = AvroDeserializer(client)
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"avro-peer-{uuid.uuid4()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe([topic])
    seen = 0
    deadline = time.monotonic() + 60
    while seen < count and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            sys.exit(f"consume error: {msg.error()}")
        key = deserializer(msg.key(), SerializationContext(topic, MessageField.KEY))
        value = deserializer(msg.value(), SerializationContext(topic, MessageField.VALUE))
        headers = {k: (v.decode() if v is not None else None) for k, v in (msg.headers() or [])}
        print(json.dumps({
            "partition": msg.partition(),
            "offset": msg.offset(),
            "key": plain(key),
            "value": plain(value),
            "headers": headers,
        }, ensure_ascii=False), flush=True)
        seen += 1
    consumer.close()
    if seen < count:
        sys.exit(f"only {seen} of {count} records arrived")


def main():
    if sys.argv[1:2] == ["consume"]:
        bootstrap, registry, topic, count = sys.argv[2:6]
        consume(bootstrap, registry, topic, int(count))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
