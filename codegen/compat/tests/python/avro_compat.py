#!/usr/bin/env python3
"""Verdicts of Python avro's ReaderWriterCompatibilityChecker for schema pairs, for ursa-compat's differential test.

Input: a file of JSON lines {"reader": "<schema json>", "writer": "<schema json>"}.
Output: one line per input line, in order:
  "compatible", "incompatible KIND,KIND" (sorted distinct SchemaIncompatibilityType names, upper case),
  or "error <message>" when a schema does not parse.
Exit status 3 when the avro package (1.12.x) is missing.
"""

import json
import sys

try:
    import avro
    import avro.compatibility as compat
    import avro.schema
except ImportError:
    sys.stderr.write("python avro is not installed: run `cargo xtask test` or `python3 -m pip install avro==1.12.2`\n")
    sys.exit(3)

VERSION = getattr(avro, "__version__", "unknown")
if not VERSION.startswith("1.12"):
    sys.stderr.write(f"python avro {VERSION} found, 1.12.x needed: `python3 -m pip install avro==1.12.2`\n")
    sys.exit(3)


def verdict(reader_json: str, writer_json: str) -> str:
    try:
        reader = avro.schema.parse(reader_json)
        writer = avro.schema.parse(writer_json)
    except Exception as e:  # noqa: BLE001 - any parse failure is reported, not raised
        return "error " + " ".join(str(e).split())
    result = compat.ReaderWriterCompatibilityChecker().get_compatibility(reader, writer)
    if result.compatibility is compat.SchemaCompatibilityType.compatible:
        return "compatible"
    kinds = sorted({k.name.upper() for k in result.incompatibilities})
    return "incompatible " + ",".join(kinds)


def main() -> None:
    if len(sys.argv) != 2:
        sys.stderr.write("usage: avro_compat.py PAIRS.jsonl\n")
        sys.exit(2)
    out = []
    with open(sys.argv[1], encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            pair = json.loads(line)
            out.append(verdict(pair["reader"], pair["writer"]))
    sys.stdout.write("\n".join(out) + ("\n" if out else ""))


if __name__ == "__main__":
    main()
