"""Data sets: the built-in demo set and loaders for image folders, COCO JSON and raw captures.

Importing this package does not import the builder's heavier parts (tqdm, Fashion-MNIST);
they load when :func:`build_dataset` runs.
"""

from edge_isp.data.builtin import BuildConfig, BuildResult, TaskConfig, build_dataset, builtin_dataset, read_manifest
from edge_isp.data.folders import (
    CocoDetectionDataset,
    ImageFolderDataset,
    RawCaptureDataset,
    load_raw_capture,
    read_image,
)
from edge_isp.data.sources import CLASS_NAMES, PHOTOS, SPLITS

__all__ = [
    "CLASS_NAMES",
    "PHOTOS",
    "SPLITS",
    "BuildConfig",
    "BuildResult",
    "CocoDetectionDataset",
    "ImageFolderDataset",
    "RawCaptureDataset",
    "TaskConfig",
    "build_dataset",
    "builtin_dataset",
    "load_raw_capture",
    "read_image",
    "read_manifest",
]
