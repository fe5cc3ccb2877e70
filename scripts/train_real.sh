#!/usr/bin/env bash
# A teacher-student run on real images, from the committed config, in one command:
#
#   scripts/train_real.sh cls     # real photographs, the ImageNet MobileNetV2 teacher (configs/real-cls.toml)
#   scripts/train_real.sh det     # real footage, the Objectron SSD teacher (configs/real-det.toml)
#
# Builds the real sets if missing (edge-isp data build --real), then the stages in order, each
# into runs/real-KIND/STAGE: isp (the ISP for reconstruction), head (the perception network on
# clean images, against the teacher's answers), joint (the student, end to end on raw). Run it
# again after a kill: a finished stage (DONE) is skipped and a killed one resumes from its
# last.pt. The teacher's answers are cached on the first stage that needs them. RUNS sets the
# runs folder (default runs/real-KIND); extra arguments go to every stage (--set KEY=VALUE).
set -euo pipefail
cd "$(dirname "$0")/.."
edge_isp=.venv/bin/edge-isp
kind=${1:-}
case "$kind" in
  cls | det) ;;
  *) echo "usage: $0 cls|det [--set KEY=VALUE ...]" >&2; exit 1 ;;
esac
shift
config=configs/real-$kind.toml
runs=${RUNS:-runs/real-$kind}
if [ ! -f data/real/real-classification/manifest.json ] || [ ! -f data/real/real-detection/manifest.json ]; then
  "$edge_isp" data build --real --out data/real
fi
# shellcheck source=scripts/study_lib.sh
. scripts/study_lib.sh
train isp "$runs/isp" "$@"
train head "$runs/head" "$@"
extra=(--set "init.isp=$runs/isp/best.pt")
[ "$kind" = det ] && extra+=(--set "init.head=$runs/head/best.pt")
train joint "$runs/joint" "${extra[@]}" "$@"
echo "edge-isp: $runs/joint/best.pt is the student; evaluate with scripts/study.sh real-$kind eval"
