#!/usr/bin/env bash
# On the GPU machine (JAX with CUDA, no TensorFlow, no Keras, no network), from the
# repository root, after scripts/gpu/build_carry.sh built .carry/ here:
#   scripts/gpu/run_on_gpu.sh [run_experiment.py flags]      e.g. --preset=paper --seeds=0
# (through the device tool: run(command="scripts/gpu/run_on_gpu.sh --preset=smoke",
#  carry=[".carry"]).)
# 1. installs .carry/wheels (kdkeras, keras, namex, optree) into $SITE (/tmp/site);
# 2. if .carry/resume/ holds runs.tar.gz.part-* (from an earlier call's $OUT), unpacks them,
#    so every run continues from its last finished epoch;
#    With PARALLEL_TEACHERS=K it trains only the K teachers, one process per seed side by
#    side (logs in each run root's log.txt), e.g.
#      PARALLEL_TEACHERS=3 scripts/gpu/run_on_gpu.sh --epochs=40 --lr_decay_every=10
#    With SCRIPT=scripts/gpu/run_table.py it runs a whole reproduce table on the table
#    engine instead (one compiled program for every row; flags: see that script), e.g.
#      SCRIPT=scripts/gpu/run_table.py scripts/gpu/run_on_gpu.sh --table=14 --teachers=..
# 3. runs scripts/gpu/run_experiment.py (or $SCRIPT) with KERAS_BACKEND=jax on the carried CIFAR-10
#    JPEG tar, stopped by a TERM after BUDGET_S seconds (default 540, inside the tool's
#    10-minute limit; per-epoch checkpoints make the stop safe);
# 4. leaves under $OUT: summary.json (accuracies, provenance), provenance.json (GPU, driver,
#    backend, versions, carry manifest), log.txt, runs.tar.gz.part-00.. (every run directory
#    with its newest checkpoint, in parts of at most 15 MiB: copy them to .carry/resume/ to
#    continue in the next call).
set -uo pipefail
OUT=${OUT:?set OUT to the folder the results go to}
BUDGET_S=${BUDGET_S:-540}
ROOT=${ROOT:-/tmp/kdkeras-runs}
CACHE=${CACHE:-/tmp/kdkeras-cifar10-jpeg.npz}
PY=${PY:-python3}
SCRIPT=${SCRIPT:-scripts/gpu/run_experiment.py}
SITE=${SITE:-/tmp/site}
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1 PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
# Let XLA take GPU memory as it needs it instead of 75 % up front.
export XLA_PYTHON_CLIENT_PREALLOCATE=${XLA_PYTHON_CLIENT_PREALLOCATE:-false}

"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target "$SITE" .carry/wheels/*.whl || exit 1
mkdir -p "$ROOT"
# The machine has no git: results name the commit the carried kdkeras wheel was built from.
KDKERAS_GIT_COMMIT=$("$PY" -c "import json; print(json.load(open('.carry/MANIFEST.json'))['git_commit'])" 2>/dev/null)
export KDKERAS_GIT_COMMIT
if [ -d .carry/resume ] && [ ! -f "$ROOT/.resumed" ]; then  # a warm machine has them already
  "$PY" scripts/gpu/runs_archive.py unpack .carry/resume "$ROOT" && touch "$ROOT/.resumed"
fi

"$PY" - "$OUT/provenance.json" <<'PYEOF'
import json, os, subprocess, sys
import jax, keras
def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout.strip()
    except OSError:
        return None
info = {"backend": keras.backend.backend(), "keras": keras.__version__, "jax": jax.__version__,
        "devices": [f"{d.platform}:{d.device_kind}" for d in jax.devices()],
        "nvidia_smi": sh("nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                         "--format=csv,noheader"),
        "python": sys.version.split()[0], "cpu_count": os.cpu_count()}
try:
    info["carry_manifest"] = json.load(open(".carry/MANIFEST.json"))
except OSError:
    pass
json.dump(info, open(sys.argv[1], "w"), indent=2)
print(info["devices"], info["nvidia_smi"])
PYEOF

DATA=.carry/data/cifar10-jpeg.tar.gz
run() {  # run ROOT [run_experiment.py flags]
  timeout --signal=TERM --kill-after=30 "$BUDGET_S" "$PY" "$SCRIPT" \
    --data="$DATA" --cache="$CACHE" --root="$1" "${@:2}"
}
if [ -n "${PARALLEL_TEACHERS:-}${PARALLEL_METHODS:-}${PARALLEL_ROWS:-}" ]; then
  # Side by side, one process per teacher seed (PARALLEL_TEACHERS=K: teachers only) or
  # per method (PARALLEL_METHODS="student hinton fsp ours"; pass --teachers=.., e.g. those
  # a PARALLEL_TEACHERS call left in $ROOT) or per reproduce-table row (PARALLEL_ROWS="fsp-k1
  # p1-cross_depth_only2-k1 ..." with --table_rows=5,11,14 --teachers=..): one small model
  # leaves most of the GPU idle.
  # The images are decoded once first so that the processes share the cache.
  "$PY" -c "import sys; from kdkeras.data.numpy_data import load_image_arrays as f; \
f(sys.argv[1], cache=sys.argv[2])" "$DATA" "$CACHE" || exit 1
  names=() pids=()
  launch() {  # launch NAME [flags]: one process in the background, its runs in $ROOT/NAME
    mkdir -p "$ROOT/$1"
    run "$ROOT/$1" "${@:2}" > "$ROOT/$1/log.txt" 2>&1 &
    names+=("$1") pids+=($!)
  }
  if [ -n "${PARALLEL_TEACHERS:-}" ]; then
    for k in $(seq 0 $((PARALLEL_TEACHERS - 1))); do
      launch "teacher-seed-$k" --teacher_seeds="$k" --methods= \
        --num_teachers="$PARALLEL_TEACHERS" "$@"
    done
  elif [ -n "${PARALLEL_ROWS:-}" ]; then
    for r in $PARALLEL_ROWS; do launch "row-$r" --rows="$r" "$@"; done
  else
    for m in $PARALLEL_METHODS; do launch "method-$m" --methods="$m" "$@"; done
  fi
  status=0
  for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
  for name in "${names[@]}"; do
    echo "== $name"; grep -E "^Epoch [0-9]+/|step - |^\{'" "$ROOT/$name/log.txt" | tail -n 6
  done | tee "$OUT/log.txt"
else
  run "$ROOT" "$@" 2>&1 | tee "$OUT/log.txt"
  status=${PIPESTATUS[0]}
fi
case $status in
  0) echo "finished" ;;
  124|137) echo "stopped after ${BUDGET_S}s: copy runs.tar.gz.part-* to .carry/resume/, call again" ;;
  *) echo "failed with status $status (see log.txt)" ;;
esac | tee -a "$OUT/log.txt"
cp "$ROOT/summary.json" "$OUT/summary.json" 2>/dev/null
"$PY" scripts/gpu/runs_archive.py pack "$ROOT" "$OUT/runs.tar.gz"
exit "$status"
