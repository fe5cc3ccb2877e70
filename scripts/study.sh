#!/usr/bin/env bash
# The study of docs/STUDY.md with repeated training seeds: the six pipelines trained from one
# config per seed, each seed evaluated over the light sweep on the same frames and noise
# draws, and the seeds merged into one table and plot with their spread.
#
#   scripts/study.sh cls|det|real-cls|real-det [train|eval|all] [SEEDS...]     (default: all 0 1 2)
#
# cls and det are the garment study; real-cls and real-det the study on real photographs and
# footage, labelled by a daylight teacher (configs/real-*.toml; docs/STUDY.md, "Real images"),
# evaluated from 1.5 lux to daylight (10,000 lux).
#
# Environment (defaults for cls / det; real-* alike under runs/study-real-* and docs/study/real-*):
#   CONFIG  configs/garment-cls.toml / configs/garment-det.toml
#   RUNS    runs/study-cls / runs/study-det
#   OUT     docs/study/classification / docs/study/detection
#   LIMIT   test images (default: all, 1000 / 400 in the built-in set)
#   EPOCHS  epochs of the joint, raw, no-Anscombe and baseline stages (the config's / 8)
#   ROLES   which runs to train and evaluate (default all: head baseline isp raw joint noansc
#           for the six pipelines, and frozen, (e) trained with its ISP frozen, as a control;
#           isp and head are always trained)
#   EVAL_ARGS  more `edge-isp eval` arguments, e.g. another labelled checkpoint
#   TRAIN_ARGS  more `edge-isp train` arguments for every stage, e.g. --set data.num_workers=8
#   EDGE_ISP, PYTHON  the command and the interpreter (default .venv/bin/edge-isp, .venv/bin/python)
#   LAST    1: also evaluate each task-trained run's last epoch (last.pt, as ROLE:last), not
#           only the epoch validation picked (best.pt); the merge pairs (e:last) too
# Each stage resumes where a killed run left off. A classification seed trains in about 20
# minutes on a 2-core CPU and evaluates in 2.
set -euo pipefail
cd "$(dirname "$0")/.."
edge_isp=${EDGE_ISP:-.venv/bin/edge-isp}
python=${PYTHON:-.venv/bin/python}
task=${1:-}
usage="usage: $0 cls|det|real-cls|real-det [train|eval|all] [SEEDS...]"
data=data/demo
build=("$edge_isp" data build --out data/demo)
levels=()
case "$task" in
  cls) defaults=(configs/garment-cls.toml runs/study-cls docs/study/classification "" "" classification) ;;
  det) defaults=(configs/garment-det.toml runs/study-det docs/study/detection "" 8 detection) ;;
  real-cls | real-det)
    kind=${task#real-}
    name=$([ "$kind" = cls ] && echo classification || echo detection)
    defaults=("configs/real-$kind.toml" "runs/study-real-$kind" "docs/study/real-$name" "" "" "$name")
    data=data/real
    build=("$edge_isp" data build --real --out data/real)
    levels=(--lux "1.5,3,6,12,24,48,96,10000")
    task=$kind ;;
  *) echo "$usage" >&2; exit 1 ;;
esac
config=${CONFIG:-${defaults[0]}}
runs=${RUNS:-${defaults[1]}}
out=${OUT:-${defaults[2]}}
limit=${LIMIT:-${defaults[3]}}
limit_args=()
[ -z "$limit" ] || limit_args=(--limit "$limit")
epochs=${EPOCHS-${defaults[4]}}
task_name=${defaults[5]}
read -r -a roles <<< "${ROLES:-head baseline isp raw joint noansc frozen}"
read -r -a eval_args <<< "${EVAL_ARGS:-}"
read -r -a train_args <<< "${TRAIN_ARGS:-}"
last=${LAST:-}
what=${2:-all}
shift 2 || shift $#
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(0 1 2)

case "$what" in
  train | eval | all) ;;
  *) echo "$usage" >&2; exit 1 ;;
esac
[ -f "$data/dataset.json" ] || [ -d "$data/real-$task_name" ] || "${build[@]}"

has_role() { [[ " ${roles[*]} " == *" $1 "* ]]; }

# shellcheck source=scripts/study_lib.sh
. scripts/study_lib.sh

train_seed() {
  local seed=$1 dir="$runs/seed$1"
  local common=(--set "run.seed=$seed" "${train_args[@]}")
  local long=("${common[@]}" --set "init.head=$dir/head/best.pt")
  [ -z "$epochs" ] || long+=(--set "run.epochs=$epochs")
  train isp "$dir/isp" "${common[@]}"
  train head "$dir/head" "${common[@]}"
  has_role joint && train joint "$dir/joint" "${long[@]}" --set "init.isp=$dir/isp/best.pt"
  # The control for (e): the same run with the ISP frozen at (c) (learning rate 0), so only
  # the head adapts to the ISP's output. (e) minus this is what adapting the ISP adds.
  has_role frozen && train joint "$dir/joint-frozen-isp" "${long[@]}" --set "init.isp=$dir/isp/best.pt" \
    --set optim.isp_lr_scale=0.0
  has_role raw && train joint "$dir/raw" "${long[@]}" --set "model.name=raw_$task" --set init.isp=none
  has_role noansc && train joint "$dir/noansc" "${long[@]}" --set "model.name=dp_s_noansc_$task" --set init.isp=none
  has_role baseline && train baseline "$dir/baseline" "${long[@]}"
  return 0
}

eval_seed() {
  local seed=$1 dir="$runs/seed$1"
  local checkpoints=()
  for role in "${roles[@]}"; do
    [ "$role" = frozen ] || checkpoints+=(--checkpoint "$role=$dir/$role/best.pt")
  done
  # (e) with its ISP frozen at (c) during training, and (e)'s head behind (c)'s ISP
  # (scripts/study_isp_drift.py --swap): what adapting the ISP to the task adds.
  has_role frozen && checkpoints+=(--checkpoint "joint:frozen-isp=$dir/joint-frozen-isp/best.pt")
  has_role joint && checkpoints+=(--checkpoint "joint:isp-from-c=$dir/swap/best.pt")
  if [ -n "$last" ]; then
    for role in baseline raw joint noansc; do
      has_role "$role" && checkpoints+=(--checkpoint "$role:last=$dir/$role/last.pt")
    done
  fi
  "$edge_isp" eval --task "$task_name" --data "$data" "${checkpoints[@]}" "${eval_args[@]}" \
    "${limit_args[@]}" "${levels[@]}" --out "$out/seed$seed"
}

if [ "$what" != eval ]; then
  for seed in "${seeds[@]}"; do train_seed "$seed"; done
fi
if [ "$what" != train ]; then
  has_role joint && "$python" scripts/study_isp_drift.py "$runs" --swap --out "$out/drift.md"
  for seed in "${seeds[@]}"; do eval_seed "$seed"; done
  if [ ${#seeds[@]} -gt 1 ]; then
    merged=()
    for seed in "${seeds[@]}"; do merged+=("$out/seed$seed"); done
    paired=(--paired e)
    [ -z "$last" ] || paired+=(--paired e:last)
    # --common: a seed evaluated with an extra labelled checkpoint (or without a role) still
    # merges; the pipelines not in every seed are listed in the report's notes.
    "$edge_isp" eval merge "${merged[@]}" --out "$out" --common "${paired[@]}"
  fi
fi
