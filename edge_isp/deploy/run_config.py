"""The `edge-isp run --config FILE` file: what the service on a board runs, in TOML.

Every key mirrors an `edge-isp run` option, so the file and the command line say the same
things; an option given on the command line wins over the file::

    source = "v4l2:/dev/video0"     # sim | replay:DIR | file:VIDEO|DIR | picamera2[:N] | v4l2:/dev/videoN
    size = "1920x1080"              # optional: the camera's frame size, WIDTHxHEIGHT
    fps = 30                        # optional: frames per second
    model = "model/model.onnx"      # ONNX or engine; relative paths: from the file's real folder
    profile = "model/profile.json"  # optional: a sensor profile file, or a shipped name ("nexus6p-rear")
    backend = "auto"                # auto | tensorrt | onnxruntime | torch
    token_file = "/etc/edge-isp/token"  # optional access token for HTTP (or `token = "..."`)

    [outputs]
    http = "0.0.0.0:8080"           # HOST:PORT of the dashboard, streams, /metrics and /healthz
    rtsp = "8554/edge-isp"          # optional [HOST:]PORT[/PATH] or rtsp://@:8554/edge-isp
    record = "/var/lib/edge-isp/recordings"  # optional folder, or a file such as out.mp4
    allow_hosts = ["jetson.local"]  # optional: names a loopback-bound HTTP server answers to too

Relative paths are resolved against the folder of the file's real path (symlinks
followed), so ``/etc/edge-isp/config.toml`` linked to a release's ``config.toml`` finds the
model of that release. A bad file is refused with its path, the key, what was expected and
what was got.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path
from typing import Any

from edge_isp.contract.sizes import parse_size
from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.fileio import read_text
from edge_isp.runtime.outputs import parse_rtsp_address
from edge_isp.runtime.outputs.http_handler import check_token
from edge_isp.runtime.sources import parse_source_spec

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (JetPack 6's Ubuntu 22.04)
    import tomli as tomllib

BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")
TOP_KEYS = ("source", "size", "fps", "model", "profile", "backend", "token", "token_file", "outputs")
OUTPUT_KEYS = ("http", "rtsp", "record", "allow_hosts")
# The `edge-isp run` option destinations each config field fills.
RUN_ARG_FIELDS = ("source", "size", "fps", "model", "profile", "backend", "http", "rtsp", "record", "token")
DEFAULT_HTTP_PORT = 8080


class RunConfigError(InvalidInputError):
    """A run config file that fails validation; the message names the file and the key."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A validated run config. Paths are absolute.

    Attributes:
        source: the camera source, as `edge-isp run --source` takes it.
        size: the camera's frame size (width, height) in pixels, or None for the source's own.
        fps: frames per second, or None for the source's own.
        model: the ONNX model or TensorRT engine.
        profile: a sensor profile: a file (absolute) or a shipped name; None for the model's own.
        backend: the inference backend, one of ``BACKENDS``.
        http: ``HOST:PORT`` of the HTTP server, or None for none.
        rtsp: ``[HOST:]PORT[/PATH]`` of the RTSP stream, or None.
        record: a folder for recordings, or None.
        token: the HTTP access token, or None for an open server.
        allow_hosts: host names a loopback-bound HTTP server answers to besides localhost
            (`edge-isp run --allow-host`).
        origin: the file this came from (for messages).
    """

    source: str
    model: Path
    size: tuple[int, int] | None = None
    fps: float | None = None
    profile: str | None = None
    backend: str = "auto"
    http: str | None = None
    rtsp: str | None = None
    record: Path | None = None
    token: str | None = None
    allow_hosts: tuple[str, ...] = ()
    origin: str = "config"

    def run_args(self) -> dict[str, Any]:
        """The `edge-isp run` option values this config gives, by destination name, typed as
        `edge-isp run` parses them: strings, ``size`` a (width, height) tuple, ``fps`` a float,
        ``record`` a Path."""
        values = {name: getattr(self, name) for name in RUN_ARG_FIELDS}
        values["model"] = str(self.model)
        values["allow_host"] = list(self.allow_hosts) or None
        return values

    def health_url(self) -> str | None:
        """The ``/healthz`` address to poll on the board itself, or None without HTTP.

        A wildcard bind address (0.0.0.0, ::) is polled on the loopback address.
        """
        if self.http is None:
            return None
        host, port = split_host_port(self.http, self.origin)
        if host in ("0.0.0.0", "", "*"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}/healthz"


def _fail(origin: str, key: str, expected: str, got: Any) -> None:
    raise RunConfigError(f"{origin}: key {key!r} must be {expected}, got {got!r}")


def split_host_port(text: str, origin: str = "http") -> tuple[str, int]:
    """``"0.0.0.0:8080"`` -> ("0.0.0.0", 8080); ``"[::1]:80"`` -> ("::1", 80); ``":80"`` -> ("", 80)."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\s\[\]]*):(\d+)", str(text))
    if not match:
        raise RunConfigError(f"{origin}: expected HOST:PORT such as 0.0.0.0:8080 or [::1]:8080, got {text!r}")
    host = match.group(1) if match.group(1) is not None else match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 1 <= port <= 65535:
        raise RunConfigError(f"{origin}: port must be 1..65535, got {port} in {text!r}")
    return host, port


def _check_source(source: Any, base: Path, origin: str) -> str:
    """The source spec (:func:`edge_isp.runtime.sources.parse_source_spec`'s forms), a relative
    replay or footage path taken from ``base``, as the model's is."""
    if not isinstance(source, str) or not source:
        _fail(origin, "source", "a string such as 'v4l2:/dev/video0'", source)
    try:
        kind, arg = parse_source_spec(source)
    except InvalidInputError as exc:
        raise RunConfigError(f"{origin}: key 'source': {exc}") from None
    if arg and not _SOURCE_PATH.fullmatch(str(arg)):
        # The source reaches the board's service unit and shell: a path, nothing a shell would read.
        _fail(
            origin, "source", "a path of letters, digits and . _ - / @ + , = only (no spaces or shell syntax)", source
        )
    if kind in ("replay", "file") and arg is not None:
        return f"{kind}:{_path(arg, 'source', base, origin)}"
    return source


_SOURCE_PATH = re.compile(r"[\w./@+,=-]+")
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})?|\[[0-9A-Fa-f:]+\]")


def _size(value: Any, origin: str) -> tuple[int, int]:
    try:
        return parse_size(value)
    except InvalidInputError:
        _fail(origin, "size", "'WIDTHxHEIGHT' in pixels, both even, such as '1920x1080'", value)


def _fps(value: Any, origin: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1000:
        _fail(origin, "fps", "a number of frames per second, 0 < fps <= 1000", value)
    return float(value)


def _path(value: Any, key: str, base: Path, origin: str) -> Path:
    if not isinstance(value, str) or not value.strip():
        _fail(origin, key, "a path string", value)
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _profile(value: Any, base: Path, origin: str) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail(origin, "profile", "a profile file or a shipped profile name", value)
    # A bare name ("nexus6p-rear") is a shipped profile; anything path-like is a file.
    if "/" in value or value.endswith(".json"):
        return str(_path(value, "profile", base, origin))
    return value


def _token(data: dict[str, Any], base: Path, origin: str, read: bool) -> str | None:
    if "token" in data and "token_file" in data:
        raise RunConfigError(f"{origin}: give 'token' or 'token_file', not both")
    if "token_file" in data:
        path = _path(data["token_file"], "token_file", base, origin)
        if not read:
            return None
        if not path.is_file():
            raise MissingFileError(f"{origin}: token_file {path} does not exist")
        token = path.read_text(encoding="utf-8").strip()
        key = f"token_file ({path})"
    elif "token" in data:
        token, key = data["token"], "token"
    else:
        return None
    try:
        return check_token(token, f"{origin}: {key}")
    except InvalidInputError as exc:
        raise RunConfigError(str(exc)) from None


def parse_run_config(
    data: dict[str, Any], base_dir: str | Path, origin: str = "config", read_token: bool = True
) -> RunConfig:
    """Validate parsed TOML; relative paths are taken from ``base_dir``.

    ``read_token=False`` checks a ``token_file`` key's form only (the file may be on another
    machine) and leaves ``token`` None for it.
    """
    base = Path(base_dir)
    if not isinstance(data, dict):
        raise RunConfigError(f"{origin}: expected a table of keys, got {type(data).__name__}")
    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        raise RunConfigError(
            f"{origin}: unknown key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(TOP_KEYS)}"
        )
    for key in ("source", "model"):
        if key not in data:
            raise RunConfigError(f"{origin}: missing key {key!r} (required: source, model)")
    outputs = data.get("outputs", {})
    if not isinstance(outputs, dict):
        _fail(origin, "outputs", f"a table [outputs] with keys {', '.join(OUTPUT_KEYS)}", outputs)
    unknown = sorted(set(outputs) - set(OUTPUT_KEYS))
    if unknown:
        raise RunConfigError(
            f"{origin}: unknown key(s) {', '.join(map(repr, unknown))} in [outputs]; valid: {', '.join(OUTPUT_KEYS)}"
        )
    backend = data.get("backend", "auto")
    if backend not in BACKENDS:
        _fail(origin, "backend", f"one of {', '.join(BACKENDS)}", backend)
    http = outputs.get("http")
    if http is not None:
        if not isinstance(http, str):
            _fail(origin, "outputs.http", "'HOST:PORT' such as '0.0.0.0:8080'", http)
        split_host_port(http, f"{origin}: key 'outputs.http'")
    rtsp = outputs.get("rtsp")
    if rtsp is not None:
        if not isinstance(rtsp, str):
            _fail(origin, "outputs.rtsp", "'[HOST:]PORT[/PATH]' or 'rtsp://@:PORT/PATH'", rtsp)
        try:
            parse_rtsp_address(rtsp)
        except InvalidInputError as exc:
            raise RunConfigError(f"{origin}: key 'outputs.rtsp': {exc}") from None
    record = outputs.get("record")
    allow_hosts = outputs.get("allow_hosts", [])
    if not isinstance(allow_hosts, list) or not all(isinstance(h, str) and _HOST.fullmatch(h) for h in allow_hosts):
        _fail(origin, "outputs.allow_hosts", "a list of host names such as ['jetson.local']", allow_hosts)
    return RunConfig(
        source=_check_source(data["source"], base, origin),
        size=_size(data["size"], origin) if "size" in data else None,
        fps=_fps(data["fps"], origin) if "fps" in data else None,
        model=_path(data["model"], "model", base, origin),
        profile=_profile(data["profile"], base, origin) if "profile" in data else None,
        backend=backend,
        http=http,
        rtsp=rtsp,
        record=_path(record, "outputs.record", base, origin) if record is not None else None,
        token=_token(data, base, origin, read_token),
        allow_hosts=tuple(allow_hosts),
        origin=origin,
    )


def parse_run_config_text(text: str, base_dir: str | Path, origin: str = "config") -> RunConfig:
    """Parse TOML text; a syntax error is a :class:`RunConfigError` naming ``origin``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RunConfigError(f"{origin}: not valid TOML: {exc}") from None
    return parse_run_config(data, base_dir, origin)


def load_run_config(path: str | Path, check_files: bool = True) -> RunConfig:
    """Load and validate a run config file.

    With ``check_files``, the model (and a profile given as a file) must exist.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"run config {path} does not exist")
    real = path.resolve()
    config = parse_run_config_text(read_text(real, "run config"), real.parent, origin=str(path))
    if check_files:
        if not config.model.is_file():
            raise MissingFileError(f"{path}: key 'model': {config.model} does not exist")
        if config.profile is not None and "/" in config.profile and not Path(config.profile).is_file():
            raise MissingFileError(f"{path}: key 'profile': {config.profile} does not exist")
    return config


def apply_run_config(args: argparse.Namespace, config: RunConfig) -> argparse.Namespace:
    """Fill the `edge-isp run` options left unset (None) on the command line from ``config``.

    The command line wins: an option the user gave is kept. For that, the options the
    file can give must default to None in the parser (``--backend`` included: resolve
    None to "auto" after this), and ``--source``/``--model`` must not be ``required``: check
    them after this call instead.
    """
    for name, value in config.run_args().items():
        if getattr(args, name, None) is None and value is not None:
            setattr(args, name, value)
    return args
