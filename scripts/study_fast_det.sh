#!/usr/bin/env bash
# Issue 17's fast variant on the garment detection study: dpnhu_xs_det (the shipped real
# detector's architecture: the ISP on the packed half-resolution planes, MobileNetV2 with a
# stride-1 stem) trained exactly as the study's full-resolution dp_s_det seeds were
# (configs/garment-det.toml: ISP 8 epochs, clean head 12, joint 8; `ROLES="head baseline isp
# joint" scripts/study.sh det train N`), and evaluated on the same raw.
#
#   scripts/study_fast_det.sh [train|eval|all] [SEEDS...]      (default: all 0 1 2)
#
# Same raw, same feature maps: the garment scenes are 128x128 and the full-resolution model sees
# a 128x128 raw and a 128x128 picture (stem stride 2 -> 64x64 maps). The fast model gets the same
# 128x128 raw (data.size 64x64 with raw_scale 2: images are loaded at 128x128, their native size)
# and gives a 64x64 picture (stem stride 1 -> the same 64x64 maps). Boxes are scored in each
# picture's pixels (IoU does not change with the scale). Each seed's sweep goes to
# docs/study/detection/seedN-fast; scripts/compare_variants.py pairs it with seedN's (e).
# Environment: RUNS (runs/study-det-fast), OUT (docs/study/detection), EDGE_ISP.
set -euo pipefail
cd "$(dirname "$0")/.."
edge_isp=${EDGE_ISP:-.venv/bin/edge-isp}
config=configs/garment-det.toml
runs=${RUNS:-runs/study-det-fast}
out=${OUT:-docs/study/detection}
what=${1:-all}
shift || true
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(0 1 2)
case "$what" in
  train | eval | all) ;;
  *) echo "usage: $0 [train|eval|all] [SEEDS...]" >&2; exit 1 ;;
esac
[ -f data/demo/dataset.json ] || "$edge_isp" data build --out data/demo

# shellcheck source=scripts/study_lib.sh
. scripts/study_lib.sh

fast=(--set "data.size=[64, 64]")
for seed in "${seeds[@]}"; do
  dir=$runs/seed$seed
  if [ "$what" != eval ]; then
    train isp "$dir/isp" --set "run.seed=$seed" "${fast[@]}" --set model.name=dpnhu_xs_rec
    train head "$dir/head" --set "run.seed=$seed" "${fast[@]}" --set model.name=dpnhu_xs_det
    train joint "$dir/joint" --set "run.seed=$seed" "${fast[@]}" --set model.name=dpnhu_xs_det \
      --set run.epochs=8 --set "init.isp=$dir/isp/best.pt" --set "init.head=$dir/head/best.pt"
  fi
  if [ "$what" != train ]; then
    "$edge_isp" eval --task detection --data data/demo --checkpoint "joint=$dir/joint/best.pt" \
      --size 64x64 --raw-scale 2 --lux 1.5,3,6,12,24,48,96 --out "$out/seed$seed-fast"
  fi
done
