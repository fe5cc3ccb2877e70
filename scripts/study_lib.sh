# shellcheck shell=bash disable=SC2154
# Shared by scripts/study.sh and scripts/study_probes.sh (sourced, not run).
# Needs $edge_isp (the command) and $config (the TOML config) set by the caller.

# train STAGE RUN_DIR [--set ...]: one resumable stage. A run folder with DONE is skipped;
# one with last.pt but no DONE (a killed run) resumes.
train() {
  local stage=$1 dir=$2
  shift 2
  [ -f "$dir/DONE" ] && return 0
  local resume=()
  [ -f "$dir/last.pt" ] && resume=(--resume)
  "$edge_isp" train "$stage" --config "$config" --out "$dir" "$@" "${resume[@]}"
  touch "$dir/DONE"
}
