#!/usr/bin/env bash
# The probes of docs/STUDY.md around the classification study's seed 0 (runs/study-cls/seed0,
# from scripts/study.sh cls): why the joint model does or does not beat the
# fine-tuned conventional pipeline, and how the models carry over to other conditions.
#
#   scripts/study_probes.sh [train|eval|all] [PROBE...]
#
# Probes (default: all, in this order):
#   schedule     (b) and (e) trained 2x longer (16 epochs)
#   isp          the ISP's quality: (c) pretrained 6x longer (24 epochs), and (e) trained from it
#   isp-lr       (e) with a 10x learning rate on its ISP: does a faster-moving ISP open a gap?
#   isp-lr3      (e) with a 3x learning rate on its ISP and a 3x longer warm-up (600 steps)
#   capacity     the larger dp_m ISP (U-Net widths 16/32/64, 4x the weights): (c) pretrained and
#                (e) trained from it, with the same schedule as seed 0's dp_s
#   light-range  (e) trained on 2-10 lux only and on 40-200 lux only, evaluated over the sweep
#   blur         every pipeline evaluated with a Gaussian lens blur (sigma 1.5 px) on top of the
#                noise, beside (b), (d) and (e) trained with that blur (where trained)
#   camera       every seed-0 pipeline evaluated on a second camera's profile (oneplus6-rear)
#   texture      a texture-bound task (data/texture: the label is a garment's stripes or checks,
#                not its shape): (a), (b), (c) and (e) trained and evaluated on it
#   read-noise   (c)'s ISP and (e) trained over 1/3x to 3x the profile's read noise
#                (sensor.read_noise_range), evaluated on both cameras beside seed 0's
#   recon        the reconstruction ISP vs NLM, BM3D and demosaicnet + the same denoisers
# Environment: CONFIG, RUNS, OUT (docs/study), LIMIT as in scripts/study.sh; RECON_LIMIT, the
# recon probe's test images (default 96).
set -euo pipefail
cd "$(dirname "$0")/.."
edge_isp=.venv/bin/edge-isp
config=${CONFIG:-configs/garment-cls.toml}
runs=${RUNS:-runs/study-cls}
out=${OUT:-docs/study}
limit=${LIMIT:-1000}
seed0="$runs/seed0"
what=${1:-all}
shift || true
probes=("$@")
[ ${#probes[@]} -gt 0 ] || probes=(schedule isp isp-lr isp-lr3 capacity light-range blur camera read-noise texture recon)
blur="gaussian:1.5"
read_noise=(--set "sensor.read_noise_range=[0.33, 3.0]")
texture_data=data/texture

# Every probe compares with seed 0's isp, head, joint and baseline; blur and camera evaluate
# its raw (d) and no-Anscombe (f) runs too.
needed=(isp head joint baseline)
[[ " ${probes[*]} " != *" blur "* && " ${probes[*]} " != *" camera "* ]] || needed+=(raw noansc)
for f in "${needed[@]}"; do
  [ -f "$seed0/$f/DONE" ] || { echo "missing $seed0/$f: run scripts/study.sh cls train 0 first" >&2; exit 1; }
done

# shellcheck source=scripts/study_lib.sh
. scripts/study_lib.sh
head=(--set "init.head=$seed0/head/best.pt")
init=("${head[@]}" --set "init.isp=$seed0/isp/best.pt")

train_probe() {
  case "$1" in
    schedule)
      train joint "$runs/probes/joint-16ep" "${init[@]}" --set run.epochs=16
      train baseline "$runs/probes/baseline-16ep" "${head[@]}" --set run.epochs=16 ;;
    isp)
      train isp "$runs/probes/isp-24ep" --set run.epochs=24
      train joint "$runs/probes/joint-isp-24ep" "${head[@]}" --set "init.isp=$runs/probes/isp-24ep/best.pt" ;;
    isp-lr)
      # Laid out as a study seed folder, so that scripts/study_isp_drift.py measures it.
      local lr10="$runs/probes/isp-lr10/seed0"
      mkdir -p "$lr10"
      for role in isp head baseline; do ln -sfn "$(realpath "$seed0/$role")" "$lr10/$role"; done
      train joint "$lr10/joint" "${init[@]}" --set optim.isp_lr_scale=10.0 ;;
    isp-lr3)
      train joint "$runs/probes/joint-isp-lr3" "${init[@]}" --set optim.isp_lr_scale=3.0 --set optim.warmup_steps=600 ;;
    capacity)
      train isp "$runs/probes/isp-dp_m" --set model.name=dp_m_rec
      train joint "$runs/probes/joint-dp_m" "${head[@]}" --set model.name=dp_m_cls \
        --set "init.isp=$runs/probes/isp-dp_m/best.pt" ;;
    light-range)
      train joint "$runs/probes/joint-dark" "${init[@]}" --set "sensor.light_range=[2.0, 10.0]" \
        --set "sensor.val_light=[3.0, 6.0]"
      train joint "$runs/probes/joint-bright" "${init[@]}" --set "sensor.light_range=[40.0, 200.0]" \
        --set "sensor.val_light=[48.0, 96.0]" ;;
    blur)
      train joint "$runs/probes/joint-blur" "${init[@]}" --set "sensor.blur=\"$blur\""
      train baseline "$runs/probes/baseline-blur" "${head[@]}" --set "sensor.blur=\"$blur\""
      train joint "$runs/probes/raw-blur" "${head[@]}" --set model.name=raw_cls --set init.isp=none \
        --set "sensor.blur=\"$blur\"" ;;
    read-noise)
      train isp "$runs/probes/isp-read-noise" "${read_noise[@]}"
      train joint "$runs/probes/joint-read-noise" "${head[@]}" --set "init.isp=$runs/probes/isp-read-noise/best.pt" \
        "${read_noise[@]}" ;;
    texture)
      # The ISP is seed 0's (reconstruction does not depend on the labels); the heads are new.
      local tex="$runs/probes/texture" on_texture=(--set "data.root=\"$texture_data\"")
      [ -f "$texture_data/dataset.json" ] ||
        "$edge_isp" data build --out "$texture_data" --task classification --classes textures
      train head "$tex/head" "${on_texture[@]}"
      train baseline "$tex/baseline" "${on_texture[@]}" --set "init.head=$tex/head/best.pt"
      train joint "$tex/joint" "${on_texture[@]}" --set "init.head=$tex/head/best.pt" \
        --set "init.isp=$seed0/isp/best.pt" ;;
    camera | recon) ;;
    *) echo "unknown probe $1 (schedule, isp, isp-lr, isp-lr3, capacity, light-range, blur, camera, read-noise, texture," \
      "recon)" >&2
      exit 1 ;;
  esac
}

study() {
  "$edge_isp" eval --task classification --data data/demo --limit "$limit" "$@"
}

eval_probe() {
  local p="$runs/probes"
  # Seed 0's (a), (b), (c) and (e), beside which the ISP probes put their own runs (the report
  # orders pipelines by role, so the labelled runs may follow).
  local core=(--checkpoint "head=$seed0/head/best.pt" --checkpoint "isp=$seed0/isp/best.pt"
    --checkpoint "baseline=$seed0/baseline/best.pt" --checkpoint "joint=$seed0/joint/best.pt")
  case "$1" in
    schedule)
      study --checkpoint "head=$seed0/head/best.pt" --checkpoint "baseline=$seed0/baseline/best.pt" \
        --checkpoint "baseline:16ep=$p/baseline-16ep/best.pt" --checkpoint "joint=$seed0/joint/best.pt" \
        --checkpoint "joint:16ep=$p/joint-16ep/best.pt" \
        --out "$out/classification-schedule" ;;
    isp)
      study "${core[@]}" --checkpoint "isp:24ep=$p/isp-24ep/best.pt" \
        --checkpoint "joint:isp-24ep=$p/joint-isp-24ep/best.pt" --out "$out/classification-isp" ;;
    isp-lr)
      mkdir -p "$out/classification-isp-lr"
      .venv/bin/python scripts/study_isp_drift.py "$p/isp-lr10" --out "$out/classification-isp-lr/drift.md"
      study "${core[@]}" --checkpoint "joint:isp-lr10=$p/isp-lr10/seed0/joint/best.pt" \
        --out "$out/classification-isp-lr" ;;
    isp-lr3)
      study "${core[@]}" --checkpoint "joint:isp-lr3=$p/joint-isp-lr3/best.pt" --out "$out/classification-isp-lr3" ;;
    capacity)
      study "${core[@]}" --checkpoint "isp:dp_m=$p/isp-dp_m/best.pt" \
        --checkpoint "joint:dp_m=$p/joint-dp_m/best.pt" --out "$out/classification-capacity" ;;
    light-range)
      study --checkpoint "head=$seed0/head/best.pt" --checkpoint "joint=$seed0/joint/best.pt" \
        --checkpoint "joint:2-10lux=$p/joint-dark/best.pt" --checkpoint "joint:40-200lux=$p/joint-bright/best.pt" \
        --lux 1.5,3,6,12,24,48,96,192 --out "$out/classification-light-range" ;;
    blur)
      local checkpoints=()
      for role in head baseline isp raw joint noansc; do checkpoints+=(--checkpoint "$role=$seed0/$role/best.pt"); done
      for run in baseline-blur raw-blur joint-blur; do
        [ -f "$p/$run/DONE" ] && checkpoints+=(--checkpoint "${run%-blur}:blur=$p/$run/best.pt")
      done
      study --blur "$blur" "${checkpoints[@]}" --out "$out/classification-blur" ;;
    camera)
      local checkpoints=()
      for role in head baseline isp raw joint noansc; do checkpoints+=(--checkpoint "$role=$seed0/$role/best.pt"); done
      study --profile oneplus6-rear "${checkpoints[@]}" --out "$out/classification-oneplus6" ;;
    read-noise)
      local checkpoints=(--checkpoint "head=$seed0/head/best.pt" --checkpoint "isp=$seed0/isp/best.pt"
        --checkpoint "isp:read-noise=$p/isp-read-noise/best.pt" --checkpoint "joint=$seed0/joint/best.pt"
        --checkpoint "joint:read-noise=$p/joint-read-noise/best.pt")
      study "${checkpoints[@]}" --out "$out/classification-read-noise"
      study --profile oneplus6-rear "${checkpoints[@]}" --out "$out/classification-read-noise-oneplus6" ;;
    texture)
      local tex="$runs/probes/texture"
      "$edge_isp" eval --task classification --data "$texture_data" --limit "$limit" \
        --checkpoint "head=$tex/head/best.pt" --checkpoint "baseline=$tex/baseline/best.pt" \
        --checkpoint "isp=$seed0/isp/best.pt" --checkpoint "joint=$tex/joint/best.pt" \
        --out "$out/classification-texture" ;;
    recon)
      local isps=(--checkpoint "isp=$seed0/isp/best.pt")
      [ -f "$p/isp-24ep/DONE" ] && isps+=(--checkpoint "isp:24ep=$p/isp-24ep/best.pt")
      [ -f "$p/isp-dp_m/DONE" ] && isps+=(--checkpoint "isp:dp_m=$p/isp-dp_m/best.pt")
      # BM3D and demosaicnet take seconds per image on a CPU: 96 images, 4 levels (~30 min).
      "$edge_isp" eval recon --data data/demo "${isps[@]}" --limit "${RECON_LIMIT:-96}" --lux 3,6,24,96 \
        --out "$out/recon" ;;
  esac
}

case "$what" in
  train | eval | all) ;;
  *) echo "usage: $0 [train|eval|all] [PROBE...]" >&2; exit 1 ;;
esac
[ "$what" = eval ] || for probe in "${probes[@]}"; do train_probe "$probe"; done
[ "$what" = train ] || for probe in "${probes[@]}"; do eval_probe "$probe"; done
