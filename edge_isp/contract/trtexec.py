"""The ``trtexec`` command line equivalent to a build plan (``edge-isp export engine
--print-trtexec``): for building by hand, on a board without this package, or to compare.

Flags per API path (:mod:`edge_isp.contract.build_plan`): ``--fp16``/``--int8`` on TensorRT 8
and 10; none on TensorRT 11, which removed them (every network is strongly typed there, and
``--stronglyTyped`` is the default); ``--memPoolSize=workspace:N`` in MiB (the unit when no
suffix is given, on 8.5 through 11); ``--useDLACore=N`` and ``--allowGPUFallback`` for DLA;
``--minShapes/--optShapes/--maxShapes`` for a dynamic batch; ``--timingCacheFile``.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from edge_isp.contract.build_plan import BuildPlan

_PRECISION_FLAGS = {"FP16": "--fp16", "INT8": "--int8"}


def _shapes(plan: BuildPlan, which: int) -> str:
    assert plan.input_shapes is not None
    return ",".join(f"{name}:{'x'.join(str(d) for d in shapes[which])}" for name, shapes in plan.input_shapes.items())


def trtexec_args(
    onnx_path: str | Path,
    plan: BuildPlan,
    engine_path: str | Path,
    timing_cache: str | Path | None = None,
    executable: str = "trtexec",
) -> list[str]:
    """The argument list (``argv``) of the trtexec run that builds what ``plan`` builds."""
    args = [executable, f"--onnx={onnx_path}", f"--saveEngine={engine_path}"]
    for flag in plan.builder_flags:
        if flag in _PRECISION_FLAGS and plan.api != "strong-11":
            args.append(_PRECISION_FLAGS[flag])
    args.append(f"--memPoolSize=workspace:{plan.workspace_bytes // (1024 * 1024)}")
    if plan.dla_core is not None:
        args.append(f"--useDLACore={plan.dla_core}")
        if "GPU_FALLBACK" in plan.builder_flags:
            args.append("--allowGPUFallback")
    if plan.optimization_level is not None:
        args.append(f"--builderOptimizationLevel={plan.optimization_level}")
    if plan.input_shapes:
        args += [
            f"--minShapes={_shapes(plan, 0)}",
            f"--optShapes={_shapes(plan, 1)}",
            f"--maxShapes={_shapes(plan, 2)}",
        ]
    if timing_cache is not None:
        args.append(f"--timingCacheFile={timing_cache}")
    return args


def format_command(args: list[str]) -> str:
    """The argument list as a shell command, one option per line for reading."""
    return " \\\n    ".join(shlex.quote(a) for a in args)
