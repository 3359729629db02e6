#!/usr/bin/env python3
"""Builds testdata/rerankers/*/model.safetensors from each folder's
weights.json, with the standard library alone.

The reranker fixtures are small random cross-encoders. Their weights are
not tracked: weights.json names every tensor, its shape and how it is
filled (LayerNorm gains ones, their biases zeros, everything else uniform
in ±scale from one SplitMix64 stream), so this script makes the same
bytes on every machine, and scripts/reranker-fixture.py (which needs
torch) fills the models it scores from the same stream. Tests call it
before they read a fixture; it writes nothing when the file is current.

    python3 scripts/reranker_weights.py [FIXTURE_DIR ...]   # default: every one
"""

from __future__ import annotations

import json
import os
import struct
import sys
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent / "testdata" / "rerankers"
MASK = (1 << 64) - 1


def splitmix(seed: int) -> Iterator[int]:
    x = seed & MASK
    while True:
        x = (x + 0x9E3779B97F4A7C15) & MASK
        z = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        yield z ^ (z >> 31)


def tensors(manifest: dict) -> Iterator[tuple[str, list[int], bytes]]:
    """Each tensor's name, shape and little-endian f32 bytes, in order."""
    stream, scale = splitmix(manifest["seed"]), manifest["scale"]
    for t in manifest["tensors"]:
        n = 1
        for d in t["shape"]:
            n *= d
        if t["fill"] == "ones":
            data = struct.pack(f"<{n}f", *([1.0] * n))
        elif t["fill"] == "zeros":
            data = bytes(4 * n)
        else:
            data = struct.pack(
                f"<{n}f",
                *((((next(stream) >> 40) + 0.5) / (1 << 23) - 1.0) * scale for _ in range(n)),
            )
        yield t["name"], t["shape"], data


def build(fixture: Path) -> bool:
    """Writes fixture/model.safetensors unless it is newer than its
    weights.json; true when it wrote."""
    manifest_path, out = fixture / "weights.json", fixture / "model.safetensors"
    if out.exists() and out.stat().st_mtime >= manifest_path.stat().st_mtime:
        return False
    header, blobs, offset = {}, [], 0
    for name, shape, data in tensors(json.loads(manifest_path.read_text())):
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    # Several test binaries may build at once: each writes its own file and
    # renames it into place, so a reader never sees half of one.
    tmp = fixture / f".model.safetensors.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for b in blobs:
            f.write(b)
    os.replace(tmp, out)
    return True


def main() -> None:
    dirs = [Path(a) for a in sys.argv[1:]] or sorted(p.parent for p in ROOT.glob("*/weights.json"))
    for d in dirs:
        build(d)


if __name__ == "__main__":
    main()
