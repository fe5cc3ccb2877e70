"""The offline raw material of the built-in data set: Fashion-MNIST and natural photographs.

Nothing here downloads anything. Fashion-MNIST comes from the Debian package
``dataset-fashion-mnist`` (or any folder holding its four ``*-ubyte.gz`` files, named by
``$EDGE_ISP_FASHION_MNIST_DIR``); the photographs are the colour photographs bundled inside
the scikit-image wheel and the OpenCV sample images of the Debian package ``opencv-doc``.

Each photograph is assigned to exactly one split in :data:`PHOTOS` (a fixed table, not a
function of the seed), so two data sets built with different seeds still never show a
test background during training. Near-duplicate photographs (the two views of a stereo
pair, the two graffiti views) share a ``group`` and always sit in the same split.
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.util
import os
from pathlib import Path

import numpy as np

from edge_isp.errors import InvalidInputError, MissingFileError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
OPENCV_SAMPLES_DIR = Path("/usr/share/doc/opencv-doc/examples/data")
SPLITS = ("train", "val", "test")

# Fashion-MNIST's classes in its label order; names are safe as folder names.
CLASS_NAMES = (
    "tshirt_top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle_boot",
)

FASHION_MNIST_LICENCE = "MIT (Zalando SE 2017), Debian package dataset-fashion-mnist"
INSTALL_HINT = (
    "Install the offline data with: sudo apt-get install dataset-fashion-mnist opencv-doc; "
    "and: pip install scikit-image"
)

_OPENCV_LICENCE = "OpenCV sample data, Apache-2.0 AND BSD-3-Clause as packaged by Debian opencv-doc"


@dataclasses.dataclass(frozen=True)
class Photo:
    """One background photograph.

    Attributes:
        id: unique name, ``SOURCE:STEM``, recorded as provenance in the data set.
        source: ``"opencv-doc"`` or ``"scikit-image"``.
        filename: the file inside the source's folder.
        group: photographs of the same scene share a group (and a split).
        split: the one split whose images may use it as background.
        licence: the licence the source states for it.
        note: why it is in the list (what it shows).
    """

    id: str
    source: str
    filename: str
    group: str
    split: str
    licence: str
    note: str


def _cv(filename: str, group: str, split: str, note: str) -> Photo:
    stem = filename.rsplit(".", 1)[0]
    return Photo(f"opencv-doc:{stem}", "opencv-doc", filename, group, split, _OPENCV_LICENCE, note)


def _sk(filename: str, group: str, split: str, licence: str, note: str) -> Photo:
    stem = filename.rsplit(".", 1)[0]
    return Photo(f"scikit-image:{stem}", "scikit-image", filename, group, split, licence, note)


# Curated by eye: colour photographs of real scenes only. Left out on purpose: the grey
# ones, the chessboard/calibration views (left01..14, right01..14, chessboard), logos,
# text and sudoku pages, clip art (HappyFish, ml), synthetic shapes (pic1..6, detect_blob,
# cards), a painting (starry_night), the PCA test pattern, ela_modified (a doctored copy
# of ela_original), and from scikit-image the telescope, microscope and fundus images
# (hubble_deep_field, ihc, retina: no everyday scene) and the colour wheel.
PHOTOS: tuple[Photo, ...] = (
    _cv("aero1.jpg", "aero", "train", "aerial view of a town"),
    _cv("aero3.jpg", "aero", "train", "aerial view of a town, second view"),
    _cv("aloeL.jpg", "aloe", "train", "potted aloe, stereo left"),
    _cv("aloeR.jpg", "aloe", "train", "potted aloe, stereo right"),
    _cv("baboon.jpg", "baboon", "train", "mandrill face, fur texture"),
    _cv("board.jpg", "board", "train", "circuit board close-up"),
    _cv("building.jpg", "building", "train", "office building and trees"),
    _cv("butterfly.jpg", "butterfly", "train", "butterfly on a leaf"),
    _cv("fruits.jpg", "fruits", "train", "cut citrus fruit and kiwi"),
    _cv("graf1.png", "graf", "train", "graffiti wall"),
    _cv("graf3.png", "graf", "train", "graffiti wall, oblique view"),
    _cv("leuvenA.jpg", "leuven", "train", "street of brick houses"),
    _cv("leuvenB.jpg", "leuven", "train", "street of brick houses, other exposure"),
    _cv("messi5.jpg", "messi", "train", "football player on a pitch"),
    _cv("rubberwhale1.png", "rubberwhale", "train", "toys on a table (optical-flow frame)"),
    _cv("rubberwhale2.png", "rubberwhale", "train", "toys on a table, next frame"),
    _cv("squirrel_cls.jpg", "squirrel", "train", "squirrel on a branch"),
    _sk("astronaut.png", "astronaut", "train", "public domain (NASA)", "portrait with flag"),
    _sk("chelsea.png", "chelsea", "train", "CC0 (Stefan van der Walt)", "cat, fur texture"),
    _sk("motorcycle_left.png", "motorcycle", "train", "Middlebury 2014 stereo data set", "motorcycle, left"),
    _sk("motorcycle_right.png", "motorcycle", "train", "Middlebury 2014 stereo data set", "motorcycle, right"),
    _cv("apple.jpg", "apple", "val", "apple on a table"),
    _cv("home.jpg", "home", "val", "palace against blue sky"),
    _cv("smarties.png", "smarties", "val", "coloured sweets on white"),
    _cv("left.jpg", "books", "val", "books on a desk, stereo left"),
    _cv("right.jpg", "books", "val", "books on a desk, stereo right"),
    _sk("coffee.png", "coffee", "val", "CC0 (Rachel Michetti)", "coffee cup on wood"),
    _cv("orange.jpg", "orange", "test", "orange close-up"),
    _cv("chicky_512.png", "chicky", "test", "dog face"),
    _cv("licenseplate_motion.jpg", "car", "test", "rear of a car, motion blurred"),
    _cv("ela_original.jpg", "notebook", "test", "notebook with elastic band"),
    _cv("stuff.jpg", "stuff", "test", "pencil, cap and lighter on a desk"),
    _sk("rocket.jpg", "rocket", "test", "public domain (SpaceX)", "rocket launch"),
)


def fashion_mnist_dir() -> Path:
    """The Fashion-MNIST folder: ``$EDGE_ISP_FASHION_MNIST_DIR`` or the Debian location."""
    return Path(os.environ.get("EDGE_ISP_FASHION_MNIST_DIR", FASHION_MNIST_DIR))


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzip-compressed or not) of unsigned bytes.

    Returns an array of the dimensions the header declares, dtype uint8: ``(N, 28, 28)``
    for Fashion-MNIST images, ``(N,)`` for its labels.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"IDX file {path} does not exist. {INSTALL_HINT}")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as exc:
        raise InvalidInputError(f"{path}: cannot be read as an IDX file: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise InvalidInputError(f"{path}: not an IDX file (expected magic 0x0000, got {raw[:2].hex()!r})")
    if raw[2] != 0x08:
        raise InvalidInputError(f"{path}: IDX element type 0x{raw[2]:02x} is not supported (expected 0x08, ubyte)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape, dtype=np.int64))
    if len(raw) != expected:
        raise InvalidInputError(f"{path}: header declares shape {shape} ({expected} bytes), file has {len(raw)} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def load_fashion_mnist(part: str, root: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load Fashion-MNIST's ``"train"`` (60,000) or ``"test"`` (10,000) part.

    Returns ``(images, labels)``: ``(N, 28, 28)`` uint8 grey, 0 = black background, and
    ``(N,)`` uint8 class indices into :data:`CLASS_NAMES`.
    """
    if part not in ("train", "test"):
        raise InvalidInputError(f"Fashion-MNIST part must be 'train' or 'test', got {part!r}")
    folder = Path(root) if root is not None else fashion_mnist_dir()
    prefix = "train" if part == "train" else "t10k"
    paths = [folder / f"{prefix}-images-idx3-ubyte.gz", folder / f"{prefix}-labels-idx1-ubyte.gz"]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise MissingFileError(
            f"Fashion-MNIST is not in {folder} (missing {', '.join(missing)}). {INSTALL_HINT}; "
            "or set EDGE_ISP_FASHION_MNIST_DIR to a folder holding the four *-ubyte.gz files."
        )
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise InvalidInputError(
            f"Fashion-MNIST {part} in {folder}: expected images (N, 28, 28) and labels (N,), "
            f"got {images.shape} and {labels.shape}"
        )
    if labels.size and int(labels.max()) >= len(CLASS_NAMES):
        raise InvalidInputError(f"Fashion-MNIST {part} labels must be 0..9, got max {int(labels.max())}")
    return images, labels


def skimage_data_dir() -> Path | None:
    """The folder of images bundled in the scikit-image wheel, or None if it is not installed.

    Found without importing scikit-image, whose loaders may try to download the images
    that are not bundled.
    """
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "data"
    return folder if folder.is_dir() else None


def _read_rgb(path: Path) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InvalidInputError(f"{path}: not an image OpenCV can read")
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def skimage_photo(name: str) -> np.ndarray:
    """A photograph bundled in scikit-image by file stem (``"astronaut"``, ``"chelsea"``...).

    Returns ``(H, W, 3)`` uint8 RGB (grey images are repeated over the three channels).
    """
    folder = skimage_data_dir()
    if folder is None:
        raise MissingFileError(f"scikit-image is not installed, so skimage:{name} is not available. {INSTALL_HINT}")
    found = {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in (".png", ".jpg", ".jpeg")}
    if name not in found:
        raise InvalidInputError(
            f"skimage:{name} is not an image bundled with scikit-image; expected one of {', '.join(found)}"
        )
    return _read_rgb(found[name])


def photo_path(photo: Photo, opencv_dir: str | Path | None = None) -> Path | None:
    """Where ``photo`` lives on this machine, or None if its source is not installed."""
    if photo.source == "scikit-image":
        folder = skimage_data_dir()
    else:
        folder = Path(opencv_dir) if opencv_dir is not None else OPENCV_SAMPLES_DIR
    if folder is None:
        return None
    path = Path(folder) / photo.filename
    return path if path.is_file() else None


def available_photos(opencv_dir: str | Path | None = None) -> dict[str, list[Photo]]:
    """The installed photographs of :data:`PHOTOS`, by split.

    Raises :class:`MissingFileError` if a split would have no background at all.
    """
    by_split: dict[str, list[Photo]] = {s: [] for s in SPLITS}
    for photo in PHOTOS:
        if photo_path(photo, opencv_dir) is not None:
            by_split[photo.split].append(photo)
    empty = [s for s in SPLITS if not by_split[s]]
    if empty:
        raise MissingFileError(
            f"no background photographs for split(s) {', '.join(empty)}: found none of the curated "
            f"photographs in scikit-image's data folder ({skimage_data_dir()}) or in "
            f"{opencv_dir or OPENCV_SAMPLES_DIR}. {INSTALL_HINT}"
        )
    return by_split


def load_photo(photo: Photo, opencv_dir: str | Path | None = None) -> np.ndarray:
    """Read ``photo`` as ``(H, W, 3)`` uint8 RGB."""
    path = photo_path(photo, opencv_dir)
    if path is None:
        raise MissingFileError(f"photograph {photo.id} ({photo.filename}) is not installed. {INSTALL_HINT}")
    return _read_rgb(path)
