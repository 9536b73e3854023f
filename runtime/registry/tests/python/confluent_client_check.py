#!/usr/bin/env python3
"""Drives a schema registry with Confluent's own Python client (confluent-kafka) and its Avro serdes.

Usage: confluent_client_check.py REGISTRY_URL

Exercises SchemaRegistryClient (register_schema, get_latest_version, get_schema, lookup_schema,
test_compatibility, set_compatibility, get_compatibility, get_subjects, delete_subject, errors) and
AvroSerializer/AvroDeserializer (no Kafka needed), including a schema with a reference to another subject.
Exits non-zero with a message on the first mismatch; on success prints one JSON line:
{"id": <registered id>, "framed": "<hex of the serialized record>", "ref_id": ..., "ref_framed": ...,
 "confluent_kafka": "<version>"}.
"""

import json
import sys

PIN = "confluent-kafka[avro,schemaregistry]==2.16.1"

try:
    import confluent_kafka
    from confluent_kafka.schema_registry import (
        Schema,
        SchemaReference,
        SchemaRegistryClient,
        SchemaRegistryError,
    )
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext
except ImportError as e:  # pragma: no cover - environment problem
    print(
        f"MISSING: confluent-kafka with its avro and schemaregistry extras is not importable ({e}). "
        f"Install it with: pip install '{PIN}'",
        file=sys.stderr,
    )
    sys.exit(3)


def fail(message):
    print(f"MISMATCH: {message}", file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def expect_error(call, status, code, what):
    try:
        result = call()
    except SchemaRegistryError as e:
        check(
            e.http_status_code == status and e.error_code == code,
            f"{what}: expected HTTP {status} / {code}, got {e.http_status_code} / {e.error_code} ({e.error_message})",
        )
        return
    fail(f"{what}: expected HTTP {status} / {code}, got a result {result!r}")


USER_V1 = {
    "type": "record",
    "name": "User",
    "namespace": "com.acme.py",
    "fields": [{"name": "id", "type": "long"}, {"name": "name", "type": "string"}],
}
USER_V2 = {
    "type": "record",
    "name": "User",
    "namespace": "com.acme.py",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "name", "type": "string"},
        {"name": "email", "type": ["null", "string"], "default": None},
    ],
}
ADDRESS = {
    "type": "record",
    "name": "Address",
    "namespace": "com.acme.py",
    "fields": [{"name": "street", "type": "string"}, {"name": "zip", "type": "string"}],
}
CUSTOMER = {
    "type": "record",
    "name": "Customer",
    "namespace": "com.acme.py",
    "fields": [{"name": "id", "type": "long"}, {"name": "address", "type": "com.acme.py.Address"}],
}


def main():
    if len(sys.argv) != 2:
        fail("usage: confluent_client_check.py REGISTRY_URL")
    url = sys.argv[1]
    conf = {"url": url, "timeout": 30}
    client = SchemaRegistryClient(conf)
    subject = "py-users-value"

    # --- registry client ---
    sid = client.register_schema(subject, Schema(json.dumps(USER_V1), "AVRO"))
    check(isinstance(sid, int) and sid > 0, f"register_schema returned {sid!r}")
    # A fresh client (no client-side cache) gets the same id back: registration is idempotent.
    again = SchemaRegistryClient(conf).register_schema(subject, Schema(json.dumps(USER_V1, indent=2), "AVRO"))
    check(again == sid, f"re-registering returned {again}, expected {sid}")

    latest = client.get_latest_version(subject)
    check(latest.schema_id == sid, f"get_latest_version id {latest.schema_id} != {sid}")
    check(latest.version == 1, f"get_latest_version version {latest.version} != 1")
    check(latest.subject == subject, f"get_latest_version subject {latest.subject!r}")
    check(json.loads(latest.schema.schema_str) == USER_V1, "get_latest_version schema differs")
    check(latest.schema.schema_type == "AVRO", f"schema type {latest.schema.schema_type!r}")

    fetched = SchemaRegistryClient(conf).get_schema(sid)
    check(json.loads(fetched.schema_str) == USER_V1, "get_schema returned another schema")
    check(fetched.schema_type == "AVRO", f"get_schema type {fetched.schema_type!r}")

    found = SchemaRegistryClient(conf).lookup_schema(subject, Schema(json.dumps(USER_V1), "AVRO"))
    check(found.schema_id == sid and found.version == 1, f"lookup_schema: id {found.schema_id} version {found.version}")
    expect_error(
        lambda: SchemaRegistryClient(conf).lookup_schema(subject, Schema(json.dumps(USER_V2), "AVRO")),
        404,
        40403,
        "lookup of an unregistered schema",
    )

    check(
        client.test_compatibility(subject, Schema(json.dumps(USER_V2), "AVRO")) is True,
        "test_compatibility(v2, latest) is not True",
    )
    check(
        client.test_compatibility(subject, Schema(json.dumps(USER_V2), "AVRO"), version=1, verbose=True) is True,
        "test_compatibility(v2, 1, verbose) is not True",
    )

    set_result = client.set_compatibility(subject, "full")
    level = set_result["compatibility"] if isinstance(set_result, dict) else set_result
    check(level == "FULL", f"set_compatibility returned {set_result!r}")
    check(client.get_compatibility(subject) == "FULL", "get_compatibility(subject) != FULL")
    check(client.get_compatibility() == "BACKWARD", "global compatibility changed")

    v2 = client.register_schema(subject, Schema(json.dumps(USER_V2), "AVRO"))
    check(v2 != sid, "v2 got v1's id")
    check(client.get_versions(subject) == [1, 2], f"get_versions: {client.get_versions(subject)}")

    subjects = client.get_subjects()
    check(subject in subjects, f"get_subjects: {subjects}")

    expect_error(lambda: client.get_latest_version("py-no-such-subject"), 404, 40401, "unknown subject")
    expect_error(lambda: SchemaRegistryClient(conf).get_schema(987654), 404, 40403, "unknown id")
    expect_error(
        lambda: client.register_schema("py-bad", Schema('{"type": "record", "name": "X"}', "AVRO")),
        422,
        42201,
        "invalid schema",
    )

    # --- serdes: AvroSerializer registers (auto.register.schemas) and frames; the deserializer fetches by id ---
    ctx = SerializationContext("py-users", MessageField.VALUE)
    serializer = AvroSerializer(SchemaRegistryClient(conf), json.dumps(USER_V1))
    record = {"id": 42, "name": "Ada"}
    framed = serializer(record, ctx)
    check(framed[0] == 0, f"magic byte {framed[0]}")
    check(int.from_bytes(framed[1:5], "big") == sid, f"framed id {int.from_bytes(framed[1:5], 'big')} != {sid}")
    deserializer = AvroDeserializer(SchemaRegistryClient(conf))
    back = deserializer(framed, ctx)
    check(back == record, f"round trip gave {back!r}")
    # Reading v1 data with v2 as the reader schema (schema resolution with the default).
    reader = AvroDeserializer(SchemaRegistryClient(conf), json.dumps(USER_V2))
    check(reader(framed, ctx) == {"id": 42, "name": "Ada", "email": None}, "v1 data read with v2")

    # --- references: a shared type in one subject, used from another ---
    address_id = client.register_schema("py-address", Schema(json.dumps(ADDRESS), "AVRO"))
    refs = [SchemaReference("com.acme.py.Address", "py-address", 1)]
    customer_schema = Schema(json.dumps(CUSTOMER), "AVRO", refs)
    ref_ctx = SerializationContext("py-customers", MessageField.VALUE)
    ref_serializer = AvroSerializer(SchemaRegistryClient(conf), customer_schema)
    customer = {"id": 7, "address": {"street": "1 Main St", "zip": "12345"}}
    ref_framed = ref_serializer(customer, ref_ctx)
    ref_id = int.from_bytes(ref_framed[1:5], "big")
    check(ref_id not in (sid, v2, address_id), f"customer id {ref_id} collides")
    got = SchemaRegistryClient(conf).get_schema(ref_id)
    check(
        [(r.name, r.subject, r.version) for r in got.references] == [("com.acme.py.Address", "py-address", 1)],
        f"references by id: {got.references}",
    )
    check(client.get_referenced_by("py-address", 1) == [ref_id], "referencedby")
    ref_back = AvroDeserializer(SchemaRegistryClient(conf))(ref_framed, ref_ctx)
    check(ref_back == customer, f"reference round trip gave {ref_back!r}")

    # --- normalize and contexts ---
    ordered = {"type": "record", "name": "Norm", "namespace": "py", "aliases": ["A", "B"], "owner": "x", "tier": 1,
               "fields": [{"name": "n", "type": "int"}]}
    reordered = {"fields": [{"type": "int", "name": "n"}], "tier": 1, "owner": "x", "aliases": ["B", "A"],
                 "namespace": "py", "name": "Norm", "type": "record"}
    nid = client.register_schema("py-norm", Schema(json.dumps(ordered), "AVRO"), normalize_schemas=True)
    nid2 = SchemaRegistryClient(conf).register_schema(
        "py-norm", Schema(json.dumps(reordered), "AVRO"), normalize_schemas=True
    )
    check(nid2 == nid, f"normalized registrations gave ids {nid} and {nid2}")
    found = SchemaRegistryClient(conf).lookup_schema(
        "py-norm", Schema(json.dumps(reordered), "AVRO"), normalize_schemas=True
    )
    check(found.schema_id == nid and found.version == 1, f"normalized lookup gave {found!r}")
    ctx_id = client.register_schema(":.py-ctx:orders", Schema(json.dumps(USER_V2), "AVRO"))
    check(ctx_id == 1, f"the first id of a new context is {ctx_id}, not 1")
    in_ctx = SchemaRegistryClient(conf).get_schema(ctx_id, subject_name=":.py-ctx:")
    check(json.loads(in_ctx.schema_str) == USER_V2, "get_schema with a context subject")
    check(":.py-ctx:orders" in client.get_subjects(), "a context's subject is listed")

    # --- deleting ---
    client.register_schema("py-tmp", Schema('"string"', "AVRO"))
    check(client.delete_subject("py-tmp") == [1], "soft delete_subject")
    check("py-tmp" not in client.get_subjects(), "soft-deleted subject still listed")
    check("py-tmp" in client.get_subjects(deleted=True), "soft-deleted subject not listed with deleted=True")
    check(client.delete_subject("py-tmp", permanent=True) == [1], "permanent delete_subject")
    check("py-tmp" not in client.get_subjects(deleted=True), "permanently deleted subject still listed")
    expect_error(lambda: client.delete_subject("py-tmp"), 404, 40401, "deleting a deleted subject")

    print(
        json.dumps(
            {
                "id": sid,
                "framed": framed.hex(),
                "ref_id": ref_id,
                "ref_framed": ref_framed.hex(),
                "confluent_kafka": confluent_kafka.version(),
            }
        )
    )


if __name__ == "__main__":
    main()
