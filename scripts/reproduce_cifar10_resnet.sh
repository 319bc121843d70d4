#!/usr/bin/env bash
# The reduced-scale reproduction of the ResNet-32 -> ResNet-8 main and ablation
# tables (2, 5, 8, 11, 14) on CIFAR-10 (JPEG), through experiments/reproduce.py.
#   SCALE: 10,000 training images (class-balanced), full 10,000-image test set,
#   12 epochs, lr 1e-2 x0.1 every 5 epochs, batch 128; recipe otherwise the paper's.
#   Teachers: the three ResNet-32s of scripts/real_runs_cifar10.sh (same scale),
#   committed as results/cifar10-jpeg/teachers/resnet32-s{0,1,2}/model.keras.
# Every table at one seed, then the main table at 3 seeds. Re-running skips finished
# runs and resumes unfinished ones. (In this workplace the same runs were trained in a
# priority order, one row at a time, into these same run directories; this script then
# found them all finished and wrote the table files.)
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
# The full-data GPU teachers (79.2-79.6%) instead, as for results/cifar10-jpeg/tables-t80:
#   TEACHERS=results/cifar10-jpeg/teachers-full RESULTS=results/cifar10-jpeg/tables-t80 \
#   RUNS=runs/reproduce-t80 TABLES=2 scripts/reproduce_cifar10_resnet.sh
TEACHERS=${TEACHERS:-runs/real/cifar10-jpeg/teachers}
[ -f "$TEACHERS/resnet32-s0/model.keras" ] || TEACHERS=results/cifar10-jpeg/teachers
COMMON=(--preset=fast --data_dir="${DATA:-../shared/data/cifar10-jpeg}" --train_subset=10000
        --epochs=12 --lr_decay_every=5 --teachers_dir="$TEACHERS" --latency_repeats=30
        --results_dir="${RESULTS:-results/cifar10-jpeg/tables}" --runs_dir="${RUNS:-runs/reproduce}")
$PY experiments/reproduce.py --table="${TABLES:-2,5,8,11,14}" --seeds=1 "${COMMON[@]}" || exit 1
$PY experiments/reproduce.py --table=2 --seeds=3 "${COMMON[@]}"
