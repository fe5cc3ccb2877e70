#!/usr/bin/env bash
# The classification study of docs/STUDY.md with repeated training seeds: the six pipelines
# trained from one config per seed, each seed evaluated over the light sweep on the same
# frames and noise draws, and the seeds merged into one table and plot with their spread.
#
#   scripts/study_classification.sh [train|eval|all] [SEEDS...]    (default: all 0 1 2)
#
# Environment: CONFIG (default configs/default-cls.toml), RUNS (runs/study-cls), OUT
# (docs/study/classification), LIMIT (test images, default 300). Each stage resumes where a
# killed run left off. About 20 minutes of training per seed on a 2-core CPU, 4 of evaluation.
set -euo pipefail
cd "$(dirname "$0")/.."
edge_isp=.venv/bin/edge-isp
config=${CONFIG:-configs/default-cls.toml}
runs=${RUNS:-runs/study-cls}
out=${OUT:-docs/study/classification}
limit=${LIMIT:-300}
what=${1:-all}
shift || true
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(0 1 2)

[ -f data/demo/dataset.json ] || "$edge_isp" data build --out data/demo

# train STAGE RUN_DIR [--set ...]: one resumable stage.
train() {
  local stage=$1 dir=$2
  shift 2
  [ -f "$dir/DONE" ] && return 0
  local resume=()
  [ -f "$dir/last.pt" ] && resume=(--resume)
  "$edge_isp" train "$stage" --config "$config" --out "$dir" "$@" "${resume[@]}"
  touch "$dir/DONE"
}

train_seed() {
  local seed=$1 dir="$runs/seed$1"
  local common=(--set "run.seed=$seed")
  local init=(--set "init.isp=$dir/isp/best.pt" --set "init.head=$dir/head/best.pt")
  train isp "$dir/isp" "${common[@]}"
  train head "$dir/head" "${common[@]}"
  train joint "$dir/joint" "${common[@]}" "${init[@]}"
  train joint "$dir/raw" "${common[@]}" --set model.name=raw_cls --set init.isp=none \
    --set "init.head=$dir/head/best.pt"
  train joint "$dir/noansc" "${common[@]}" --set model.name=dp_s_noansc_cls --set init.isp=none \
    --set "init.head=$dir/head/best.pt"
  train baseline "$dir/baseline" "${common[@]}" --set "init.head=$dir/head/best.pt"
}

eval_seed() {
  local seed=$1 dir="$runs/seed$1"
  local checkpoints=()
  for role in head baseline isp raw joint noansc; do
    checkpoints+=(--checkpoint "$role=$dir/$role/best.pt")
  done
  # (e)'s head behind (c)'s ISP (scripts/study_isp_drift.py --swap): what joint training of
  # the ISP itself adds.
  checkpoints+=(--checkpoint "joint:isp-from-c=$dir/swap/best.pt")
  "$edge_isp" eval --task classification --data data/demo "${checkpoints[@]}" \
    --limit "$limit" --out "$out/seed$seed"
}

case "$what" in
  train | eval | all) ;;
  *) echo "usage: $0 [train|eval|all] [SEEDS...]" >&2; exit 1 ;;
esac
for seed in "${seeds[@]}"; do
  [ "$what" = eval ] || train_seed "$seed"
done
if [ "$what" != train ]; then
  .venv/bin/python scripts/study_isp_drift.py "$runs" --swap --out "$out/drift.md"
  for seed in "${seeds[@]}"; do eval_seed "$seed"; done
  merged=()
  for seed in "${seeds[@]}"; do merged+=("$out/seed$seed"); done
  "$edge_isp" eval merge "${merged[@]}" --out "$out"
fi
