#!/usr/bin/env bash
# The short classification study of docs/STUDY.md: the six pipelines trained from
# configs/default-cls.toml (the shipped classifier's short schedule, one seed) and evaluated
# over the light sweep on 300 held-out test images. About 40 minutes on a 2-core CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
edge_isp=.venv/bin/edge-isp
config=configs/default-cls.toml
runs=runs/default-cls
scripts/train_default_models.sh cls                       # isp, head, joint (+ the shipped ONNX)
[ -f "$runs/joint-raw/best.pt" ] ||
  "$edge_isp" train joint --config "$config" --set model.name=raw_cls --set init.isp=none --out "$runs/joint-raw"
[ -f "$runs/joint-noansc/best.pt" ] ||
  "$edge_isp" train joint --config "$config" --set model.name=dp_s_noansc_cls --set init.isp=none --out "$runs/joint-noansc"
[ -f "$runs/baseline/best.pt" ] || "$edge_isp" train baseline --config "$config"
"$edge_isp" eval --task classification --data data/demo \
  --checkpoint head="$runs/head/best.pt" --checkpoint baseline="$runs/baseline/best.pt" \
  --checkpoint isp="$runs/isp/best.pt" --checkpoint raw="$runs/joint-raw/best.pt" \
  --checkpoint joint="$runs/joint/best.pt" --checkpoint noansc="$runs/joint-noansc/best.pt" \
  --limit 300 --out docs/study/classification
