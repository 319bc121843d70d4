#!/usr/bin/env bash
# Builds .carry/ (gitignored), everything the GPU machine lacks for scripts/gpu/run_on_gpu.sh:
#   .carry/wheels/   kdkeras (this checkout, as a wheel) and keras, namex, optree for
#                    CPython 3.12 manylinux x86_64 (the machine has JAX, numpy, h5py,
#                    ml-dtypes, rich, absl-py, Pillow, but no Keras and no network)
#   .carry/data/cifar10-jpeg.tar.gz   the CIFAR-10 JPEG folder as one tar (55 MB of JPEGs,
#                    about 20 MB gzipped: their identical JPEG headers compress away);
#                    decoded there, never here (184 MB decoded is over the 64 MiB carry limit)
#   .carry/MANIFEST.json   git commit, versions and sha256 of every carried file
# Usage, from anywhere:  scripts/gpu/build_carry.sh [DATA_DIR]
#   DATA_DIR defaults to $KDKERAS_CIFAR10_JPEG, else ../shared/data/cifar10-jpeg.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
DATA_DIR=${1:-${KDKERAS_CIFAR10_JPEG:-../shared/data/cifar10-jpeg}}
KERAS_VERSION=${KERAS_VERSION:-3.15.1}
NAMEX_VERSION=${NAMEX_VERSION:-0.1.0}
OPTREE_VERSION=${OPTREE_VERSION:-0.20.0}
CARRY=.carry

test -d "$DATA_DIR/train" && test -d "$DATA_DIR/test" || {
  echo "No image folder with train/ and test/ at $DATA_DIR (pass DATA_DIR)." >&2; exit 1; }
rm -rf "$CARRY/wheels" "$CARRY/data"
mkdir -p "$CARRY/wheels" "$CARRY/data"

# Wheels for the machine's Python (3.12, x86-64), not this one's; --no-deps: Keras's other
# needs (absl-py, numpy, rich, h5py, ml-dtypes, packaging) are already installed there.
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  -d "$CARRY/wheels" "keras==$KERAS_VERSION" "namex==$NAMEX_VERSION" "optree==$OPTREE_VERSION"
# kdkeras from a copy, so that building leaves no build/ or egg-info in the checkout.
SRC=$(mktemp -d); trap 'rm -rf "$SRC"' EXIT
cp -r setup.py README.md requirements.txt requirements-dev.txt kdkeras "$SRC"
find "$SRC" -name __pycache__ -prune -exec rm -rf {} +
"$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$CARRY/wheels" "$SRC"

# One tar of <top>/{train,test}/<class>/<image>.jpg, files in a fixed order.
tar -C "$(dirname "$DATA_DIR")" --sort=name --owner=0 --group=0 --numeric-owner \
  --mtime='2000-01-01 00:00Z' -cf - "$(basename "$DATA_DIR")" | gzip -n -6 \
  > "$CARRY/data/cifar10-jpeg.tar.gz"

"$PY" - "$CARRY" "$DATA_DIR" <<'PYEOF'
import hashlib, json, subprocess, sys
from pathlib import Path
carry, data_dir = Path(sys.argv[1]), sys.argv[2]
def git(*args):
    return subprocess.run(["git", *args], capture_output=True, text=True).stdout.strip()
files = {str(p.relative_to(carry)): {"bytes": p.stat().st_size,
                                     "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
         for p in sorted(carry.rglob("*")) if p.is_file() and p.name != "MANIFEST.json"}
manifest = {"git_commit": git("rev-parse", "HEAD") + ("+dirty" if git("status", "--porcelain",
            "--untracked-files=no") else ""), "data_dir": data_dir, "files": files,
            "total_bytes": sum(f["bytes"] for f in files.values())}
(carry / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
print(f"{carry}: {len(files)} files, {manifest['total_bytes'] / 2**20:.1f} MiB "
      f"(the device tool carries 64 MiB in all, the working tree included)")
PYEOF
