#!/usr/bin/env bash
# The real-image study (scripts/study.sh real-det / real-cls) on a lent GPU machine, as much of
# it as fits one call: what the `run` tool executes there, over a pack from scripts/gpu_pack.py.
#
#   run(command="bash scripts/gpu_study.sh", carry=["gpu_inputs/part1"], timeout_s=600)
#   ... then at once, on the same warm machine, the same command with carry ["gpu_inputs/part2"]
#
# 1. checks the Python packages (one line per missing one, exit 3);
# 2. keeps the pack's parts that came with this call in $GPU_STASH; while parts are missing it
#    says which and exits 4 (carry them in the next call, before the machine goes back);
# 3. rebuilds data/real from the photographs and video (`data build --real --source-root`),
#    proves it byte-identical to the packing machine's and puts the manifests and the detection
#    teacher's cached answers in place (no teacher runs for detection; the classification
#    teacher, torch, answers there once);
# 4. trains with scripts/study.sh, resumably: detection seeds first, then classification
#    (configs/real-cls-half.toml), each phase under `timeout` so that it stops before the
#    budget, then evaluates the seeds whose runs all finished (merged when more than one);
# 5. leaves in $OUT: gpu_study.log, summary.md (merged sweeps, per-epoch times) and
#    gpu-study.tar.gz (every sweep, report, history and run config), also after a failure.
#
# Environment: GPU_BUDGET_S (540: the whole script, under the 600 s call), GPU_TASKS ("det cls"),
# GPU_SEEDS ("0 1 2"), GPU_DET_PCT (50, below),
# GPU_ROLES ("head baseline isp joint": (a), (b), (c), (e)),
# GPU_TRAIN_ARGS (more --set for every stage, e.g. "--set data.batch_size=32"), GPU_WORKERS (6),
# GPU_CLS_CONFIG (configs/real-cls-half.toml), GPU_CLS_LIMIT (300 test crops), GPU_STASH
# (/tmp/edge-isp-gpu-stash), PYTHON (python3), GPU_SMOKE=1 (a dry run on the CPU: 2 steps a
# stage, so no best.pt and no evaluation: proves the rebuild, the cache reuse and the packaging)
# or GPU_SMOKE=epoch (on the CPU, one epoch a stage, then the evaluation).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
t0=$SECONDS
budget=${GPU_BUDGET_S:-540}
out=${OUT:-out/gpu-study-out}
work=out/gpu-study
stash=${GPU_STASH:-/tmp/edge-isp-gpu-stash}
python=${PYTHON:-python3}
read -r -a tasks <<< "${GPU_TASKS:-det cls}"
read -r -a seeds <<< "${GPU_SEEDS:-0 1 2}"
roles=${GPU_ROLES:-head baseline isp joint}
train_args="--set run.progress=false --set data.num_workers=${GPU_WORKERS:-6} ${GPU_TRAIN_ARGS:-}"
case "${GPU_SMOKE:-}" in
  "") ;;
  epoch) train_args+=" --set run.device=cpu --set run.epochs=1" ;;
  *) train_args+=" --set run.device=cpu --set run.max_steps=2" ;;
esac
mkdir -p "$out" "$work"
log=$out/gpu_study.log
exec > >(tee -a "$log") 2>&1

elapsed() { echo $((SECONDS - t0)); }
say() { echo "gpu_study [$(elapsed) s]: $*"; }

finish() {
  local rc=$?
  say "packaging (exit $rc)"
  "$python" scripts/gpu_device.py report runs/gpu-study-real-* --out "$work/epoch_times.md" > /dev/null 2>&1
  for runs in runs/gpu-study-real-*; do
    [ -d "$runs" ] || continue
    find "$runs" \( -name history.json -o -name config.toml -o -name DONE \) -print0 |
      xargs -0 -r cp --parents -t "$work" 2> /dev/null || true
  done
  {
    echo "# GPU study: $(date -u +%FT%TZ), $(elapsed) s of $budget"
    for merged in "$work"/real-*/sweep.md "$work"/real-*/seed*/sweep.md; do
      [ -f "$merged" ] && { echo; echo "## $merged"; cat "$merged"; }
    done
    [ -f "$work/epoch_times.md" ] && { echo; echo "## per-epoch times"; cat "$work/epoch_times.md"; }
  } > "$out/summary.md" 2> /dev/null
  tar czf "$out/gpu-study.tar.gz" -C out gpu-study 2> /dev/null
  if [ "$(stat -c %s "$out/gpu-study.tar.gz")" -gt $((15 << 20)) ]; then
    tar czf "$out/gpu-study.tar.gz" --exclude='*.png' -C out gpu-study
    echo "gpu_study: the pictures were left out of gpu-study.tar.gz (over 15 MiB with them)"
  fi
  echo "gpu_study: done in $(elapsed) s; in $out: $(find "$out" -maxdepth 1 -type f -printf "%f ")"
}
trap finish EXIT

say "checking Python packages ($python)"
"$python" scripts/gpu_device.py check || exit 3
"$python" scripts/gpu_device.py stash gpu_inputs "$stash" || exit $?
export PYTHONPATH="$stash/site:$PWD"
mkdir -p "$stash/bin"
printf '#!/bin/sh\nexec "%s" -m edge_isp "$@"\n' "$(command -v "$python")" > "$stash/bin/edge-isp"
chmod +x "$stash/bin/edge-isp"
export EDGE_ISP="$stash/bin/edge-isp" PYTHON="$python"

pack_sha=$(sha256sum "$stash/pack.json" | cut -d' ' -f1)
if [ "$(cat data/real/.gpu-pack 2> /dev/null)" != "$pack_sha" ]; then
  say "rebuilding data/real from the pack's sources"
  "$EDGE_ISP" data build --real --source-root "$stash/sources" --out data/real --force --no-progress || exit 1
  "$python" scripts/gpu_device.py restore "$stash" data/real || exit 1
  echo "$pack_sha" > data/real/.gpu-pack
else
  say "data/real already rebuilt from this pack"
fi

# seeds whose runs (isp, head and every role's) all finished (DONE) with a best.pt
complete_seeds() {
  local runs=$1 seed role dir ok
  for seed in "${seeds[@]}"; do
    ok=1
    for role in isp head $roles; do
      dir=$role
      [ "$role" = frozen ] && dir=joint-frozen-isp
      [ -f "$runs/seed$seed/$dir/DONE" ] && [ -f "$runs/seed$seed/$dir/best.pt" ] || ok=
    done
    [ -z "$ok" ] || echo "$seed"
  done
}

# phase TASK CONFIG LIMIT TRAIN_UNTIL_S EVAL_UNTIL_S: train then evaluate under deadlines
phase() {
  local task=$1 config=$2 limit=$3 train_until=$4 eval_until=$5 name runs report left done_seeds
  name=$([ "$task" = cls ] && echo classification || echo detection)
  runs=runs/gpu-study-real-$task
  report=$work/real-$name
  left=$((train_until - $(elapsed)))
  if [ "$left" -gt 20 ]; then
    say "$task: training seeds ${seeds[*]} ($config, roles: $roles) for at most $left s"
    CONFIG=$config RUNS=$runs OUT=$report ROLES=$roles TRAIN_ARGS=$train_args \
      timeout -k 15 "$left" scripts/study.sh "real-$task" train "${seeds[@]}"
    say "$task: training ended (exit $?)"
  else
    say "$task: no time left to train"
  fi
  read -r -a done_seeds <<< "$(complete_seeds "$runs" | tr '\n' ' ')"
  left=$((eval_until - $(elapsed)))
  if [ ${#done_seeds[@]} -eq 0 ]; then
    say "$task: no seed finished all its runs; nothing to evaluate"
  elif [ "$left" -gt 20 ]; then
    say "$task: evaluating seeds ${done_seeds[*]} for at most $left s"
    CONFIG=$config RUNS=$runs OUT=$report ROLES=$roles LIMIT=$limit EVAL_ARGS="--quiet" \
      timeout -k 15 "$left" scripts/study.sh "real-$task" eval "${done_seeds[@]}"
    say "$task: evaluation ended (exit $?)"
  else
    say "$task: no time left to evaluate seeds ${done_seeds[*]}"
  fi
}

# Detection trains until GPU_DET_PCT (50) % of the time left after the rebuild and evaluates
# until 10 points later; classification trains until 110 s before the budget and evaluates
# until 15 s before it. Each is a limit: time detection leaves unused goes to classification.
start=$(elapsed)
share() { echo $((start + (budget - start) * $1 / 100)); }
det_pct=${GPU_DET_PCT:-50}
for task in "${tasks[@]}"; do
  case "$task" in
    det) phase det configs/real-det.toml "" "$(share "$det_pct")" "$(share $((det_pct + 10)))" ;;
    cls) phase cls "${GPU_CLS_CONFIG:-configs/real-cls-half.toml}" "${GPU_CLS_LIMIT:-300}" \
      $((budget - 110)) $((budget - 15)) ;;
    *) say "unknown task $task (det, cls)"; exit 1 ;;
  esac
done
