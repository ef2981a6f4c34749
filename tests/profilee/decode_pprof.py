#!/usr/bin/env python3
"""Decode a gzipped pprof file independently of wirelens, for tests/tests/profile.rs.

Compiles pprof.proto (beside this script) with protoc into a temporary directory, parses the
profile with Python's protobuf runtime and prints one JSON object:

    {"sample_types": [["samples", "count"], ["cpu", "nanoseconds"]],
     "period_type": ["cpu", "nanoseconds"], "period": 10101010,
     "duration_nanos": ..., "mappings": ["spin", ...],
     "samples": [{"values": [n, ns], "pid": 123, "comm": "spin",
                  "frames": ["leaf_spin", "middle", ...],    # leaf first
                  "modules": ["spin", "spin", ...]}]}        # each frame's mapping

Every id is checked: a sample naming a missing location, or a location a missing function,
is an error (exit 1).
"""

import gzip
import json
import os
import subprocess
import sys
import tempfile


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: decode_pprof.py FILE.pb.gz")
    here = os.path.dirname(os.path.abspath(__file__))
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            ["protoc", f"--proto_path={here}", f"--python_out={out}", "pprof.proto"],
            check=True,
        )
        sys.path.insert(0, out)
        import pprof_pb2  # noqa: E402

        with open(sys.argv[1], "rb") as f:
            raw = gzip.decompress(f.read())
        p = pprof_pb2.Profile()
        p.ParseFromString(raw)

    st = list(p.string_table)
    if not st or st[0] != "":
        sys.exit("string_table[0] must be empty")

    def s(i):
        if i < 0 or i >= len(st):
            sys.exit(f"string index {i} out of range")
        return st[i]

    functions = {f.id: s(f.name) for f in p.function}
    mappings = {m.id: s(m.filename) for m in p.mapping}
    locations = {}
    for loc in p.location:
        if loc.mapping_id and loc.mapping_id not in mappings:
            sys.exit(f"location {loc.id}: no mapping {loc.mapping_id}")
        module = mappings.get(loc.mapping_id, "")
        names = []
        for line in loc.line:
            if line.function_id not in functions:
                sys.exit(f"location {loc.id}: no function {line.function_id}")
            names.append((functions[line.function_id], module))
        locations[loc.id] = names
    samples = []
    for smp in p.sample:
        if len(smp.value) != len(p.sample_type):
            sys.exit("a sample's values do not match sample_type")
        frames = []
        for lid in smp.location_id:
            if lid not in locations:
                sys.exit(f"sample names missing location {lid}")
            frames.extend(locations[lid])
        modules = [m for _, m in frames]
        frames = [f for f, _ in frames]
        labels = {s(lb.key): (s(lb.str) if lb.str else lb.num) for lb in smp.label}
        samples.append(
            {
                "values": list(smp.value),
                "pid": labels.get("pid"),
                "comm": labels.get("comm"),
                "frames": frames,
                "modules": modules,
            }
        )
    print(
        json.dumps(
            {
                "sample_types": [[s(v.type), s(v.unit)] for v in p.sample_type],
                "period_type": [s(p.period_type.type), s(p.period_type.unit)],
                "period": p.period,
                "duration_nanos": p.duration_nanos,
                "mappings": sorted(set(mappings.values())),
                "samples": samples,
            }
        )
    )


if __name__ == "__main__":
    main()
