"""Packs run directories into parts small enough for the device tool, and unpacks them.

    python runs_archive.py pack ROOT OUT/runs.tar.gz     # -> OUT/runs.tar.gz.part-00, -01, ...
    python runs_archive.py unpack DIR ROOT               # DIR holds runs.tar.gz.part-*

A run directory is resumable from its newest checkpoint alone, so older
checkpoints and temporary files are left out; parts are at most 15 MiB (the
tool returns files of up to 16 MiB, 8 files in all).
"""

import io
import sys
import tarfile
from pathlib import Path

PART_BYTES = 15 << 20


def _members(root: Path):
    newest = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name.startswith(("tmp-", ".")):
            continue
        if path.parent.name == "checkpoints" and path.name.startswith("epoch-"):
            newest[path.parent] = path  # sorted: the last is the newest epoch
            continue
        yield path
    yield from newest.values()


def pack(root, target) -> list:
    root, target = Path(root), Path(target)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in _members(root):
            tar.add(path, arcname=str(path.relative_to(root)))
    data = buffer.getvalue()
    parts = []
    for i, start in enumerate(range(0, len(data), PART_BYTES)):
        part = target.with_name(f"{target.name}.part-{i:02d}")
        part.write_bytes(data[start:start + PART_BYTES])
        parts.append(part)
    return parts


def unpack(folder, root) -> int:
    parts = sorted(Path(folder).glob("*.part-*"))
    if not parts:
        return 0
    data = b"".join(p.read_bytes() for p in parts)
    Path(root).mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(root, filter="data")
        return len(tar.getmembers())


if __name__ == "__main__":
    command, source, destination = sys.argv[1:4]
    if command == "pack":
        print(*pack(source, destination), sep="\n")
    elif command == "unpack":
        print(f"{unpack(source, destination)} files restored into {destination}")
    else:
        sys.exit(f"Unknown command {command!r}: pack or unpack.")
