"""`edge-isp doctor` and `edge-isp deploy`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

from edge_isp.contract.targets import shipped_targets
from edge_isp.deploy.deployer import deploy, describe_plan
from edge_isp.deploy.doctor import FAIL, DoctorOptions, format_report, run_doctor
from edge_isp.deploy.plan import DeployOptions, build_release
from edge_isp.deploy.ssh import SshOptions, parse_host
from edge_isp.deploy.system import LocalSystem
from edge_isp.errors import MissingFileError
from edge_isp.sensor.profile import shipped_profiles


def register(sub: argparse._SubParsersAction) -> None:
    doctor = sub.add_parser(
        "doctor",
        help="check this machine for running edge-isp (board, CUDA, TensorRT, cameras, service...)",
        description="Check this machine for running edge-isp and say what to do about each problem: the "
        "Jetson Linux / JetPack version, CUDA, TensorRT and pycuda, the cameras (V4L2 raw formats, libcamera), "
        "GStreamer's H.264 encoders, the model, free disk space and the service. Runs anywhere; on a machine "
        "that is not a board it says so. Exits 1 when a check fails.",
    )
    doctor.add_argument("--config", help="run config to check (default /etc/edge-isp/config.toml if present)")
    doctor.add_argument("--model", help="model to check (default: the run config's)")
    doctor.add_argument("--engine", help="TensorRT engine to check against this GPU and TensorRT (its sidecar JSON)")
    doctor.add_argument(
        "--prefix", default="/opt/edge-isp", help="install prefix, for disk space (default %(default)s)"
    )
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON")
    doctor.set_defaults(func=_doctor)

    p = sub.add_parser(
        "deploy",
        help="install a model on boards over SSH and keep the service running",
        description="Copy edge-isp, the model and its sensor profile to each HOST over SSH (your keys and "
        "ssh config), install them as a new release beside the running one, build the TensorRT engine on the "
        "board, switch to it, restart the service and wait for its /healthz. A host that fails keeps (or goes "
        "back to) its previous release. A host already on the same release is left alone.",
    )
    p.add_argument("hosts", nargs="+", metavar="HOST", help="[USER@]HOST[:PORT] or an ssh config alias")
    p.add_argument("--model", required=True, type=Path, help="the ONNX model")
    p.add_argument(
        "--profile",
        required=True,
        help=f"sensor profile: a shipped name ({', '.join(shipped_profiles()) or 'none'}) or a JSON file",
    )
    p.add_argument(
        "--target", help=f"engine build target: a shipped name ({', '.join(shipped_targets())}) or a TOML file"
    )
    p.add_argument("--config", type=Path, help="run config to ship (source, outputs, token); model/profile replaced")
    p.add_argument("--source", help="camera source on the board, e.g. v4l2:/dev/video0 (overrides the config's)")
    p.add_argument("--prefix", default="/opt/edge-isp", help="install prefix on the board (default %(default)s)")
    p.add_argument("--remote-python", help="the board's Python for the service (default PREFIX/venv/bin/python)")
    p.add_argument("--remote-config", default="/etc/edge-isp/config.toml", help="run config path the service reads")
    p.add_argument(
        "--board-steps",
        choices=["run", "dry-run"],
        default="run",
        help="run the board-only steps (engine build, systemd), or print them marked as not run",
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan; connect to nothing")
    p.add_argument("--no-wait", action="store_true", help="do not wait for the service's /healthz")
    p.add_argument("--health-timeout", type=float, default=120.0, metavar="S", help="seconds (default %(default)s)")
    p.add_argument("--keep", type=int, default=3, help="releases kept on each board (default %(default)s)")
    p.add_argument("--ssh-config", type=Path, help="ssh config file (default: ssh's own, ~/.ssh/config)")
    p.add_argument("-o", "--ssh-option", action="append", default=[], metavar="OPT", help="extra ssh -o option")
    p.add_argument("--parallel", type=int, default=4, help="hosts deployed at once (default %(default)s)")
    p.set_defaults(func=_deploy)


def _doctor(args: argparse.Namespace) -> int:
    machine, checks = run_doctor(
        LocalSystem(), DoctorOptions(config=args.config, model=args.model, engine=args.engine, prefix=args.prefix)
    )
    if args.json:
        data = {"machine": dataclasses.asdict(machine), "checks": [dataclasses.asdict(c) for c in checks]}
        print(json.dumps(data, indent=2, default=str))
    else:
        print(format_report(machine, checks))
    return 1 if any(c.status == FAIL for c in checks) else 0


def _deploy(args: argparse.Namespace) -> int:
    hosts = [parse_host(h) for h in args.hosts]
    if args.ssh_config is not None and not args.ssh_config.is_file():
        raise MissingFileError(f"--ssh-config {args.ssh_config} does not exist")
    options = DeployOptions(
        model=args.model,
        profile=args.profile,
        target=args.target,
        config=args.config,
        source=args.source,
        prefix=args.prefix,
        remote_python=args.remote_python,
        remote_config=args.remote_config,
        board_steps=args.board_steps,
        health_timeout_s=args.health_timeout,
        keep=args.keep,
    )
    ssh = SshOptions(config_file=args.ssh_config, options=tuple(args.ssh_option))
    with tempfile.TemporaryDirectory(prefix="edge-isp-release-") as tmp:
        release = build_release(options, Path(tmp) / "release")
        if args.dry_run:
            print(describe_plan(hosts, release, options, wait=not args.no_wait))
            return 0
        results = deploy(hosts, release, options, ssh, wait=not args.no_wait, parallel=args.parallel)
    width = max(len(r.host) for r in results)
    print()
    for r in results:
        print(f"{r.host:<{width}}  {r.outcome:<11}  {r.release or '-'}  {r.detail}")
    return 0 if all(r.ok for r in results) else 1
