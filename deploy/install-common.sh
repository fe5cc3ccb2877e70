# shellcheck shell=bash
# What deploy/install-jetson.sh and deploy/install-pi.sh share: sourced by them, not run.
# Each step changes only what is missing, so a second run changes nothing; with dry_run=1
# (--dry-run) each change is printed as "would: ..." instead of made.
#
# The caller sets `here` (its own folder), sources this, calls parse_options "$@", checks its
# board, then calls the steps in order; `changed` says whether anything was (or would be) changed.

here="${here:?install-common.sh is sourced by an installer that sets here}"
prefix=/opt/edge-isp
deploy_user="${SUDO_USER:-}"
from=""
service=edge-isp
config_dir=/etc/edge-isp
dry_run=0
changed=0

say() { echo "edge-isp install: $*"; }
fail() { echo "edge-isp install: error: $*" >&2; exit 1; }

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
  exit "${1:-0}"
}

parse_options() {
  while [ "$#" -gt 0 ]; do
    case "$1" in
      --prefix) prefix="${2:?--prefix needs a folder}"; shift 2 ;;
      --deploy-user) deploy_user="${2:?--deploy-user needs a user name}"; shift 2 ;;
      --from) from="${2:?--from needs a pip requirement or folder}"; shift 2 ;;
      --dry-run) dry_run=1; shift ;;
      -h|--help) usage 0 ;;
      *) echo "$(basename "$0"): unknown option $1" >&2; usage 1 ;;
    esac
  done
}

# Run a command that changes the system, or only say it under --dry-run.
act() {
  changed=1
  if [ "$dry_run" -eq 1 ]; then
    echo "edge-isp install: would: $*"
  else
    "$@"
  fi
}

need_root_unless_dry_run() {
  [ "$dry_run" -eq 1 ] || [ "$(id -u)" -eq 0 ] || fail "run it as root: sudo $0 (or --dry-run to see what it would do)"
  case "$prefix" in
    /*) ;;
    *) fail "--prefix must be an absolute path, got $prefix" ;;
  esac
}

# install_packages PACKAGE...: the Debian packages not yet installed.
install_packages() {
  local missing=() package
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    say "installing: ${missing[*]}"
    act apt-get update -qq
    act env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

# ensure_service_user GROUP...: the system user the service runs as, in these groups.
ensure_service_user() {
  local group
  if ! id -u "$service" >/dev/null 2>&1; then
    say "adding the system user $service"
    act useradd --system --home-dir "/var/lib/$service" --no-create-home --shell /usr/sbin/nologin "$service"
  fi
  for group in "$@"; do
    if getent group "$group" >/dev/null && ! id -nG "$service" 2>/dev/null | tr ' ' '\n' | grep -qx "$group"; then
      act usermod -a -G "$group" "$service"
    fi
  done
}

# ensure_prefix_and_venv REASON: PREFIX, PREFIX/releases owned by the deploying user, and
# PREFIX/venv made with --system-site-packages (REASON says what it must see from the system).
ensure_prefix_and_venv() {
  local dir
  owner=root
  if [ -n "$deploy_user" ] && [ "$deploy_user" != root ]; then
    id -u "$deploy_user" >/dev/null 2>&1 || fail "--deploy-user $deploy_user does not exist"
    owner="$deploy_user"
  fi
  for dir in "$prefix" "$prefix/releases"; do
    if [ ! -d "$dir" ]; then act mkdir -p "$dir"; fi
    if [ ! -d "$dir" ] || [ "$(stat -c %U "$dir")" != "$owner" ]; then act chown "$owner:" "$dir"; fi
  done
  venv="$prefix/venv"
  if [ ! -x "$venv/bin/python" ]; then
    say "creating $venv (with the system's packages visible, for $1)"
    act python3 -m venv --system-site-packages "$venv"
  elif ! grep -qx 'include-system-site-packages = true' "$venv/pyvenv.cfg"; then
    fail "$venv does not see the system's packages ($1): remove it and run this again"
  fi
}

# install_edge_isp EXTRAS MODULE...: edge-isp[EXTRAS] from --from (default: the checkout this
# script is in) into the venv, unless the same version is there; then MODULE... must import.
install_edge_isp() {
  local extras="$1" spec want_version="" have_version="" modules
  shift
  if [ -z "$from" ]; then
    [ -f "$here/../pyproject.toml" ] || fail "no edge-isp source beside this script: give --from (a folder or a pip requirement)"
    from="$(cd "$here/.." && pwd -P)"
  fi
  spec="$from"
  if [ -d "$from" ]; then
    spec="${from}[$extras]"
    want_version="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$from/edge_isp/__init__.py")"
  fi
  modules="$(printf '%s, ' "$@")"
  if [ -x "$venv/bin/python" ]; then
    have_version="$("$venv/bin/python" -c "import edge_isp, ${modules%, }; print(edge_isp.__version__)" 2>/dev/null || true)"
  fi
  if [ -z "$have_version" ] || { [ -n "$want_version" ] && [ "$have_version" != "$want_version" ]; }; then
    say "installing edge-isp[$extras] into $venv from $from"
    # edge-isp's own metadata keeps NumPy below 2 where the board's system packages need it.
    act "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$spec"
  fi
  [ "$dry_run" -eq 1 ] && return 0
  "$venv/bin/python" - "$@" <<'PY' || fail "the environment is incomplete (see above)"
import importlib, sys
bad = []
for name in ["numpy", "cv2", "edge_isp", *sys.argv[1:]]:
    try:
        importlib.import_module(name)
    except Exception as exc:
        bad.append(f"{name}: {exc}")
if bad:
    print("edge-isp install: cannot import " + "; ".join(bad), file=sys.stderr)
    sys.exit(1)
PY
}

# install_service: /etc/edge-isp with the config link, the unit (with PREFIX), enabled.
install_service() {
  local unit_src="$here/edge-isp.service" unit_dst="/etc/systemd/system/$service.service" unit_tmp
  if [ ! -d "$config_dir" ]; then
    act install -d -m 0750 -o root -g "$service" "$config_dir"
  fi
  if [ ! -e "$config_dir/config.toml" ] && [ ! -L "$config_dir/config.toml" ]; then
    act ln -s "$prefix/current/config.toml" "$config_dir/config.toml"
  fi
  [ -f "$unit_src" ] || fail "no $unit_src"
  unit_tmp="$(mktemp)"
  # shellcheck disable=SC2064  # expand now: the trap must remove this very file
  trap "rm -f '$unit_tmp'" EXIT
  sed "s#/opt/edge-isp#$prefix#g" "$unit_src" > "$unit_tmp"
  if ! cmp -s "$unit_tmp" "$unit_dst"; then
    say "installing $unit_dst"
    act install -m 0644 "$unit_tmp" "$unit_dst"
    act systemctl daemon-reload
  fi
  if ! systemctl is-enabled --quiet "$service.service" 2>/dev/null; then
    act systemctl enable "$service.service"
  fi
}

# allow_restart: the deploying user may restart the service without a password, nothing more.
allow_restart() {
  local sudoers="/etc/sudoers.d/$service" rule rule_tmp
  [ "$owner" != root ] || return 0
  rule="$owner ALL=(root) NOPASSWD: /usr/bin/systemctl restart $service.service"
  if [ "$(cat "$sudoers" 2>/dev/null)" != "$rule" ]; then
    rule_tmp="$(mktemp)"
    echo "$rule" > "$rule_tmp"
    if command -v visudo >/dev/null; then
      visudo -cqf "$rule_tmp" || fail "the sudoers rule did not validate: $rule"
    fi
    act install -m 0440 "$rule_tmp" "$sudoers"
    rm -f "$rule_tmp"
  fi
}

# finish EXAMPLE: start a deployed service that is not running; say what changed and what next.
finish() {
  if [ -L "$prefix/current" ] && ! systemctl is-active --quiet "$service.service"; then
    act systemctl start "$service.service"
  fi
  if [ "$changed" -eq 0 ]; then
    say "everything was already in place: nothing changed"
  elif [ "$dry_run" -eq 1 ]; then
    say "dry run: nothing was changed; run it again without --dry-run to make the changes above"
  else
    say "done. Deploy a model from your PC: $1"
  fi
}
