#!/usr/bin/env python3
"""Python peers of `cargo xtask bench notify`.

Usage:

    notify_peer.py topics    BOOTSTRAP NAME:PARTITIONS...
    notify_peer.py guardians BOOTSTRAP REGISTRY TOPIC SCHEMA_FILE HOUSEHOLDS
    notify_peer.py steady    BOOTSTRAP REGISTRY TOPIC SCHEMA_FILE HOUSEHOLDS RATE SECONDS OUT_FILE
    notify_peer.py backlog   BOOTSTRAP REGISTRY TOPIC SCHEMA_FILE HOUSEHOLDS COUNT
    notify_peer.py wait      DATABASE_URL SQL AT_LEAST
    notify_peer.py wait_group BOOTSTRAP GROUP MEMBERS
    notify_peer.py job       DATABASE_URL BOOTSTRAP REGISTRY TOPIC COUNT SMTP_PORT WEBHOOK_URL WEBHOOK_SECRET

- topics: creates the topics (replication factor 1);
- guardians: one `com.teddy.guardian.GuardianContactUpdated` per household (the primary guardian: id = the
  household id; an email address, an E.164 phone number, one FCM device), Avro through confluent-kafka's
  AvroSerializer;
- steady: `com.teddy.child.SafetyViolation` events of severity HIGH for households in turn, at RATE per
  second for SECONDS, each send's time (Unix ns, taken just before `produce`) written to OUT_FILE as JSON
  {event id: ns};
- backlog: COUNT `com.teddy.analytics.UsageStats` events, as fast as the producer takes them;
- wait_group: polls the consumer group until it is stable with MEMBERS members, each assigned partitions;
- wait: polls SQL (a count) every 50 ms until it reaches AT_LEAST; prints "reached";
- job: the notify flow of the bench's `normal` rule in Python, on the same ledger design: confluent-kafka
  `consume(500)`, fastavro (writer schema from the registry by id), the guardian looked up in the directory
  `ursa run` built (read once), and per notification (email and webhook) a ledger row written `pending` and
  committed before the send and `sent` with the provider's answer after; email with smtplib over one kept
  connection, the webhook with requests (one kept connection) signed by `standardwebhooks`; offsets
  committed after each batch's ledger rows. Prints records, seconds, CPU seconds (the process, librdkafka's
  threads included), the same from the first notification sent to the end (steady_…), and peak RSS as JSON.
"""

import datetime
import decimal
import io
import json
import resource
import sys
import time
import urllib.request
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic


def household(i):
    return str(uuid.UUID(int=(0x7D4F7C1E9A834C558F2C000000000000 + i)))


def child(i):
    return str(uuid.UUID(int=(0x0B6C5D1E2F3A4B5C8D9E000000000000 + i)))


def serializer_for(registry, schema_file, topic):
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    text = open(schema_file, encoding="utf-8").read()
    ser = AvroSerializer(SchemaRegistryClient({"url": registry, "timeout": 30}), text)
    ctx = SerializationContext(topic, MessageField.VALUE)
    return lambda v: ser(v, ctx)


def producer(bootstrap, linger_ms):
    return Producer({"bootstrap.servers": bootstrap, "linger.ms": linger_ms, "acks": "all"})


def finish(p):
    left = p.flush(120)
    if left:
        sys.exit(f"{left} records undelivered")


def metadata(event_id):
    return {
        "event_id": event_id,
        "occurred_at": int(time.time() * 1000),
        "correlation_id": None,
        "causation_id": None,
        "producer": "bench",
        "schema_version": 1,
        "trace_parent": None,
    }


def guardians(bootstrap, registry, topic, schema_file, households):
    ser = serializer_for(registry, schema_file, topic)
    p = producer(bootstrap, 5)
    for i in range(int(households)):
        h = household(i)
        v = {
            "metadata": metadata(str(uuid.uuid4())),
            "guardian_id": h,
            "household_id": h,
            "removed": False,
            "email": f"guardian{i}@family.example",
            "phone": f"+1500555{i % 10000:04d}",
            "webhook_url": None,
            "locale": "en",
            "time_zone": "UTC",
            "quiet_hours": None,
            "preferences": None,
            "devices": [{"token": f"fcm-bench-device-{i}", "platform": "FCM", "active": True}],
        }
        p.produce(topic, key=h.encode(), value=ser(v))
        p.poll(0)
    finish(p)
    print(json.dumps({"records": int(households)}))


def violation(i, households):
    n = i % int(households)
    return {
        "metadata": metadata(str(uuid.uuid4())),
        "violation_id": str(uuid.uuid4()),
        "child": {"child_id": child(n), "household_id": household(n)},
        "device": {"device_id": f"bear-{n}", "firmware_version": "2.1.0"},
        "conversation_id": str(uuid.uuid4()),
        "message_id": None,
        "severity": "HIGH",
        "category": "SELF_HARM",
        "excerpt": "something worrying was said",
        "content_hash": bytes(32),
        "detected_at": int(time.time() * 1000),
        "detector_model": "guard-1",
        "confidence": 0.93,
        "risk_score": decimal.Decimal("87.5000"),
        "action_taken": "GUARDIAN_NOTIFIED",
        "guardian_notified": True,
    }


def steady(bootstrap, registry, topic, schema_file, households, rate, seconds, out_file):
    ser = serializer_for(registry, schema_file, topic)
    p = producer(bootstrap, 0)
    rate, total = float(rate), int(float(rate) * float(seconds))
    sent = {}
    start = time.monotonic()
    for i in range(total):
        due = start + i / rate
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)  # pacing the producer, not synchronisation
        v = violation(i, households)
        value = ser(v)
        sent[v["metadata"]["event_id"]] = time.time_ns()
        p.produce(topic, key=v["child"]["child_id"].encode(), value=value)
        p.poll(0)
    finish(p)
    late = time.monotonic() - start - total / rate
    with open(out_file, "w", encoding="utf-8") as f:
        json.dump(sent, f)
    print(json.dumps({"records": total, "behind_seconds": max(0.0, late)}))


def usage(i, households):
    n = i % int(households)
    now = int(time.time() * 1000)
    return {
        "metadata": metadata(str(uuid.uuid4())),
        "child": {"child_id": child(n), "household_id": household(n)},
        "device": {"device_id": f"bear-{n}", "firmware_version": "2.1.0"},
        "period_start": now - 86_400_000,
        "period_end": now,
        "conversation_count": 3,
        "message_count": 40 + i % 17,
        "talk_time_ms": 1_200_000,
        "feature_usage": {},
        "daily": [],
    }


def backlog(bootstrap, registry, topic, schema_file, households, count):
    ser = serializer_for(registry, schema_file, topic)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "queue.buffering.max.messages": 1000000})
    start = time.monotonic()
    for i in range(int(count)):
        v = usage(i, households)
        while True:
            try:
                p.produce(topic, key=v["child"]["child_id"].encode(), value=ser(v))
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
    finish(p)
    print(json.dumps({"records": int(count), "seconds": time.monotonic() - start}))


def wait(url, sql, at_least):
    import psycopg

    with psycopg.connect(url, autocommit=True) as c:
        while True:
            try:
                if c.execute(sql).fetchone()[0] >= int(at_least):
                    break
            except psycopg.errors.UndefinedTable:
                pass  # the sink has not created its tables yet
            time.sleep(0.05)  # polling a count, as the bench's clock
    print("reached", flush=True)


def wait_group(bootstrap, group, members):
    """Polls the consumer group until it is stable with MEMBERS members, each with partitions."""
    from confluent_kafka import ConsumerGroupState

    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            d = admin.describe_consumer_groups([group])[group].result(10)
            if (
                d.state == ConsumerGroupState.STABLE
                and len(d.members) == int(members)
                and all(m.assignment and m.assignment.topic_partitions for m in d.members)
            ):
                print(json.dumps({"members": len(d.members)}))
                return
        except Exception:  # the group may not exist yet
            pass
        time.sleep(0.1)  # polling the group's state
    sys.exit(f"group {group} never became stable with {members} members")


def plain(v):
    if isinstance(v, (uuid.UUID, decimal.Decimal)):
        return str(v)
    if isinstance(v, datetime.datetime):
        return v.isoformat().replace("+00:00", "Z")
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    return str(v)


def job(url, bootstrap, registry, topic, count, smtp_port, webhook_url, secret):
    import smtplib
    from email.message import EmailMessage

    import fastavro
    import psycopg
    import requests
    import standardwebhooks

    r0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.monotonic()
    db = psycopg.connect(url)
    db.execute(
        """CREATE TABLE IF NOT EXISTS py_ledger (
             event_id TEXT NOT NULL, guardian_id TEXT NOT NULL, channel TEXT NOT NULL, target TEXT NOT NULL,
             round INT NOT NULL, state TEXT NOT NULL, provider_id TEXT, response TEXT, updated_at BIGINT NOT NULL,
             PRIMARY KEY (event_id, guardian_id, channel, target, round))"""
    )
    db.commit()
    directory = {}
    for gid, hid, email in db.execute("SELECT guardian_id, household_id, email FROM notify_guardian"):
        directory.setdefault(hid, []).append((gid, email))
    db.commit()
    smtp = smtplib.SMTP("127.0.0.1", int(smtp_port))
    http = requests.Session()
    signer = standardwebhooks.Webhook(secret)
    schemas = {}

    def reader(schema_id):
        if schema_id not in schemas:
            with urllib.request.urlopen(f"{registry}/schemas/ids/{schema_id}") as r:
                schemas[schema_id] = fastavro.parse_schema(json.loads(json.loads(r.read())["schema"]))
        return schemas[schema_id]

    def send_email(to, event_id, value):
        m = EmailMessage()
        m["From"] = "alerts@teddy.example"
        m["To"] = to
        m["Subject"] = f"News EV:{event_id}"
        m.set_content(f"{value['message_count']} messages")
        smtp.send_message(m)
        return "250"

    def send_webhook(gid, event_id, value):
        body = json.dumps(
            {
                "type": "notification.usage",
                "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                "data": {"event_id": event_id, "guardian_id": gid, "priority": "normal", "rule": "usage", "event": value},
            },
            default=plain,
        )
        msg_id = "msg_" + uuid.uuid5(uuid.NAMESPACE_URL, f"{event_id}/{gid}").hex
        now = datetime.datetime.now(datetime.timezone.utc)
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signer.sign(msg_id, now, body),
        }
        r = http.post(webhook_url, data=body, headers=headers, timeout=10)
        r.raise_for_status()
        return msg_id

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"py-notify-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    done = 0
    first = None  # (monotonic, rusage) at the first notification sent
    while done < int(count):
        batch = consumer.consume(500, 1.0)
        for msg in batch:
            if msg.error():
                continue
            raw = msg.value()
            value = fastavro.schemaless_reader(io.BytesIO(raw[5:]), reader(int.from_bytes(raw[1:5], "big")))
            event_id = str(value["metadata"]["event_id"])
            for gid, email in directory.get(str(value["child"]["household_id"]), []):
                for channel, send in (("email", lambda: send_email(email, event_id, value)), ("webhook", lambda: send_webhook(gid, event_id, value))):
                    key = (event_id, gid, channel, "", 0)
                    row = db.execute(
                        "INSERT INTO py_ledger VALUES (%s, %s, %s, %s, %s, 'pending', NULL, NULL, %s) "
                        "ON CONFLICT DO NOTHING RETURNING state",
                        (*key, int(time.time() * 1000)),
                    ).fetchone()
                    db.commit()
                    if row is None:
                        continue  # an earlier run's entry: never sent twice
                    answer = send()
                    if first is None:
                        first = (time.monotonic(), resource.getrusage(resource.RUSAGE_SELF))
                    db.execute(
                        "UPDATE py_ledger SET state = 'sent', provider_id = %s, response = %s, updated_at = %s "
                        "WHERE event_id = %s AND guardian_id = %s AND channel = %s AND target = %s AND round = %s",
                        (answer, answer, int(time.time() * 1000), *key),
                    )
                    db.commit()
            done += 1
        if batch:
            consumer.commit(asynchronous=False)
    end = time.monotonic()
    seconds = end - start
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    f_at, f_r = first if first else (end, r1)
    consumer.close()
    smtp.quit()
    print(
        json.dumps(
            {
                "records": done,
                "notifications": 2 * done,
                "seconds": seconds,
                "cpu_seconds": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
                "steady_seconds": end - f_at,
                "steady_cpu_seconds": (r1.ru_utime - f_r.ru_utime) + (r1.ru_stime - f_r.ru_stime),
                "peak_rss_mib": r1.ru_maxrss / 1024,
            }
        )
    )


def create_topics(bootstrap, topics):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + 60
    while True:
        try:
            for f in admin.create_topics([NewTopic(t, num_partitions=int(n), replication_factor=1) for t, n in topics]).values():
                f.result(30)
            return
        except Exception as e:  # the broker may still be electing its controller
            if "TOPIC_ALREADY_EXISTS" in str(e):
                return
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "topics":
        create_topics(args[0], [a.split(":") for a in args[1:]])
        print("{}")
    else:
        {"guardians": guardians, "steady": steady, "backlog": backlog, "wait": wait, "wait_group": wait_group, "job": job}[cmd](*args)
