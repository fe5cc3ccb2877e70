"""Names of the 1000 ImageNet (ILSVRC-2012) classes, in the order classifiers output them.

The names are read from the Debian package ``opencv-doc`` (installed by
``scripts/bootstrap.sh``), which ships them one per line as
``classification_classes_ILSVRC2012.txt``. Its order is the standard one: the class
synsets sorted by WordNet ID (n01440764 "tench" first), which is also the order of
torchvision's ImageNet classifiers, so line ``i`` names logit ``i``.
"""

from __future__ import annotations

import os
from pathlib import Path

from edge_isp.errors import InvalidInputError, MissingDependencyError, MissingFileError

IMAGENET_CLASSES_FILE = Path("/usr/share/doc/opencv-doc/examples/data/dnn/classification_classes_ILSVRC2012.txt")
NUM_IMAGENET_CLASSES = 1000


def imagenet_class_names(path: str | os.PathLike | None = None) -> tuple[str, ...]:
    """The 1000 class names, index ``i`` naming logit ``i``; each entry lists synonyms.

    Example: entry 281 is ``"tabby, tabby cat"``. ``path`` overrides the opencv-doc file
    (same format: one name per line, 1000 lines, UTF-8).

    Raises:
        MissingDependencyError: no ``path`` and opencv-doc is not installed.
        MissingFileError: ``path`` does not exist.
        InvalidInputError: the file does not hold 1000 non-empty lines.
    """
    if path is None:
        if not IMAGENET_CLASSES_FILE.is_file():
            raise MissingDependencyError(
                f"the ImageNet class names come from {IMAGENET_CLASSES_FILE}, which is not there. "
                "Install the Debian package with: sudo apt-get install opencv-doc"
            )
        path = IMAGENET_CLASSES_FILE
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"class names file {path} does not exist")
    names = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    if len(names) != NUM_IMAGENET_CLASSES:
        raise InvalidInputError(
            f"{path} should list {NUM_IMAGENET_CLASSES} class names, one per line, got {len(names)}"
        )
    return names
