#!/usr/bin/env python3
"""The device side of scripts/gpu_pack.py, for scripts/gpu_study.sh (one job per action):

    gpu_device.py check                  the Python packages the study needs: one line per missing one
    gpu_device.py stash PACK STASH       keep the parts of the pack that came with this call in STASH
                                         (verified); exit 4 naming the parts still to come
    gpu_device.py restore STASH DATA     after `edge-isp data build --real --source-root STASH/sources`:
                                         prove DATA identical to the packing machine's build, put its
                                         manifests and the cached teacher answers in place
    gpu_device.py report RUNS... --out F the per-epoch times of every run's history.json, as Markdown

`check` and `stash` use the standard library alone, so they can say what is missing before
anything else is imported.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.util
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INDEX = "pack.json"
# module -> why the study needs it (the import name; pip's name in brackets where it differs)
NEEDED = {
    "torch": "training and evaluation",
    "numpy": "everything",
    "cv2": "images, the video, the conventional ISP [opencv-python-headless]",
    "tqdm": "progress bars",
    "matplotlib": "the sweep's plots",
}
# the modules the study runs: imported once, so that a package missing deeper down is named too
STUDY_MODULES = ("edge_isp.cli", "edge_isp.train.loop", "edge_isp.train.datasets", "edge_isp.evaluate.sweep")
WAS_SOURCE = ("source", "path", "video")  # manifest fields that name where a source was read


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file. Standard library only: this script checks and stashes before the
    package is on the path (scripts/gpu_study.sh), so it cannot use edge_isp.fileio's."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check() -> int:
    missing = [f"missing: Python package {name} ({why})" for name, why in NEEDED.items()
               if importlib.util.find_spec(name) is None]  # fmt: skip
    if sys.version_info < (3, 11) and importlib.util.find_spec("tomli") is None:
        missing.append("missing: Python package tomli (configs; Python < 3.11 has no tomllib)")
    if not missing:
        sys.path.insert(0, str(ROOT))
        for module in STUDY_MODULES:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:
                missing.append(f"missing: Python package {exc.name} (imported by {module})")
    for line in missing:
        print(line)
    if missing:
        return 3
    import torch

    if not torch.cuda.is_available():
        print("note: torch sees no CUDA device; the study runs on the CPU (run.device=auto)")
    else:
        print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}, Python {sys.version.split()[0]}")
    return 0


def stash(pack: Path, store: Path) -> int:
    """Copy each part under ``pack`` into ``store`` (verified by sha256) and say what is missing."""
    indexes = sorted(pack.glob(f"part*/{INDEX}")) if pack.is_dir() else []
    store.mkdir(parents=True, exist_ok=True)
    for index_path in indexes:
        part = index_path.parent
        index = json.loads(index_path.read_text(encoding="utf-8"))
        number = int(part.name.removeprefix("part"))
        for name, entry in index["files"].items():
            if entry["part"] != number:
                continue
            source, target = part / name, store / name
            if not source.is_file() or sha256_file(source) != entry["sha256"]:
                print(f"stash: {source} is missing or damaged; pack again with scripts/gpu_pack.py")
                return 1
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        shutil.copyfile(index_path, store / INDEX)
        print(f"stash: part {number} of {index['parts']} kept in {store}")
    if not (store / INDEX).is_file():
        print(f"stash: no pack came with this call ({pack}/part*/{INDEX}) and none was kept in {store}: "
              "run scripts/gpu_pack.py here and carry gpu_inputs/part1")  # fmt: skip
        return 4
    index = json.loads((store / INDEX).read_text(encoding="utf-8"))
    have = set(range(1, index["parts"] + 1)) - {
        e["part"]
        for n, e in index["files"].items()
        if not (store / n).is_file() or sha256_file(store / n) != e["sha256"]
    }
    missing = sorted(set(range(1, index["parts"] + 1)) - have)
    if missing:
        carry = ", ".join(f'"gpu_inputs/part{m}"' for m in missing)
        print(f"stash: {len(have)} of {index['parts']} parts here; run again at once (the machine keeps the parts "
              f"only while warm) with carry [{carry}]")  # fmt: skip
        return 4
    return 0


def _without_sources(value):
    if isinstance(value, dict):
        return {k: _without_sources(v) for k, v in value.items() if k not in WAS_SOURCE}
    if isinstance(value, list):
        return [_without_sources(v) for v in value]
    return value


def restore(store: Path, data: Path) -> int:
    """Check the rebuild in ``data`` against the pack, then install the pack's manifests and caches."""
    from edge_isp.teacher.cache import cache_key
    from edge_isp.train.config import load_config
    from edge_isp.train.datasets import teacher_identity

    for task_dir in sorted((store / "real").iterdir()):
        task = task_dir.name
        packed = gzip.decompress((task_dir / "manifest.json.gz").read_bytes())
        rebuilt_path = data / task / "manifest.json"
        rebuilt = json.loads(rebuilt_path.read_text(encoding="utf-8"))
        if _without_sources(json.loads(packed)) != _without_sources(rebuilt):
            print(f"restore: {rebuilt_path} differs from the packing machine's beyond where its sources lie; "
                  "its teacher caches do not apply")  # fmt: skip
            return 1
        expected = [line.split("  ", 1) for line in gzip.decompress((task_dir / "files.sha256.gz").read_bytes())
                    .decode().splitlines()]  # fmt: skip
        differ = [name for sha, name in expected if sha256_file(data / task / name) != sha]
        print(f"restore: {task}: {len(expected) - len(differ)} of {len(expected)} files byte-identical to the "
              f"packing machine's build" + (f"; differing, e.g. {differ[0]}" if differ else ""))  # fmt: skip
        rebuilt_path.write_bytes(packed)  # the manifest's bytes key the teacher caches
        for cache in sorted((task_dir / "teacher").glob("*")) if (task_dir / "teacher").is_dir() else []:
            target = data / task / "teacher" / cache.name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(cache, target)
            print(f"restore: {task}: cached teacher answers {cache.name} put in place")
    config = ROOT / "configs" / "real-det.toml"
    key = cache_key(
        teacher_identity(load_config(config, stage="head").teacher), data / "real-detection" / "manifest.json"
    )
    found = (data / "real-detection" / "teacher" / key / "teacher.json").is_file()
    print(f"restore: {config.name}'s teacher cache key {key}: {'found' if found else 'NOT found'}")
    return 0 if found else 1


def report(runs: list[Path], out: Path) -> int:
    rows = ["| run | stage | epochs | s per epoch (mean) | s per epoch (each) |", "| --- | --- | ---: | ---: | --- |"]
    for root in runs:
        for history in sorted(root.rglob("history.json")):
            data = json.loads(history.read_text(encoding="utf-8"))
            seconds = [e["seconds"] for e in data.get("epochs", []) if "seconds" in e]
            if seconds:
                each = ", ".join(f"{s:.1f}" for s in seconds)
                rows.append(f"| {history.parent} | {data.get('stage')} | {len(seconds)} | "
                            f"{sum(seconds) / len(seconds):.1f} | {each} |")  # fmt: skip
    out.write_text("\n".join(rows) + "\n", encoding="utf-8")
    print("\n".join(rows))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("check")
    s = sub.add_parser("stash")
    s.add_argument("pack", type=Path)
    s.add_argument("store", type=Path)
    r = sub.add_parser("restore")
    r.add_argument("store", type=Path)
    r.add_argument("data", type=Path)
    t = sub.add_parser("report")
    t.add_argument("runs", type=Path, nargs="+")
    t.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.action == "check":
        return check()
    if args.action == "stash":
        return stash(args.pack, args.store)
    if args.action == "restore":
        return restore(args.store, args.data)
    return report(args.runs, args.out)


if __name__ == "__main__":
    sys.exit(main())
