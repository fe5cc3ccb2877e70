"""Which GPU an engine is built on: its name and CUDA compute capability (part of the engine
cache key, since an engine runs only on the GPU model and TensorRT version it was built for).

Asked of whatever is installed, in order: pycuda (the ``jetson`` extra), NVIDIA's
``cuda-python``, torch, then ``nvidia-smi``. The parsers are pure and tested; the probes are
thin and need a GPU.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess

from edge_isp.errors import EdgeIspError, InvalidInputError


class NoGpuError(EdgeIspError, RuntimeError):
    """No CUDA GPU could be found or asked."""


@dataclasses.dataclass(frozen=True)
class GpuInfo:
    """A GPU as the cache key names it: ``name`` ("Orin", "NVIDIA H100 80GB HBM3") and compute
    capability ``(major, minor)``."""

    name: str
    compute_capability: tuple[int, int]

    @property
    def sm(self) -> str:
        """ "8.7" style compute capability."""
        return f"{self.compute_capability[0]}.{self.compute_capability[1]}"

    @property
    def slug(self) -> str:
        """The name as a file-name-safe lower-case word list, ``nvidia-h100-80gb-hbm3``."""
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-") or "gpu"


def parse_compute_capability(text: str) -> tuple[int, int]:
    """``"8.7"`` -> (8, 7)."""
    match = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", str(text))
    if not match:
        raise InvalidInputError(f"a compute capability looks like '8.7', got {text!r}")
    return int(match.group(1)), int(match.group(2))


def parse_nvidia_smi(output: str, index: int = 0) -> GpuInfo:
    """Parse ``nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader`` output; one line
    per GPU, ``index`` picks one."""
    lines = [line for line in output.strip().splitlines() if line.strip()]
    if index >= len(lines):
        raise NoGpuError(f"nvidia-smi lists {len(lines)} GPU(s); GPU {index} does not exist")
    name, _, cap = lines[index].rpartition(",")
    if not name.strip():
        raise InvalidInputError(f"unexpected nvidia-smi output line {lines[index]!r} (expected 'NAME, 8.7')")
    return GpuInfo(name.strip(), parse_compute_capability(cap))


def _pycuda(index: int) -> GpuInfo:
    import pycuda.driver as cuda

    cuda.init()
    device = cuda.Device(index)
    return GpuInfo(device.name(), tuple(device.compute_capability()))


def _cuda_python(index: int) -> GpuInfo:
    from cuda import cudart  # type: ignore[import-not-found]

    err, props = cudart.cudaGetDeviceProperties(index)
    if int(err) != 0:
        raise NoGpuError(f"cudaGetDeviceProperties({index}) failed with error {err}")
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return GpuInfo(name.rstrip("\x00"), (int(props.major), int(props.minor)))


def _torch(index: int) -> GpuInfo:
    import torch

    if not torch.cuda.is_available():
        raise NoGpuError("torch sees no CUDA GPU")
    return GpuInfo(torch.cuda.get_device_name(index), tuple(torch.cuda.get_device_capability(index)))


def _nvidia_smi(index: int) -> GpuInfo:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        raise NoGpuError("nvidia-smi is not installed")
    result = subprocess.run(
        [exe, "--query-gpu=name,compute_cap", "--format=csv,noheader"], capture_output=True, text=True, timeout=20
    )
    if result.returncode != 0:
        raise NoGpuError(f"nvidia-smi failed: {result.stderr.strip() or result.returncode}")
    return parse_nvidia_smi(result.stdout, index)


def detect_gpu(index: int = 0) -> GpuInfo:
    """The GPU ``index`` (CUDA's numbering), from the first probe that answers."""
    reasons = []
    for probe in (_pycuda, _cuda_python, _torch, _nvidia_smi):
        try:
            return probe(index)
        except ImportError as exc:
            reasons.append(f"{probe.__name__.strip('_')}: not installed ({exc.name or exc})")
        except Exception as exc:  # each probe fails its own way on a machine without a GPU
            reasons.append(f"{probe.__name__.strip('_')}: {exc}")
    raise NoGpuError(f"no CUDA GPU found to build a TensorRT engine on ({'; '.join(reasons)})")
