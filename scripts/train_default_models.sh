#!/usr/bin/env bash
# Train the shipped default models from the committed configs, as the paper's stages
# (ISP for reconstruction, head on clean images, joint end to end), and export them.
#
#   scripts/train_default_models.sh [det|cls|all]     (default: all)
#
# Writes runs/garment-{det,cls}/ (checkpoints, resolved configs, histories) and
# models/garment-{det,cls}/ (model.onnx, config.toml, history.json). Resumes where a
# killed run left off. About 40 minutes for det and 20 for cls on a 2-core CPU. The detector
# is exported at 160x128, the scale of its 128x128 training scenes, which the demo simulates.
set -euo pipefail
cd "$(dirname "$0")/.."
edge_isp=.venv/bin/edge-isp
which="${1:-all}"

[ -f data/demo/dataset.json ] || "$edge_isp" data build --out data/demo

train_and_export() {
  local name=$1 input_size=$2
  local config="configs/garment-$name.toml" runs="runs/garment-$name" out="models/garment-$name"
  for stage in isp head joint; do
    if [ -f "$runs/$stage/DONE" ]; then continue; fi
    resume=()
    [ -f "$runs/$stage/last.pt" ] && resume=(--resume)
    "$edge_isp" train "$stage" --config "$config" "${resume[@]}"
    touch "$runs/$stage/DONE"
  done
  mkdir -p "$out"
  "$edge_isp" export onnx "$runs/joint/best.pt" --out "$out/model.onnx" --input-size "$input_size" --with-image
  cp "$runs/joint/config.toml" "$out/config.toml"
  cp "$runs/joint/history.json" "$out/history.json"
}

case "$which" in
  det) train_and_export det 160x128 ;;
  cls) train_and_export cls 64x64 ;;
  all) train_and_export det 160x128; train_and_export cls 64x64 ;;
  *) echo "usage: $0 [det|cls|all]" >&2; exit 1 ;;
esac
