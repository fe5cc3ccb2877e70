"""Teacher model files that come inside packages: where they live and how they are unpacked.

MediaPipe's Objectron object detector (SSD-MobileNetV2 on 23 Open Images classes, fp16
TFLite, about 9.8 MB, Apache-2.0) is published only inside the npm package
``@mediapipe/objectron``, packed with its label map into ``objectron_solution_packed_assets.data``;
the package's ``objectron_solution_packed_assets_loader.js`` lists each file's byte range.
``scripts/bootstrap.sh`` fetches the pinned package with ``npm pack`` and calls
:func:`unpack_objectron`, which reads those ranges from the loader (not from constants here)
and writes the model and ``MODEL.labels.txt`` into the teacher folder. It is not committed:
at 9.8 MB it would grow every clone for a file only the teacher cache needs, once.

Usage: ``python -m edge_isp.teacher.assets mediapipe-objectron-VERSION.tgz [DEST]``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tarfile
from pathlib import Path

from edge_isp.errors import InvalidInputError, MissingFileError
from edge_isp.fileio import write_bytes

OBJECTRON_NPM = "@mediapipe/objectron@0.4.1675468480"
OBJECTRON_MODEL = "object_detection_ssd_mobilenetv2_oidv4_fp16.tflite"
_PACKED = "package/objectron_solution_packed_assets.data"
_LOADER = "package/objectron_solution_packed_assets_loader.js"
_ENTRY = re.compile(r'\{\s*"filename":\s*"([^"]+)",\s*"start":\s*(\d+),\s*"end":\s*(\d+)')


def teacher_dir() -> Path:
    """Where unpacked teacher files live: ``$EDGE_ISP_TEACHER_DIR`` or ``~/.cache/edge-isp/teachers``."""
    default = Path.home() / ".cache" / "edge-isp" / "teachers"
    return Path(os.environ.get("EDGE_ISP_TEACHER_DIR", default))


def packed_entries(loader_js: str) -> dict[str, tuple[int, int]]:
    """``{file name: (start, end)}`` byte ranges listed by an Emscripten packed-assets loader."""
    return {Path(name).name: (int(a), int(b)) for name, a, b in _ENTRY.findall(loader_js)}


def unpack_objectron(tarball: str | Path, dest: str | Path | None = None) -> Path:
    """Write the Objectron SSD and its labels from the npm tarball into ``dest``; returns the model path."""
    tarball = Path(tarball)
    dest = Path(dest) if dest is not None else teacher_dir()
    if not tarball.is_file():
        raise MissingFileError(f"npm tarball {tarball} does not exist; make it with: npm pack {OBJECTRON_NPM}")
    try:
        with tarfile.open(tarball) as archive:
            loader = archive.extractfile(_LOADER).read().decode("utf-8")
            packed = archive.extractfile(_PACKED).read()
    except (tarfile.TarError, KeyError, AttributeError, OSError) as exc:
        raise InvalidInputError(f"{tarball} is not the @mediapipe/objectron npm tarball ({exc})") from None
    entries = packed_entries(loader)
    wanted = {"labels": "object_detection_oidv4_labelmap.txt", "model": OBJECTRON_MODEL}
    missing = [name for name in wanted.values() if name not in entries]
    if missing or max(end for _, end in entries.values()) > len(packed):
        raise InvalidInputError(f"{tarball}: the packed assets do not hold {', '.join(missing) or 'the listed bytes'}")
    start, end = entries[wanted["model"]]
    model = packed[start:end]
    if model[4:8] != b"TFL3":
        raise InvalidInputError(f"{tarball}: bytes {start}-{end} are not a TFLite model")
    a, b = entries[wanted["labels"]]
    path = dest / OBJECTRON_MODEL
    write_bytes(path.with_suffix(".labels.txt"), packed[a:b])
    write_bytes(path, model)
    return path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 2):
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    try:
        path = unpack_objectron(*args)
    except (InvalidInputError, MissingFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"model": str(path), "bytes": path.stat().st_size}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
