"""Measure edge-isp the way issue #20 did, as a hostile or careless user would, and print the
figures in its form: bad inputs tried / clear errors / tracebacks / silent; requests that stop
the live service; kill -9s during training checkpoints and what was lost.

    PYTHONPATH=. .venv/bin/python scripts/hostile_trials.py all [--kills 20] [--seed 0] [--out trials.json]
    PYTHONPATH=. .venv/bin/python scripts/hostile_trials.py inputs|http|kills ...
    ... --tree /tmp/edge-isp-before --any-message   # the same trials against another checkout

- ``inputs``: every case of tests/fuzz/catalogue.py, plus ``--mutations`` damaged copies each of
  a real RawFrame pair, DNG, ONNX model and checkpoint (truncated, bit-flipped), each through
  the real `edge-isp` command in its own process. A case is a *clear error* (exit 1, one
  ``error:`` message, or the reported camera error it should be), a *traceback* (a Python
  traceback, or an exit other than 0/1), *silent* (exit 0 for an input that must be refused)
  or a timeout. A damaged copy that exits 0 is counted apart (the damage left a valid file).
- ``http``: `edge-isp run` on the simulated camera with an HTTP server and no token (what
  `demo` does), then hostile requests one at a time; after each, is the process alive, does
  /healthz answer 200 and do frames still arrive?
- ``kills``: `edge-isp train joint` on a tiny data set, checkpointing every step, killed with
  SIGKILL at a random moment; then the run folder is inspected (last.pt and best.pt readable,
  best.pt present when last.pt names a best step, temporaries) and the run resumed to the end
  (exit 0, best.pt the step last.pt names, history.json equal to last.pt's history, no
  temporaries left).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tests.fuzz import files as F
from tests.fuzz.catalogue import CASES

PYTHON = sys.executable
REPO = Path(__file__).resolve().parents[1]


TREE = REPO  # the checkout whose `edge-isp` is measured (--tree)
ANY_MESSAGE = False  # --any-message: any one-line error counts as clear (for a checkout whose wording differs)


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(TREE), "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}


def edge_isp(argv: list[str], cwd: Path, timeout_s: float = 120) -> tuple[int | None, str]:
    env = child_env()
    try:
        done = subprocess.run(
            [PYTHON, "-m", "edge_isp", *argv],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            errors="replace",
        )
    except subprocess.TimeoutExpired:
        return None, "timeout"
    return done.returncode, done.stdout + done.stderr


def classify(code: int | None, output: str, expect: str, needle: str) -> str:
    said = " ".join(output.split())
    if code is None:
        return "timeout"
    if "Traceback (most recent call last)" in output or code not in (0, 1):
        return "traceback"
    if ANY_MESSAGE:
        needle = ""
    if expect == "refused":
        return "clear" if code == 1 and "error: " in output and needle in said else "silent" if code == 0 else "unclear"
    if expect == "reported":
        # Without the wording: a camera error counted in the run's summary, or a doctor warning.
        counted = re.search(r"[1-9]\d* camera error", said) or "WARN engine" in said
        return "clear" if (needle in said if not ANY_MESSAGE else counted) else "silent"
    return "accepted" if code == 0 else "refused a valid input"


def mutation_cases(count: int, seed: int) -> list[tuple[str, callable]]:
    rng = np.random.default_rng(seed)
    makers = {
        "npy": lambda t: F.frame_pair(t, width=32, height=24),
        "dng": lambda t: F.dng(t / "a.dng"),
        "onnx": lambda t: F.onnx_model(t / "m.onnx"),
        "checkpoint": lambda t: F.checkpoint(t / "c.pt"),
    }
    commands = {
        "npy": lambda p, t: ["info", str(p)],
        "dng": lambda p, t: ["info", str(p)],
        "onnx": lambda p, t: ["run", "--model", str(p), "--source", "sim", "--max-frames", "1"],
        "checkpoint": lambda p, t: ["export", "onnx", str(p), "-o", str(t / "o.onnx"), "--input-size", "32x32"],
    }
    cases = []
    for kind, make in makers.items():
        for i in range(count):
            truncate, s = i % 2 == 0, int(rng.integers(1 << 30))

            def build(tmp: Path, kind=kind, make=make, truncate=truncate, s=s) -> list[str]:
                path = make(tmp)
                keep = np.random.default_rng(s).uniform(0.0, 0.99)
                damaged = F.truncated(path, keep) if truncate else F.bit_flipped(path, flips=8, seed=s)
                return commands[kind](damaged, tmp)

            cases.append((f"{kind} {'truncated' if truncate else 'bit-flipped'} #{i}", build))
    return cases


def trial_inputs(args: argparse.Namespace) -> dict:
    rows = []
    with tempfile.TemporaryDirectory(prefix="edge-isp-trials-") as root:
        for n, case in enumerate(CASES):
            tmp = Path(root) / f"case{n}"
            tmp.mkdir()
            code, output = edge_isp(case.build(tmp), tmp)
            rows.append(
                {
                    "name": case.name,
                    "issue": case.issue,
                    "expect": case.expect,
                    "outcome": classify(code, output, case.expect, case.needle),
                    "exit": code,
                }
            )
            print(f"{rows[-1]['outcome']:<10} {case.name}", flush=True)
        for n, (name, build) in enumerate(mutation_cases(args.mutations, args.seed)):
            tmp = Path(root) / f"mutation{n}"
            tmp.mkdir()
            code, output = edge_isp(build(tmp), tmp)
            outcome = classify(code, output, "refused", "")
            if outcome == "silent":
                outcome = "still valid"  # exit 0: the damage left a readable file
            rows.append({"name": name, "issue": None, "expect": "refused", "outcome": outcome, "exit": code})
            print(f"{outcome:<10} {name}", flush=True)
    bad = [r for r in rows if r["expect"] != "accepted"]
    counts = {k: sum(r["outcome"] == k for r in bad) for k in ("clear", "traceback", "silent", "unclear", "timeout")}
    counts["still valid"] = sum(r["outcome"] == "still valid" for r in bad)
    counts["tried"] = len(bad)
    counts["valid inputs accepted"] = sum(r["outcome"] == "accepted" for r in rows if r["expect"] == "accepted")
    return {"counts": counts, "rows": rows}


# -- the live service -------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def send(port: int, data: bytes, timeout_s: float = 10) -> bytes:
    reply = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as conn:
            conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)
            while chunk := conn.recv(65536):
                reply += chunk
    except OSError:
        pass
    return reply


def frames_served(port: int) -> float | None:
    reply = send(port, b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
    for line in reply.decode(errors="replace").splitlines():
        if line.startswith("edge_isp_frames_total"):
            return float(line.split()[-1])
    return None


def control(name: str, value: str) -> bytes:
    body = f'{{"name": "{name}", "value": {value}}}'.encode()
    return (
        b"POST /control HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


HOSTILE_REQUESTS = [
    ("lux 1e300", control("lux", "1e300")),
    ("lux 4e18", control("lux", "4e18")),
    ("lux 1e-38", control("lux", "1e-38")),
    ("lux -1", control("lux", "-1")),
    ("lux NaN", control("lux", "NaN")),
    ("electrons_at_white 1e19", control("electrons_at_white", "1e19")),
    ("electrons_at_white 1e-30", control("electrons_at_white", "1e-30")),
    ("analogue_gain 1e308", control("analogue_gain", "1e308")),
    ("lux as a 400-digit integer", control("lux", "9" * 400)),
    ("2000-deep JSON value", control("lux", "[" * 2000 + "]" * 2000)),
    ("too-long URI", b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n"),
    ("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: localhost\r\n\r\n"),
    ("random bytes", bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8))),
    ("TLS hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64),
    ("header of 70 kB", b"GET / HTTP/1.1\r\nX: " + b"y" * 70_000 + b"\r\n\r\n"),
    ("200 headers", b"GET / HTTP/1.1\r\n" + b"".join(b"X%d: y\r\n" % i for i in range(200)) + b"\r\n"),
    ("Content-Length -1", b"POST /control HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: -1\r\n\r\n"),
    (
        "Content-Length huge",
        b"POST /control HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: " + b"9" * 30 + b"\r\n\r\n{}",
    ),
    ("foreign Host (DNS rebinding)", b"GET /controls HTTP/1.1\r\nHost: attacker.example\r\n\r\n"),
    ("path traversal", b"GET /../../../../etc/passwd HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    ("null bytes in path", b"GET /\x00\x00 HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    ("unknown method", b"BREW / HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    ("empty request", b"\r\n\r\n"),
    (
        "body shorter than its length",
        b"POST /control HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{}",
    ),
]


class Service:
    """`edge-isp run` on the simulated camera with an HTTP server and no token, as `demo` runs."""

    def __init__(self, root: Path, model: Path) -> None:
        self.root, self.port = root, free_port()
        self.argv = [
            "-m",
            "edge_isp",
            "run",
            "--model",
            str(model),
            "--source",
            "sim",
            "--http",
            f"127.0.0.1:{self.port}",
        ]
        self.starts = 0
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.starts += 1
        log = open(self.root / f"service{self.starts}.log", "w")  # noqa: SIM115 (the child holds it)
        # cwd: the temporary folder, so that `python -m` finds edge_isp in --tree, not in the cwd.
        self.process = subprocess.Popen(
            [PYTHON, *self.argv], cwd=self.root, env=child_env(), stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + 120
        while frames_served(self.port) is None and time.monotonic() < deadline:
            time.sleep(0.5)

    def healthy(self) -> bool:
        before = frames_served(self.port) or 0.0
        time.sleep(1.0)
        after = frames_served(self.port)
        healthz = send(self.port, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")[:12]
        return self.process.poll() is None and after is not None and after > before and b" 200" in healthz

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def tracebacks(self) -> int:
        return sum(p.read_text(errors="replace").count("Traceback") for p in self.root.glob("service*.log"))


def trial_http(args: argparse.Namespace) -> dict:
    rows = []
    with tempfile.TemporaryDirectory(prefix="edge-isp-http-") as root:
        service = Service(Path(root), F.onnx_model(Path(root) / "m.onnx"))
        service.start()
        try:
            for name, data in HOSTILE_REQUESTS:
                reply = send(service.port, data, timeout_s=15)
                ok = service.healthy()
                status = reply.split(b" ", 2)[1].decode(errors="replace") if reply.startswith(b"HTTP/") else "none"
                rows.append({"request": name, "status": status, "service_ok": ok})
                print(f"{'ok' if ok else 'STOPPED':<8} {status:<5} {name}", flush=True)
                if not ok:  # a fresh service for the next request
                    service.stop()
                    service.start()
        finally:
            service.stop()
        tracebacks = service.tracebacks()
    stopped = sum(not r["service_ok"] for r in rows)
    return {
        "counts": {"requests": len(rows), "stopped the service": stopped, "tracebacks logged": tracebacks},
        "rows": rows,
    }


# -- kills during training --------------------------------------------------------------------------
def train_config(tmp: Path, data: dict[str, Path], run: Path) -> Path:
    path = tmp / "train.toml"
    path.write_text(
        f'[data]\ntrain = "{data["train"]}"\nval = "{data["val"]}"\nbatch_size = 4\nnum_workers = 0\n'
        '[model]\nname = "dp_s_cls"\npretrained_backbone = false\nwidth_mult = 0.35\n'
        f'[run]\nepochs = 4\ndevice = "cpu"\nprogress = false\ncheckpoint_every = 1\nout = "{run}"\n'
        '[sensor]\nlight_unit = "electrons"\nlight_range = [20.0, 200.0]\nval_light = [50.0]\n'
    )
    return path


def inspect_run(run: Path) -> dict:
    from edge_isp.errors import EdgeIspError
    from edge_isp.train.checkpoint import load_checkpoint

    found: dict = {"temporaries": len([p for p in run.glob(".*.tmp")])}
    for name in ("last.pt", "best.pt"):
        path = run / name
        if not path.exists():
            found[name] = "missing"
            continue
        try:
            found[name] = load_checkpoint(path)
        except EdgeIspError as exc:
            found[name] = f"corrupt: {exc}"
    return found


def wait_until(condition, timeout_s: float = 600, poll_s: float = 0.005) -> float:
    """Poll ``condition`` until it holds (or ``timeout_s``); returns the monotonic time it did."""
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(poll_s)
    return time.monotonic()


def best_step_of(last: dict) -> int | None:
    """The step whose weights best.pt must hold: last.pt's ``best_step``, or for a checkpoint
    without the field, the history's epoch that reached ``best_metric``."""
    if "best_step" in last:
        return last["best_step"]
    metric, best = last.get("metric_name"), last.get("best_metric")
    steps = [e["step"] for e in last.get("history", []) if best is not None and e.get(metric) == best]
    return steps[0] if steps else None  # the first to reach it: an equal later epoch is no improvement


def trial_kills(args: argparse.Namespace) -> dict:
    from tests.tiny_data import make_classification

    rng = np.random.default_rng(args.seed)
    rows = []
    env = child_env()
    with tempfile.TemporaryDirectory(prefix="edge-isp-kills-") as root:
        root = Path(root)
        data = {"train": make_classification(root / "train", 8), "val": make_classification(root / "val", 3, seed=1)}
        whole = subprocess.Popen(
            [PYTHON, "-m", "edge_isp", "train", "joint", "--config", str(train_config(root, data, root / "whole"))],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        first = wait_until(lambda: (root / "whole" / "last.pt").exists() or whole.poll() is not None, 600)
        assert whole.wait() == 0, "the uninterrupted run failed"
        train_s = time.monotonic() - first  # from the first checkpoint to the end
        for i in range(args.kills):
            run = root / f"run{i}"
            config = train_config(root, data, run)
            cmd = [PYTHON, "-m", "edge_isp", "train", "joint", "--config", str(config)]
            process = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if i % 2 == 0:  # in the middle of a checkpoint save: the k-th one's temporary file is there
                k, delay_s = int(rng.integers(1, 17)), float(rng.uniform(0.0, 0.03))
                seen: set[str] = set()

                def kth_save_started(k=k, seen=seen, run=run, process=process) -> bool:
                    if run.is_dir():
                        seen.update(n for n in os.listdir(run) if n.startswith((".last.pt.", ".best.pt.")))
                    return len(seen) >= k or process.poll() is not None

                wait_until(kth_save_started, 600, poll_s=0.0005)
                time.sleep(delay_s)
                moment = f"save {k} + {delay_s * 1000:.0f} ms"
            else:  # at a random moment of the training
                wait_until(lambda run=run, process=process: (run / "last.pt").exists() or process.poll() is not None)
                delay_s = float(rng.uniform(0.0, 1.0)) * train_s
                time.sleep(delay_s)
                moment = f"{delay_s:.1f} s after the first checkpoint"
            alive = process.poll() is None
            process.send_signal(signal.SIGKILL)
            process.wait()
            killed = inspect_run(run)
            last = killed["last.pt"]
            row = {"kill": i, "moment": moment, "alive": alive, "temporaries_after_kill": killed["temporaries"]}
            row["corrupt"] = [n for n in ("last.pt", "best.pt") if str(killed[n]).startswith("corrupt")]
            if isinstance(last, dict):
                row["killed_at_step"] = last["global_step"]
                best_step = best_step_of(last)
                row["best_missing_after_kill"] = best_step is not None and not isinstance(killed["best.pt"], dict)
                code, _ = edge_isp(["train", "joint", "--config", str(config), "--resume"], root, 600)
            else:  # killed before the first checkpoint: nothing to resume, start again
                row["killed_at_step"] = None
                row["best_missing_after_kill"] = False
                shutil.rmtree(run, ignore_errors=True)
                code, _ = edge_isp(["train", "joint", "--config", str(config)], root, 600)
            done = inspect_run(run)
            last, best = done["last.pt"], done["best.pt"]
            history = (
                json.loads((run / "history.json").read_text())["epochs"] if (run / "history.json").exists() else None
            )
            row["resume_exit"] = code
            row["finished"] = isinstance(last, dict) and last["epoch"] == 4
            row["best_consistent"] = (
                isinstance(best, dict) and isinstance(last, dict) and (best["global_step"] == best_step_of(last))
            )
            row["history_consistent"] = isinstance(last, dict) and history == json.loads(json.dumps(last["history"]))
            row["temporaries_after_resume"] = done["temporaries"]
            row["lost"] = (
                [k for k in ("finished", "best_consistent", "history_consistent") if not row[k]]
                + (["corrupt"] if row["corrupt"] else [])
                + (["temporaries"] if row["temporaries_after_resume"] else [])
            )
            rows.append(row)
            state = "" if alive else " (had already exited)"
            print(
                f"kill {i} at {moment}{state}: step {row['killed_at_step']}, "
                f"temporaries {row['temporaries_after_kill']}, "
                f"best.pt missing {row['best_missing_after_kill']}, after --resume lost {row['lost'] or 'nothing'}",
                flush=True,
            )
    counts = {
        "kills": sum(r["alive"] for r in rows),
        "runs that had exited before their kill": sum(not r["alive"] for r in rows),
        "corrupt artifacts": sum(bool(r["corrupt"]) for r in rows),
        "best.pt missing right after the kill": sum(r["best_missing_after_kill"] for r in rows),
        "temporaries left right after the kill": sum(r["temporaries_after_kill"] for r in rows),
        "lost anything after --resume": sum(bool(r["lost"]) for r in rows),
    }
    return {"counts": counts, "rows": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["all", "inputs", "http", "kills"])
    parser.add_argument("--mutations", type=int, default=25, help="damaged copies per file kind (default 25)")
    parser.add_argument("--kills", type=int, default=20, help="kill -9 trials (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--tree", type=Path, default=REPO, help="the edge-isp checkout to measure (default: this)")
    parser.add_argument("--any-message", action="store_true", help="count any one-line error as clear")
    args = parser.parse_args()
    global TREE, ANY_MESSAGE
    TREE, ANY_MESSAGE = args.tree.resolve(), args.any_message
    results = {}
    for what, trial in (("inputs", trial_inputs), ("http", trial_http), ("kills", trial_kills)):
        if args.what in ("all", what):
            results[what] = trial(args)
    print()
    for what, result in results.items():
        print(f"{what}: " + ", ".join(f"{k} {v}" for k, v in result["counts"].items()))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
