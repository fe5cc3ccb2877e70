#!/usr/bin/env bash
# Prepare a Raspberry Pi with 64-bit Raspberry Pi OS (Bookworm or later) to run edge-isp as a
# service, the way Raspberry Pi documents picamera2: the apt package python3-picamera2 (with
# libcamera's bindings) and a virtual environment that sees the system's packages. Run it once
# on the board, as root; run it again after an upgrade: it is idempotent (a second run finds
# everything in place and changes nothing).
#
#   sudo deploy/install-pi.sh [--prefix DIR] [--deploy-user USER] [--from PIP_SPEC] [--dry-run]
#
# What it does:
#   - refuses a board it cannot support (not a Raspberry Pi, 32-bit, or older than Bookworm),
#     saying why;
#   - installs the system packages it needs (only those missing): python3-picamera2,
#     v4l-utils, GStreamer with the RTSP server;
#   - makes PREFIX/venv with --system-site-packages, so picamera2 and libcamera are visible in
#     it, and installs edge-isp[pi] there (ONNX Runtime, which runs the model on the CPU; NumPy
#     below 2 on Bookworm's Python 3.11, whose picamera2 and simplejpeg are built against 1.x);
#   - adds the service user `edge-isp` (group video) and /etc/edge-isp/;
#   - links /etc/edge-isp/config.toml to PREFIX/current/config.toml (unless you have your own);
#   - installs and enables the systemd unit (it starts once `edge-isp deploy` put a release);
#   - lets DEPLOY_USER own PREFIX and restart the service without a password (that one
#     command), so `edge-isp deploy` needs no root.
# --dry-run prints each change instead of making it (no root needed). The steps it shares
# with deploy/install-jetson.sh are in deploy/install-common.sh.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source-path=SCRIPTDIR source=install-common.sh
. "$here/install-common.sh"
parse_options "$@"

# --- The board: a Raspberry Pi on 64-bit Raspberry Pi OS Bookworm or later. ---
# DEVICE_TREE_MODEL and OS_RELEASE: where a container has the host's files mounted.
model_file="${DEVICE_TREE_MODEL:-/proc/device-tree/model}"
[ -r "$model_file" ] || fail "no $model_file: not a Raspberry Pi (on a Jetson use deploy/install-jetson.sh; on a PC, pip install edge-isp)"
board="$(tr -d '\0' < "$model_file")"
case "$board" in
  "Raspberry Pi"*) say "board: $board" ;;
  *) fail "this board is '$board', not a Raspberry Pi (on a Jetson use deploy/install-jetson.sh)" ;;
esac
os_release="${OS_RELEASE:-/etc/os-release}"
[ -r "$os_release" ] || fail "no $os_release: cannot tell which OS this is"
os_id="$(sed -n 's/^ID=//p' "$os_release" | tr -d '"')"
codename="$(sed -n 's/^VERSION_CODENAME=//p' "$os_release" | tr -d '"')"
case "$os_id:$codename" in
  debian:bookworm|debian:trixie|raspbian:bookworm|raspbian:trixie) say "OS: $os_id $codename: supported" ;;
  *:buster|*:bullseye) fail "Raspberry Pi OS $codename is too old: picamera2 with raw Bayer needs Bookworm (Debian 12) or later; reflash with Raspberry Pi Imager" ;;
  *) fail "the OS is '$os_id $codename'; this script supports Raspberry Pi OS (Bookworm or later), where apt has python3-picamera2" ;;
esac
arch="$(uname -m)"
case "$arch" in
  aarch64) ;;
  armv7l|armv6l) fail "this is 32-bit Raspberry Pi OS ($arch): ONNX Runtime publishes no 32-bit ARM wheels; install the 64-bit Raspberry Pi OS" ;;
  *) fail "this is a $arch machine, not a Raspberry Pi (aarch64)" ;;
esac

need_root_unless_dry_run

install_packages python3-picamera2 python3-venv python3-pip rsync v4l-utils \
  gstreamer1.0-tools gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly \
  gir1.2-gst-rtsp-server-1.0 python3-gi
ensure_service_user video render
ensure_prefix_and_venv "picamera2 and libcamera from apt"
install_edge_isp pi picamera2 libcamera onnxruntime
install_service
allow_restart
finish "edge-isp deploy $(hostname) --model MODEL.onnx --profile PROFILE --source picamera2"
