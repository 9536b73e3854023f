#!/usr/bin/env python3
"""fastavro peer of the `codegen` benchmark (run by `cargo xtask bench codegen`).

Usage: fastavro_peer.py DIR

DIR holds, per event, `NAME.avsc` (the writer schema, `T::SCHEMA` of the generated type) and `NAME.bin`
(one Avro datum written by the generated code). For each event this times, with the schema parsed once by
`fastavro.parse_schema`:

- decode: `fastavro.schemaless_reader` of the datum (logical types converted, fastavro's default);
- encode: `fastavro.schemaless_writer` of the decoded record to a fresh buffer;

checks that the re-encoded bytes equal the input, and prints one JSON object on stdout:

    {"fastavro_version": "...", "python_version": "...",
     "events": {"NAME": {"bytes": N, "decode_ns": ..., "encode_ns": ..., "roundtrip_identical": true}}}

ns/op is the median over several timed runs of a loop sized to take at least ~0.2 s (the minimum is
reported as `*_min_ns`).
"""

import io
import json
import pathlib
import platform
import statistics
import sys
import time

import fastavro

TARGET_RUN_NS = 200_000_000
REPEATS = 7


def time_per_op(fn):
    """Median and minimum ns per call of `fn` over REPEATS runs of a calibrated loop."""
    fn()  # warm up
    n = 1
    while True:
        start = time.perf_counter_ns()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter_ns() - start
        if elapsed >= TARGET_RUN_NS // 10:
            break
        n *= 2
    n = max(1, int(n * TARGET_RUN_NS / max(elapsed, 1)))
    runs = []
    for _ in range(REPEATS):
        start = time.perf_counter_ns()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter_ns() - start) / n)
    return statistics.median(runs), min(runs)


def bench_event(schema_path, datum_path):
    schema = fastavro.parse_schema(json.loads(schema_path.read_text()))
    data = datum_path.read_bytes()

    def decode():
        return fastavro.schemaless_reader(io.BytesIO(data), schema, None)

    record = decode()

    def encode():
        out = io.BytesIO()
        fastavro.schemaless_writer(out, schema, record)
        return out.getvalue()

    identical = encode() == data
    decode_ns, decode_min = time_per_op(decode)
    encode_ns, encode_min = time_per_op(encode)
    return {
        "bytes": len(data),
        "decode_ns": decode_ns,
        "decode_min_ns": decode_min,
        "encode_ns": encode_ns,
        "encode_min_ns": encode_min,
        "roundtrip_identical": identical,
    }


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    directory = pathlib.Path(sys.argv[1])
    events = {}
    for schema_path in sorted(directory.glob("*.avsc")):
        datum_path = schema_path.with_suffix(".bin")
        if not datum_path.exists():
            continue
        print(f"fastavro: timing {schema_path.stem}", file=sys.stderr)
        events[schema_path.stem] = bench_event(schema_path, datum_path)
    if not events:
        print(f"no NAME.avsc + NAME.bin pairs in {directory}", file=sys.stderr)
        return 1
    json.dump(
        {
            "fastavro_version": fastavro.__version__,
            "python_version": platform.python_version(),
            "events": events,
        },
        sys.stdout,
    )
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
