#!/usr/bin/env bash
# The README's walk-through: simulate the paper's sensor in the dark and render the raw frames
# through the conventional ISP. Writes into out/walkthrough/ (or the folder given as $1).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-out/walkthrough}"
edge_isp=.venv/bin/edge-isp
images=(skimage:astronaut skimage:coffee)
for lux in 3 96; do
  "$edge_isp" simulate "${images[@]}" --profile nexus6p-rear --lux "$lux" --seed 1 --out "$out/${lux}lux"
  "$edge_isp" isp "$out/${lux}lux"/*.npy --demosaic malvar --denoise nlm --out "$out/${lux}lux/isp"
done
"$edge_isp" info "$out/3lux/astronaut.npy"
echo
echo "Open $out/3lux/isp/astronaut.png and $out/96lux/isp/astronaut.png to compare 3 and 96 lux."
