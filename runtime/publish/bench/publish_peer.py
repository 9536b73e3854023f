"""The Python peer of `cargo xtask bench publish`: confluent-kafka's Producer with its AvroSerializer (keys
and values, against the same Schema Registry), configured like ursa's publisher (enable.idempotence, acks=all,
lz4, linger.ms as given, murmur2_random), publishing the same MessageReceived event.

usage: publish_peer.py BOOTSTRAP REGISTRY_URL TOPIC SCHEMA_FILE RECORD_FILE RATES SECONDS MAX_EVENTS LINGER_MS

RATES is a comma-separated list of steady rates (events/s, may be empty), each run for SECONDS after a
one-second warm-up; then MAX_EVENTS (0: none) are produced as fast as the producer takes them. Latency is from `produce()` to the delivery
callback (served by `poll()` with a timeout up to the next send, so callbacks are not delayed by the loop).
Prints one JSON object.
"""
import json
import sys
import time

import confluent_kafka
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, int(round(p / 100.0 * (len(sorted_values) - 1))))
    return sorted_values[i]


def main():
    bootstrap, registry, topic, schema_file, record_file, rates, seconds, max_events, linger = sys.argv[1:10]
    seconds = float(seconds)
    client = SchemaRegistryClient({"url": registry, "timeout": 30})
    value_ser = AvroSerializer(client, open(schema_file, encoding="utf-8").read())
    key_ser = AvroSerializer(client, '"string"')
    record = json.load(open(record_file, encoding="utf-8"))
    # The JSON record has the logical types as their underlying values; give fastavro the Python types.
    import datetime
    import uuid
    utc = datetime.timezone.utc
    record["metadata"]["event_id"] = uuid.UUID(record["metadata"]["event_id"])
    record["metadata"]["occurred_at"] = datetime.datetime.fromtimestamp(record["metadata"]["occurred_at"] / 1000, utc)
    for f in ("message_id", "conversation_id"):
        record[f] = uuid.UUID(record[f])
    for f in ("child_id", "household_id"):
        record["child"][f] = uuid.UUID(record["child"][f])
    record["captured_at"] = datetime.datetime.fromtimestamp(record["captured_at"] / 1_000_000, utc)
    key = str(record["conversation_id"])
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "lz4",
        "linger.ms": int(linger),
        "partitioner": "murmur2_random",
        "queue.buffering.max.messages": 100000,
    })
    vctx = SerializationContext(topic, MessageField.VALUE)
    kctx = SerializationContext(topic, MessageField.KEY)
    latencies = []
    errors = []

    def send(measure):
        t0 = time.perf_counter()

        def done(err, msg):
            if err is not None:
                errors.append(str(err))
            elif measure:
                latencies.append(time.perf_counter() - t0)

        while True:
            try:
                producer.produce(topic, key=key_ser(key, kctx), value=value_ser(record, vctx), on_delivery=done)
                return
            except BufferError:
                producer.poll(0.001)

    def steady(rate, duration, measure):
        interval = 1.0 / rate
        start = time.perf_counter()
        sent = 0
        while True:
            now = time.perf_counter()
            elapsed = now - start
            if elapsed >= duration:
                break
            due = int(elapsed * rate) + 1
            while sent < due:
                send(measure)
                sent += 1
            next_at = start + sent * interval
            producer.poll(max(0.0, next_at - time.perf_counter()))
        producer.flush(60)
        return sent, time.perf_counter() - start

    version = confluent_kafka.version()
    version = version[0] if isinstance(version, tuple) else version
    out = {"confluent_kafka": version, "librdkafka": confluent_kafka.libversion()[0], "steady": []}
    for rate in [int(r) for r in rates.split(",") if r]:
        steady(rate, 1.0, False)
        latencies.clear()
        sent, took = steady(rate, seconds, True)
        lat = sorted(latencies)
        out["steady"].append({
            "rate": rate,
            "sent": sent,
            "acked": len(lat),
            "events_per_s": len(lat) / took if took > 0 else 0,
            "p50_ms": percentile(lat, 50) * 1000 if lat else None,
            "p99_ms": percentile(lat, 99) * 1000 if lat else None,
            "p999_ms": percentile(lat, 99.9) * 1000 if lat else None,
            "max_ms": lat[-1] * 1000 if lat else None,
        })
    n = int(max_events)
    if n > 0:
        start = time.perf_counter()
        for _ in range(n):
            send(False)
            producer.poll(0)
        producer.flush(120)
        took = time.perf_counter() - start
        out["max"] = {"events": n, "seconds": took, "events_per_s": n / took}
    out["errors"] = errors[:5]
    print(json.dumps(out))
    if errors:
        sys.exit(f"{len(errors)} delivery errors, e.g. {errors[0]}")


if __name__ == "__main__":
    main()
