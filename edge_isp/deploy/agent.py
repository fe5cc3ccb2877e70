"""The remote half of `edge-isp deploy`: what runs on the board, one command per SSH call.

Sent as a script on the SSH session's stdin and run by the board's ``python3`` (then by the
service's Python, once the first call found it), so it uses the standard library only and
runs on Python 3.8 (JetPack 5) and later. Each call prints one line ``EDGE_ISP_AGENT {json}``
with ``ok`` and the command's answer; progress goes to stderr.

The layout it keeps under the prefix (default /opt/edge-isp)::

    releases/<version>-<hash>/    complete releases; never changed once in place
    releases/.staging-<id>/       a release being copied and checked (not yet a release)
    current -> releases/<id>      what the service runs (a relative symlink, switched atomically)
    previous -> releases/<id>     what ran before it
    .deploy-lock/                 held by one deploy at a time

A release becomes ``releases/<id>`` by one rename after its files were verified against its
manifest and its package imported, so a directory by that name is always complete.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

MARK = "EDGE_ISP_AGENT "
LOCK_STALE_S = 3600.0
# Run in the release's own package with the service's Python: does it import, is its run
# config valid, and where will its /healthz be.
SELF_CHECK = """
import json, sys
import edge_isp, edge_isp.cli, edge_isp.runtime
from edge_isp.deploy.run_config import load_run_config
edge_isp.cli.build_parser()
config = load_run_config(sys.argv[1], check_files=False)
print(json.dumps({"version": edge_isp.__version__, "health_url": config.health_url(), "token": config.token}))
"""


class AgentError(Exception):
    """A step that failed in a way the user can act on; its message says how."""


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _releases(prefix: str) -> str:
    return os.path.join(prefix, "releases")


def _link_target(path: str) -> str | None:
    """The release id a ``current``/``previous`` link names, or None."""
    try:
        return os.path.basename(os.readlink(path).rstrip("/"))
    except OSError:
        return None


def probe(prefix: str, python: str, config: str, unit: str) -> dict:
    """The board's state: the releases, what is current, and what the host has."""
    releases = _releases(prefix)
    names = sorted(n for n in os.listdir(releases) if not n.startswith(".")) if os.path.isdir(releases) else []
    current = _link_target(os.path.join(prefix, "current"))
    tegra = None
    if os.path.isfile("/etc/nv_tegra_release"):
        with open("/etc/nv_tegra_release", errors="replace") as handle:
            tegra = handle.readline().strip()
    usage = shutil.disk_usage(prefix if os.path.isdir(prefix) else os.path.dirname(prefix.rstrip("/")) or "/")
    return {
        "releases": names,
        "current": current if current in names else None,
        "previous": _link_target(os.path.join(prefix, "previous")),
        "python_ok": os.access(python, os.X_OK),
        "uid": os.getuid(),
        "systemd": os.path.isdir("/run/systemd/system"),
        "rsync": shutil.which("rsync") is not None,
        "tegra_release": tegra,
        "config_is_file": os.path.isfile(config) and not os.path.islink(config),
        "config_exists": os.path.exists(config),
        "unit_sha256": _sha256(unit) if os.path.isfile(unit) else None,
        "free_bytes": usage.free,
    }


def lock(prefix: str, owner: str, stage: str | None = None) -> dict:
    """Take the deploy lock (a directory: mkdir is atomic); a lock older than an hour is stale.

    With ``stage``, also make room for that release's staging copy (see :func:`prepare`).
    """
    os.makedirs(prefix, exist_ok=True)
    path = os.path.join(prefix, ".deploy-lock")
    try:
        os.mkdir(path)
    except FileExistsError:
        age = time.time() - os.stat(path).st_mtime
        holder = ""
        try:
            with open(os.path.join(path, "owner")) as handle:
                holder = handle.read().strip()
        except OSError:
            pass
        if age < LOCK_STALE_S:
            raise AgentError(
                f"another deploy holds {path} (since {age:.0f} s ago, {holder or 'owner unknown'}); "
                f"wait for it, or remove that folder if no deploy is running"
            ) from None
        _log(f"taking over a stale deploy lock ({age:.0f} s old, {holder or 'owner unknown'})")
        os.utime(path)
    with open(os.path.join(path, "owner"), "w") as handle:
        handle.write(owner + "\n")
    return prepare(prefix, stage) if stage else {}


def unlock(prefix: str, keep: int = 0) -> dict:
    """Release the deploy lock; with ``keep`` > 0, first remove old releases (see :func:`gc`)."""
    removed = gc(prefix, keep)["removed"] if keep > 0 else []
    shutil.rmtree(os.path.join(prefix, ".deploy-lock"), ignore_errors=True)
    return {"removed": removed}


def prepare(prefix: str, release: str) -> dict:
    """Make room for a staging copy; the previous attempt's leftovers are removed."""
    staging = os.path.join(_releases(prefix), ".staging-" + release)
    os.makedirs(_releases(prefix), exist_ok=True)
    shutil.rmtree(staging, ignore_errors=True)
    return {"staging": staging}


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(prefix: str, release: str, python: str, config: str, commit_after: bool = False) -> dict:
    """Check the staged copy against its manifest, byte-compile it, and run its self-check;
    with ``commit_after``, then make it a release (see :func:`commit`)."""
    staging = os.path.join(_releases(prefix), ".staging-" + release)
    with open(os.path.join(staging, "MANIFEST.json")) as handle:
        manifest = json.load(handle)
    if manifest.get("release") != release:
        raise AgentError(f"staged manifest names release {manifest.get('release')!r}, expected {release!r}")
    bad = [rel for rel, digest in manifest["files"].items() if _sha256(os.path.join(staging, rel)) != digest]
    if bad:
        raise AgentError(f"{len(bad)} file(s) differ from the manifest after the copy: {', '.join(sorted(bad)[:5])}")
    os.chmod(os.path.join(staging, "bin", "edge-isp"), 0o755)
    env = dict(os.environ, PYTHONPATH=os.path.join(staging, "app"))
    steps = (
        ("byte-compile", [python, "-m", "compileall", "-q", os.path.join(staging, "app")]),
        ("self-check", [python, "-c", SELF_CHECK, _config_for(staging, config)]),
    )
    answer = {}
    for name, argv in steps:
        try:
            # cwd: the release, so that nothing in the login folder shadows the package.
            done = subprocess.run(argv, env=env, cwd=staging, capture_output=True, text=True, timeout=300, check=False)
        except OSError as exc:
            raise AgentError(f"{name} could not start {python}: {exc}") from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-6:]
            raise AgentError(f"{name} of the new release failed with {python}:\n  " + "\n  ".join(tail))
        if name == "self-check":
            answer = json.loads(done.stdout.strip().splitlines()[-1])
    if answer.get("version") != manifest["version"]:
        raise AgentError(f"the staged package reports version {answer.get('version')}, manifest {manifest['version']}")
    if commit_after:
        commit(prefix, release)
    return answer


def _config_for(release_dir: str, config: str) -> str:
    """The config the service will read: the board's own file if it has one (not the link to
    a release's), else the release's. Its files are the manifest's, checked already."""
    if os.path.isfile(config) and not os.path.islink(config):
        return config
    return os.path.join(release_dir, "config.toml")


def commit(prefix: str, release: str) -> dict:
    """Staging becomes a release, in one rename."""
    staging = os.path.join(_releases(prefix), ".staging-" + release)
    final = os.path.join(_releases(prefix), release)
    if os.path.exists(final):
        raise AgentError(f"{final} already exists")
    os.rename(staging, final)
    return {"path": final}


def switch(prefix: str, release: str, previous: str | None = None) -> dict:
    """Point ``current`` at ``release`` in one rename; ``previous`` then names what ``current``
    did, or, when given (a rollback), the release ``previous`` named before the failed deploy
    ("" for none)."""
    if not os.path.isdir(os.path.join(prefix, "releases", release)):
        raise AgentError(f"no release {release} under {prefix}")
    old = _link_target(os.path.join(prefix, "current"))
    new_previous = old if previous is None else previous
    if new_previous == release:
        new_previous = None
    if new_previous:
        _replace_link(prefix, "previous", new_previous)
    elif previous is not None and os.path.lexists(os.path.join(prefix, "previous")):
        os.unlink(os.path.join(prefix, "previous"))
    _replace_link(prefix, "current", release)
    return {"old": old}


def _replace_link(prefix: str, name: str, release: str) -> None:
    tmp = os.path.join(prefix, f".{name}.{os.getpid()}")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(os.path.join("releases", release), tmp)
    os.replace(tmp, os.path.join(prefix, name))


def discard(prefix: str, release: str) -> dict:
    """Remove a staging copy or a release that is neither current nor previous."""
    for name in (".staging-" + release, release):
        path = os.path.join(_releases(prefix), name)
        if name == release and release in (
            _link_target(os.path.join(prefix, "current")),
            _link_target(os.path.join(prefix, "previous")),
        ):
            continue
        shutil.rmtree(path, ignore_errors=True)
    return {}


def health(prefix: str, release: str, python: str, config: str, timeout_s: float, url: str | None = None) -> dict:
    """Poll the service's /healthz on the board until it answers 200 or ``timeout_s`` passes."""
    token = None
    if url is None:
        release_dir = os.path.join(_releases(prefix), release)
        env = dict(os.environ, PYTHONPATH=os.path.join(release_dir, "app"))
        done = subprocess.run(
            [python, "-c", SELF_CHECK, _config_for(release_dir, config)],
            env=env,
            cwd=release_dir,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise AgentError("cannot read the run config: " + (done.stderr.strip().splitlines() or ["?"])[-1])
        answer = json.loads(done.stdout.strip().splitlines()[-1])
        url, token = answer["health_url"], answer["token"]
    if url is None:
        return {"healthy": None, "detail": "the run config has no HTTP output, so there is no /healthz to wait for"}
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while True:
        request = urllib.request.Request(url)
        if token:
            request.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return {"healthy": True, "url": url, "detail": response.read(2048).decode("utf-8", "replace")}
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}: {exc.read(512).decode('utf-8', 'replace').strip()}"
        except (OSError, ValueError) as exc:
            last = f"no answer ({getattr(exc, 'reason', exc)})"
        if time.monotonic() >= deadline:
            return {"healthy": False, "url": url, "detail": last}
        time.sleep(min(1.0, max(0.05, timeout_s / 20)))


def gc(prefix: str, keep: int) -> dict:
    """Remove the oldest releases beyond ``keep``, never ``current`` or ``previous``."""
    releases = _releases(prefix)
    protected = {_link_target(os.path.join(prefix, n)) for n in ("current", "previous")}
    names = [n for n in os.listdir(releases) if not n.startswith(".")] if os.path.isdir(releases) else []
    names.sort(key=lambda n: os.stat(os.path.join(releases, n)).st_mtime, reverse=True)
    removed = [n for n in names[keep:] if n not in protected]
    for name in removed:
        shutil.rmtree(os.path.join(releases, name), ignore_errors=True)
    return {"removed": removed}


COMMANDS = {
    "probe": probe,
    "lock": lock,
    "unlock": unlock,
    "prepare": prepare,
    "verify": verify,
    "commit": commit,
    "switch": switch,
    "discard": discard,
    "health": health,
    "gc": gc,
}


def main(argv: list[str]) -> int:
    """``agent.py COMMAND BASE64_JSON_KWARGS``; prints the answer line, exit 0 when it ran."""
    if len(argv) != 3 or argv[1] not in COMMANDS:
        print(f"usage: agent.py {{{','.join(COMMANDS)}}} BASE64_JSON", file=sys.stderr)
        return 2
    kwargs = json.loads(base64.b64decode(argv[2]).decode("utf-8"))
    try:
        answer = dict(COMMANDS[argv[1]](**kwargs), ok=True)
    except (AgentError, OSError) as exc:
        answer = {"ok": False, "error": str(exc)}
    print(MARK + json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
