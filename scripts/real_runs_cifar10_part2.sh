#!/usr/bin/env bash
# Second half of scripts/real_runs_cifar10.sh, split so that the K=1 baselines
# (which need only teacher 0) train while teachers 1 and 2 do. Same scale.
set -u
cd "$(dirname "$0")/.."
PY=.venv/bin/python
DATA=${DATA:-../shared/data/cifar10-jpeg}
ROOT=${ROOT:-runs/real/cifar10-jpeg}
COMMON=(--preset=fast --data_dir="$DATA" --train_subset=10000 --epochs=12 --lr_decay_every=5 --resume)
T="$ROOT/teachers/resnet32-s0/model.keras"
T3="$T,$ROOT/teachers/resnet32-s1/model.keras,$ROOT/teachers/resnet32-s2/model.keras"
seed=${SEED:-0}
case "${1:-}" in
  baselines)
    $PY experiments/distill.py --model=resnet8 --method=student --seed=$seed \
        --workdir="$ROOT/students/resnet8-student-s$seed" "${COMMON[@]}" \
        > "$ROOT/logs/resnet8-student-s$seed.log" 2>&1
    for m in hinton fsp; do
      $PY experiments/distill.py --model=resnet8 --teacher_model=resnet32 --teachers="$T" \
          --method=$m --seed=$seed --workdir="$ROOT/students/resnet8-$m-K1-s$seed" "${COMMON[@]}" \
          > "$ROOT/logs/resnet8-$m-K1-s$seed.log" 2>&1
    done ;;
  ours)
    while pgrep -f "resnet32-s1 " > /dev/null; do sleep 20; done
    for k in 1 2; do
      $PY experiments/train.py --model=resnet32 --seed=$k --workdir="$ROOT/teachers/resnet32-s$k" \
          "${COMMON[@]}" > "$ROOT/logs/teacher-resnet32-s$k.log.part2" 2>&1 || exit 1
    done
    $PY experiments/distill.py --model=resnet8 --teacher_model=resnet32 --teachers="$T3" \
        --method=ours --seed=$seed --workdir="$ROOT/students/resnet8-ours-K3-s$seed" "${COMMON[@]}" \
        > "$ROOT/logs/resnet8-ours-K3-s$seed.log" 2>&1 ;;
esac
