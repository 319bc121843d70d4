#!/usr/bin/env bash
# On the GPU machine, from the repository root, after scripts/gpu/build_carry.sh built .carry/:
#   scripts/gpu/bench_table_engine.sh [benchmarks/table_engine.py flags]
# (through the device tool: run(command="scripts/gpu/bench_table_engine.sh", carry=[".carry"]).)
# Installs the carried wheels as run_on_gpu.sh does, then measures Table 14's rows on the
# table engine at batch 128: together against one engine per row (the Keras-fit path
# apart is left out by default: eight more compiles of device time), the compile time,
# student images per second, the projected wall time of a 200-epoch table on 50,000
# images, and the fraction of the GPU's peak. Leaves $OUT/table_engine.json (the JSON
# line) and $OUT/table_engine.txt (all output); stops after BUDGET_S seconds (default 420).
set -uo pipefail
OUT=${OUT:?set OUT to the folder the results go to}
BUDGET_S=${BUDGET_S:-420}
PY=${PY:-python3}
SITE=${SITE:-/tmp/site}
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1 PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
export XLA_PYTHON_CLIENT_PREALLOCATE=${XLA_PYTHON_CLIENT_PREALLOCATE:-false}
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target "$SITE" .carry/wheels/*.whl || exit 1
args=("$@")
[ ${#args[@]} -eq 0 ] && args=(--batch_size=128 --steps=20 --rounds=3 --apart=engine)
timeout --signal=TERM --kill-after=20 "$BUDGET_S" "$PY" benchmarks/table_engine.py \
  --load="dedicated GPU machine" "${args[@]}" 2>&1 | tee "$OUT/table_engine.txt"
status=${PIPESTATUS[0]}
tail -n 1 "$OUT/table_engine.txt" > "$OUT/table_engine.json"
exit "$status"
