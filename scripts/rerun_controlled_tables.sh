#!/usr/bin/env bash
# The controlled ResNet-32 -> ResNet-8 tables of issue 15 (P1 5, P2 8, P3 11, combinations 14,
# comparison 17), re-run from the fixed code, 3 seeds per row:
#   scripts/rerun_controlled_tables.sh
#   SCALE: CIFAR-10 (JPEG), 10,000 class-balanced training images, the full 10,000-image
#   test set, the `fast` preset at 10 epochs (lr 1e-2 x0.1 every 5, batch 128: a shortened
#   schedule, recorded as such in each table file); recipe otherwise the paper's.
#   Teachers: the committed full-data ResNet-32s, results/cifar10-jpeg/teachers-full/
#   resnet32-s{0,1,2} (K teachers = seeds 0..K-1).
# Every row runs with seeds 0, 1, 2 (rows shared between tables train once). Re-running
# the same command resumes: finished runs are read back, unfinished ones continue from
# their last epoch checkpoint (the engine always resumes; there is no --resume flag to
# pass). Then it writes $RESULTS/table_<N>.json (each row: top-1 mean ± std over seeds,
# the row it is compared with and the difference paired by seed with its 95% t interval,
# kdkeras.reproduce.records) and $RESULTS/tables.md (those numbers as tables).
#
# The VGG-11 -> VGG-6 tables (issue 20) are the same recipe with the VGG-11 teachers:
#   TABLES=1,4,7,10,13,16 TEACHERS=<dir holding vgg11-s{0,1,2}/model.keras> \
#     scripts/rerun_controlled_tables.sh
# (docs/reproduce.md: how those teachers were trained; their weights are not committed).
#
# Knobs (environment): TABLES, SEEDS, EPOCHS, DECAY (lr decay period), SUBSET, DATA,
# TEACHERS, RESULTS, RUNS, PY, TITLE (of tables.md); SMOKE=1 runs the same tables on
# synthetic data at the smoke preset with its own one-checkpoint teachers
# (tests/reproduce/test_rerun_recipe.py).
#
# On a lent GPU (JAX, no TensorFlow) the same rows run through scripts/gpu/: e.g.
#   scripts/gpu/run_on_gpu.sh --preset=fast --train_subset=10000 --seeds=0,1,2 \
#     --table_rows=5,8,11,14,17 --teachers=<the three teachers-full model.keras, carried>
# (resumed call after call from .carry/resume), then
#   python scripts/gpu/collect_tables.py ... (which writes tables.md too).
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
TABLES=${TABLES:-5,8,11,14,17}
SEEDS=${SEEDS:-3}
RESULTS=${RESULTS:-results/cifar10-jpeg/controlled}
RUNS=${RUNS:-runs/reproduce-controlled}
TITLE=${TITLE:-"Controlled re-runs (issues 15 and 20) on CIFAR-10 (JPEG)"}
if [ "${SMOKE:-0}" = 1 ]; then
  SCALE=(--preset=smoke --dataset=synthetic)
  TITLE="Controlled re-runs at smoke scale (synthetic data)"
else
  SCALE=(--preset=fast --data_dir="${DATA:-../shared/data/cifar10-jpeg}"
         --train_subset="${SUBSET:-10000}" --epochs="${EPOCHS:-10}" --lr_decay_every="${DECAY:-5}"
         --teachers_dir="${TEACHERS:-results/cifar10-jpeg/teachers-full}" --latency_repeats=30)
fi
mkdir -p "$RESULTS"
$PY experiments/reproduce.py --table="$TABLES" --seeds="$SEEDS" "${SCALE[@]}" \
  --results_dir="$RESULTS" --runs_dir="$RUNS" || exit 1
$PY scripts/render_tables.py "$RESULTS" --title="$TITLE" \
  --intro="Every row against the row it differs from only in what its label names, paired by seed."
