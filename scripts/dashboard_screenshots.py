"""Screenshots of the live dashboard for docs/: runs ``edge-isp demo`` and photographs the page in
a headless Chromium. By default the garment scene (the garment detector on the simulated
camera, 30 lux) at two window sizes, ``docs/dashboard-WxH.png``; with ``--scene footage`` the
demo's default, the real-world detector on the held-out real footage (3 lux unless ``--lux``),
at the first size, ``docs/images/demo-footage-3lux.png`` (``--task classification``: the
ImageNet classifier on the held-out photographs, ``demo-photos-classification-3lux.png``).

    python scripts/dashboard_screenshots.py [--out docs] [--lux 30] [--settle-s 8]
    python scripts/dashboard_screenshots.py --scene footage [--task classification]

With ``--model``, ``--conventional-model`` and ``--source`` it runs ``edge-isp run`` on them
instead (e.g. a fused model and a baseline's detector on footage) and names the pictures
``dashboard-NAME-WxH.png`` (``--name``, default "conventional"), at the first size only.

Needs Debian's ``chromium`` (``scripts/bootstrap.sh test`` installs it).
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.runtime.chromium import chromium_page, wait_for  # noqa: E402

SIZES = ((1400, 900), (800, 600))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def save_png(bgr, path: Path) -> None:
    """A 256-colour PNG (a third of the size of a full-colour one of these noisy pictures) where
    Pillow is installed (it comes with matplotlib), else a full-colour one."""
    try:
        from PIL import Image
    except ImportError:
        cv2.imwrite(str(path), bgr)
        return
    image = Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG).save(
        path, optimize=True
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--lux", type=float, help="light level (default: 30 for garments, 3 for footage)")
    parser.add_argument("--scene", choices=["garments", "footage"], default="garments", help="the demo's scene")
    parser.add_argument("--task", choices=["detection", "classification"], default="detection")
    parser.add_argument("--settle-s", type=float, default=8.0, help="seconds to let the pipeline warm up")
    parser.add_argument("--model", type=Path, help="run this fused model with `edge-isp run` instead of the demo")
    parser.add_argument("--conventional-model", type=Path, help="with --model: the conventional pipeline's model")
    parser.add_argument("--source", help="with --model: the source (default sim)", default="sim")
    parser.add_argument("--name", default="conventional", help="with --model: the pictures' name")
    args = parser.parse_args()
    port = free_port()
    if args.lux is None:
        args.lux = 30.0 if args.scene == "garments" or args.model is not None else 3.0
    command = [sys.executable, "-m", "edge_isp", "demo", "--http", f"127.0.0.1:{port}", "--lux", f"{args.lux:g}",
               "--scene", args.scene, "--task", args.task]  # fmt: skip
    sizes, prefix, out = SIZES, "dashboard", args.out
    if args.scene == "footage":
        what = "footage" if args.task == "detection" else "photos-classification"
        sizes, prefix, out = SIZES[:1], f"demo-{what}-{args.lux:g}lux", args.out / "images"
        out.mkdir(parents=True, exist_ok=True)
    if args.model is not None:
        command = [sys.executable, "-m", "edge_isp", "run", "--source", args.source, "--model", str(args.model),
                   "--http", f"127.0.0.1:{port}", "--lux", str(args.lux), "--conventional-every", "1"]  # fmt: skip
        if args.source != "sim":
            command.append("--loop")  # footage: round again while the pictures are taken
        if args.conventional_model is not None:
            command += ["--conventional-model", str(args.conventional_model)]
        sizes, prefix = SIZES[:1], f"dashboard-{args.name}"
    demo = subprocess.Popen(command, cwd=ROOT)
    try:
        base = f"http://127.0.0.1:{port}/"

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(base + "healthz", timeout=2) as reply:
                    return json.load(reply)["status"] == "ok"
            except OSError:
                return False

        wait_for(healthy, "the demo to serve frames", timeout_s=120)
        time.sleep(args.settle_s)
        for width, height in sizes:
            with chromium_page(base, (width, height)) as page:
                wait_for(lambda p=page: p.evaluate("document.getElementById('learned').naturalWidth"), "the video")
                wait_for(lambda p=page: p.evaluate("document.getElementById('conventional').naturalWidth"), "2nd view")
                time.sleep(3)  # FPS, latency and board figures fill in
                path = out / (f"{prefix}.png" if args.scene == "footage" else f"{prefix}-{width}x{height}.png")
                save_png(page.screenshot(), path)
                print(f"wrote {path}")
    finally:
        demo.terminate()
        demo.wait(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
