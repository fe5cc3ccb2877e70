#!/usr/bin/env bash
# Prepare a Jetson with JetPack 6 (Jetson Linux / L4T r36) to run edge-isp as a service.
# Run it once on the board, as root; run it again after an upgrade: it is idempotent (a
# second run finds everything in place and changes nothing).
#
#   sudo deploy/install-jetson.sh [--prefix DIR] [--deploy-user USER] [--from PIP_SPEC]
#
# What it does:
#   - refuses a board it cannot support (not a Jetson, or not JetPack 6), saying why;
#   - installs the system packages it needs (only those missing);
#   - makes PREFIX/venv with --system-site-packages, so JetPack's TensorRT bindings
#     (python3-libnvinfer) are visible in it, and installs edge-isp[jetson,export] there
#     (pycuda for the runtime; onnx, with which engines are built on the board);
#   - adds the service user `edge-isp` (groups video, render) and /etc/edge-isp/;
#   - links /etc/edge-isp/config.toml to PREFIX/current/config.toml (unless you have your own);
#   - installs and enables the systemd unit (it starts once `edge-isp deploy` put a release);
#   - lets DEPLOY_USER own PREFIX and restart the service without a password (that one
#     command), so `edge-isp deploy` needs no root.
set -euo pipefail

prefix=/opt/edge-isp
deploy_user="${SUDO_USER:-}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
from=""
service=edge-isp
config_dir=/etc/edge-isp

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
  exit "${1:-0}"
}

while [ "$#" -gt 0 ]; do
  case "$1" in
    --prefix) prefix="${2:?--prefix needs a folder}"; shift 2 ;;
    --deploy-user) deploy_user="${2:?--deploy-user needs a user name}"; shift 2 ;;
    --from) from="${2:?--from needs a pip requirement or folder}"; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "install-jetson.sh: unknown option $1" >&2; usage 1 ;;
  esac
done

say() { echo "edge-isp install: $*"; }
fail() { echo "edge-isp install: error: $*" >&2; exit 1; }
changed=0

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

[ "$(id -u)" -eq 0 ] || fail "run it as root: sudo $0"
case "$prefix" in
  /*) ;;
  *) fail "--prefix must be an absolute path, got $prefix" ;;
esac

# --- System packages, only those missing. ---
packages=(python3-venv python3-pip python3-dev python3-libnvinfer rsync v4l-utils
  gstreamer1.0-tools gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
  gir1.2-gst-rtsp-server-1.0 python3-gi)
# pycuda builds against the CUDA toolkit: JetPack's nvidia-cuda-dev brings nvcc and the headers.
[ -x /usr/local/cuda/bin/nvcc ] || packages+=(nvidia-cuda-dev)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  changed=1
fi

# --- The service user. ---
if ! id -u "$service" >/dev/null 2>&1; then
  say "adding the system user $service"
  useradd --system --home-dir "/var/lib/$service" --no-create-home --shell /usr/sbin/nologin "$service"
  changed=1
fi
for group in video render; do
  if getent group "$group" >/dev/null && ! id -nG "$service" | tr ' ' '\n' | grep -qx "$group"; then
    usermod -a -G "$group" "$service"
    changed=1
  fi
done

# --- The prefix and the virtual environment. ---
owner=root
if [ -n "$deploy_user" ] && [ "$deploy_user" != root ]; then
  id -u "$deploy_user" >/dev/null 2>&1 || fail "--deploy-user $deploy_user does not exist"
  owner="$deploy_user"
fi
for dir in "$prefix" "$prefix/releases"; do
  if [ ! -d "$dir" ]; then mkdir -p "$dir"; changed=1; fi
  if [ "$(stat -c %U "$dir")" != "$owner" ]; then chown "$owner:" "$dir"; changed=1; fi
done

venv="$prefix/venv"
if [ ! -x "$venv/bin/python" ]; then
  say "creating $venv (with the system's packages visible, for TensorRT)"
  python3 -m venv --system-site-packages "$venv"
  changed=1
fi
grep -qx 'include-system-site-packages = true' "$venv/pyvenv.cfg" \
  || fail "$venv does not see the system's packages (TensorRT's bindings): remove it and run this again"

if [ -z "$from" ]; then
  [ -f "$here/../pyproject.toml" ] || fail "no edge-isp source beside this script: give --from (a folder or a pip requirement)"
  from="$(cd "$here/.." && pwd -P)"
fi
spec="$from"
if [ -d "$from" ]; then spec="${from}[jetson,export]"; fi
want_version=""
if [ -d "$from" ]; then
  want_version="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$from/edge_isp/__init__.py")"
fi
have_version="$("$venv/bin/python" -c 'import edge_isp, pycuda.driver, onnx; print(edge_isp.__version__)' 2>/dev/null || true)"
if [ -z "$have_version" ] || { [ -n "$want_version" ] && [ "$have_version" != "$want_version" ]; }; then
  say "installing edge-isp[jetson,export] into $venv from $from (pycuda compiles: a few minutes)"
  # JetPack 6's Python packages (TensorRT's bindings among them) are built against NumPy 1.x.
  PATH="/usr/local/cuda/bin:$PATH" "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "numpy<2" "$spec"
  changed=1
fi
"$venv/bin/python" - <<'PY' || fail "the environment is incomplete (see above)"
import importlib, sys
bad = []
for name in ("numpy", "cv2", "tensorrt", "pycuda.driver", "onnx", "edge_isp"):
    try:
        importlib.import_module(name)
    except Exception as exc:
        bad.append(f"{name}: {exc}")
if bad:
    print("edge-isp install: cannot import " + "; ".join(bad), file=sys.stderr)
    sys.exit(1)
PY

# --- The run config and the unit. ---
if [ ! -d "$config_dir" ]; then
  install -d -m 0750 -o root -g "$service" "$config_dir"
  changed=1
fi
if [ ! -e "$config_dir/config.toml" ] && [ ! -L "$config_dir/config.toml" ]; then
  ln -s "$prefix/current/config.toml" "$config_dir/config.toml"
  changed=1
fi

unit_src="$here/edge-isp.service"
[ -f "$unit_src" ] || fail "no $unit_src"
unit_dst="/etc/systemd/system/$service.service"
unit_tmp="$(mktemp)"
trap 'rm -f "$unit_tmp"' EXIT
sed "s#/opt/edge-isp#$prefix#g" "$unit_src" > "$unit_tmp"
if ! cmp -s "$unit_tmp" "$unit_dst"; then
  say "installing $unit_dst"
  install -m 0644 "$unit_tmp" "$unit_dst"
  systemctl daemon-reload
  changed=1
fi
if ! systemctl is-enabled --quiet "$service.service"; then
  systemctl enable "$service.service"
  changed=1
fi

# --- The deploying user may restart the service, nothing more. ---
if [ "$owner" != root ]; then
  sudoers="/etc/sudoers.d/$service"
  rule="$owner ALL=(root) NOPASSWD: /usr/bin/systemctl restart $service.service"
  if [ "$(cat "$sudoers" 2>/dev/null)" != "$rule" ]; then
    rule_tmp="$(mktemp)"
    echo "$rule" > "$rule_tmp"
    visudo -cqf "$rule_tmp" || fail "the sudoers rule did not validate: $rule"
    install -m 0440 "$rule_tmp" "$sudoers"
    rm -f "$rule_tmp"
    changed=1
  fi
fi

if [ -L "$prefix/current" ] && ! systemctl is-active --quiet "$service.service"; then
  systemctl start "$service.service"
  changed=1
fi

if [ "$changed" -eq 0 ]; then
  say "everything was already in place: nothing changed"
else
  say "done. Deploy a model from your PC: edge-isp deploy $(hostname) --model MODEL.onnx --profile PROFILE --target orin-nano"
fi
