#!/usr/bin/env bash
# Prepare a Jetson with JetPack 6 (Jetson Linux / L4T r36) to run edge-isp as a service.
# Run it once on the board, as root; run it again after an upgrade: it is idempotent (a
# second run finds everything in place and changes nothing).
#
#   sudo deploy/install-jetson.sh [--prefix DIR] [--deploy-user USER] [--from PIP_SPEC] [--dry-run]
#
# What it does:
#   - refuses a board it cannot support (not a Jetson, or not JetPack 6), saying why;
#   - installs the system packages it needs (only those missing);
#   - makes PREFIX/venv with --system-site-packages, so JetPack's TensorRT bindings
#     (python3-libnvinfer) are visible in it, and installs edge-isp[jetson,export] there
#     (pycuda for the runtime; onnx, with which engines are built on the board; NumPy below 2,
#     which edge-isp's metadata asks for on aarch64 with Python 3.10, JetPack 6's);
#   - adds the service user `edge-isp` (groups video, render) and /etc/edge-isp/;
#   - links /etc/edge-isp/config.toml to PREFIX/current/config.toml (unless you have your own);
#   - installs and enables the systemd unit (it starts once `edge-isp deploy` put a release);
#   - lets DEPLOY_USER own PREFIX and restart the service without a password (that one
#     command), so `edge-isp deploy` needs no root.
# --dry-run prints each change instead of making it (no root needed). The steps it shares
# with deploy/install-pi.sh are in deploy/install-common.sh.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source-path=SCRIPTDIR source=install-common.sh
. "$here/install-common.sh"
parse_options "$@"

# --- The board: a Jetson on JetPack 6 (L4T r36), nothing else. ---
# NV_TEGRA_RELEASE: where a container has the host's release file mounted.
release_file="${NV_TEGRA_RELEASE:-/etc/nv_tegra_release}"
[ -r "$release_file" ] || fail "no $release_file: not a Jetson running Jetson Linux (on a Raspberry Pi or a PC, pip install edge-isp instead)"
l4t_line="$(head -n 1 "$release_file")"
if [[ "$l4t_line" =~ R([0-9]+)\ \(release\),\ REVISION:\ ([0-9]+)\.?([0-9]*) ]]; then
  l4t_major="${BASH_REMATCH[1]}"
  l4t_version="${BASH_REMATCH[1]}.${BASH_REMATCH[2]}.${BASH_REMATCH[3]:-0}"
else
  fail "cannot read the Jetson Linux version from $release_file: '$l4t_line'"
fi
case "$l4t_major" in
  36) say "Jetson Linux $l4t_version (JetPack 6): supported" ;;
  35) fail "Jetson Linux $l4t_version is JetPack 5 (TensorRT 8.5); edge-isp needs JetPack 6 (L4T r36, TensorRT 10): reflash the board with SDK Manager" ;;
  32) fail "Jetson Linux $l4t_version is JetPack 4 (original Nano/TX2, Python 3.6): not supported; edge-isp needs an Orin-class board with JetPack 6" ;;
  *) fail "Jetson Linux $l4t_version is not JetPack 6 (L4T r36), the only release this script supports" ;;
esac
arch="$(uname -m)"
[ "$arch" = aarch64 ] || fail "this is a $arch machine, not a Jetson (aarch64)"
if [ -r /proc/device-tree/model ]; then
  say "board: $(tr -d '\0' < /proc/device-tree/model)"
fi

need_root_unless_dry_run

# --- System packages, only those missing. ---
packages=(python3-venv python3-pip python3-dev python3-libnvinfer rsync v4l-utils
  gstreamer1.0-tools gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
  gir1.2-gst-rtsp-server-1.0 python3-gi)
# pycuda builds against the CUDA toolkit: JetPack's nvidia-cuda-dev brings nvcc and the headers.
[ -x /usr/local/cuda/bin/nvcc ] || packages+=(nvidia-cuda-dev)
install_packages "${packages[@]}"

ensure_service_user video render
ensure_prefix_and_venv "TensorRT's Python bindings"
# pycuda compiles against the CUDA toolkit (a few minutes).
export PATH="/usr/local/cuda/bin:$PATH"
install_edge_isp jetson,export tensorrt pycuda.driver onnx
install_service
allow_restart
finish "edge-isp deploy $(hostname) --model MODEL.onnx --profile PROFILE --target orin-nano"
