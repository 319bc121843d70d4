#!/usr/bin/env bash
# The reduced-scale real runs of this workplace on CIFAR-10 (JPEG): 3 ResNet-32
# teachers, then ResNet-8 students (alone, Hinton, FSP, the full method).
# Every run resumes (re-running this script continues where it stopped).
#   SCALE: 10,000 training images (class-balanced), full 10,000-image test set,
#   12 epochs, lr 1e-2 ×0.1 every 5 epochs, batch 128; recipe otherwise the paper's.
set -u
cd "$(dirname "$0")/.."
PY=.venv/bin/python
DATA=${DATA:-../shared/data/cifar10-jpeg}
ROOT=${ROOT:-runs/real/cifar10-jpeg}
COMMON=(--preset=fast --data_dir="$DATA" --train_subset=10000 --epochs=12 --lr_decay_every=5 --resume)
mkdir -p "$ROOT/logs"
for k in 0 1 2; do
  $PY experiments/train.py --model=resnet32 --seed=$k --workdir="$ROOT/teachers/resnet32-s$k" \
      "${COMMON[@]}" > "$ROOT/logs/teacher-resnet32-s$k.log" 2>&1 || exit 1
done
T="$ROOT/teachers/resnet32-s0/model.keras"
T3="$T,$ROOT/teachers/resnet32-s1/model.keras,$ROOT/teachers/resnet32-s2/model.keras"
for seed in ${SEEDS:-0}; do
  $PY experiments/distill.py --model=resnet8 --method=student --seed=$seed \
      --workdir="$ROOT/students/resnet8-student-s$seed" "${COMMON[@]}" \
      > "$ROOT/logs/resnet8-student-s$seed.log" 2>&1
  for m in hinton fsp; do
    $PY experiments/distill.py --model=resnet8 --teacher_model=resnet32 --teachers="$T" \
        --method=$m --seed=$seed --workdir="$ROOT/students/resnet8-$m-K1-s$seed" "${COMMON[@]}" \
        > "$ROOT/logs/resnet8-$m-K1-s$seed.log" 2>&1
  done
  $PY experiments/distill.py --model=resnet8 --teacher_model=resnet32 --teachers="$T3" \
      --method=ours --seed=$seed --workdir="$ROOT/students/resnet8-ours-K3-s$seed" "${COMMON[@]}" \
      > "$ROOT/logs/resnet8-ours-K3-s$seed.log" 2>&1
done
echo done > "$ROOT/logs/ALL_DONE"
