"""NVIDIA ModelOpt's ONNX INT8 PTQ against our own Q/DQ placement (issue 16).

ModelOpt (``nvidia-modelopt``, ``modelopt.onnx.quantization.quantize``) places Q/DQ the way
TensorRT fuses them; ours is :func:`edge_isp.export.precision.quantize_int8` (ONNX Runtime's
``quantize_static``, per-channel symmetric weights, symmetric activations at the 99.99th
percentile, the ISP outside its prior and the output layers kept float). This script gives
ModelOpt the same calibration frames our export uses and writes a file that ``edge-isp export
report`` measures like the shipped ones.

Steps (each reads the previous one's files under ``--out``):

1. ``calib``: with this project's code (run by the project's venv), the frames ``edge-isp export
   precision`` calibrates on: ``--calib-images`` images of the training split of ``--data``
   simulated at each of ``--light`` lux through the model's sensor profile
   (:func:`edge_isp.export.calibration.simulated_feed`, ``--seed``), saved as
   ``calib.npz`` {raw, noise} (N, ...) for ModelOpt's ``--calibration_data_path``.
2. ``quantize``: ModelOpt's INT8 PTQ in its own venv (``--modelopt-python``; it pins onnx and
   onnxruntime versions of its own, so it never goes into the project's venv), run as a
   subprocess: ``python -m modelopt.onnx.quantization --quantize_mode int8
   --calibration_eps cpu --high_precision_dtype fp32 --calibration_method METHOD`` (ModelOpt's
   default method for INT8 is entropy; fp32 keeps the float layers float as in our file, where
   ModelOpt's default would turn them to FP16). With ``--exclude-ours`` the nodes our export
   keeps float (:func:`isp_float_islands`, :func:`output_layers`) are passed as
   ``--nodes_to_exclude`` too: ModelOpt's Q/DQ placement and calibration on our layer choice.
3. ``metadata``: the FP32 file's edge-isp metadata copied onto ModelOpt's file with precision
   int8 and, as higher-precision groups, the layer groups whose Conv/Gemm/MatMul does not run
   in INT8 there (so ``edge-isp export report`` accepts it and the MAC share is counted).

Setup of ModelOpt's venv (CPU only; the wheel's ``[onnx]`` extra asks for onnxruntime-gpu and
cupy, so the CPU packages are named by hand)::

    python3 -m venv .venv-mo
    .venv-mo/bin/pip install --no-deps nvidia_modelopt-0.47.0-py3-none-any.whl
    .venv-mo/bin/pip install torch "onnx~=1.21.0" "onnxruntime~=1.24.2" "onnx-graphsurgeon>=0.6.1" \\
        "onnxslim>=0.1.76" "polygraphy>=0.53.4" ml_dtypes "onnxconverter-common~=1.16.0" onnxscript \\
        cppimport lief numpy "nvidia-ml-py>=12" packaging tqdm PyYAML omegaconf "pulp<4.0" pydantic \\
        regex rich safetensors scipy ninja "setuptools>=80"

Run (the detector; the classifier alike with models/real-cls and ``--images 400`` in place of
``--draws 7``)::

    PYTHONPATH=. OMP_NUM_THREADS=1 /work/main/.venv/bin/python scripts/modelopt_int8.py \\
        models/real-det/model.onnx --data /work/main/data/real --out out/modelopt/real-det
    OMP_NUM_THREADS=1 edge-isp export report models/real-det/model.onnx \\
        out/modelopt/real-det/model.int8.onnx --data /work/main/data/real --split test \\
        --light 1.5,3,6,12,24,48,96,10000 --draws 7 --json out/modelopt/real-det/accuracy.json

``--method max --exclude-ours`` and ``--out`` per variant for the others (a ``calib.npz``
already in ``--out`` is reused). The tables: ``scripts/modelopt_int8.py table --docs
docs/study/int8-modelopt --pair NAME OURS_ACCURACY_JSON MODELOPT_ACCURACY_JSON QUANTIZE_JSON ...``.

Fix-ups ModelOpt 0.47 needed here: the two ``/isp/Exp`` nodes of initializers are folded to
constants first (:func:`fold_constant_exp`, ModelOpt's IndexError otherwise); its entropy
calibration fails on the classifier inside ONNX Runtime (``smooth_distribution``: AssertionError
``n_zeros=80001.0, n_nonzeros=8.0, eps1=1.0000125``), so the classifier was calibrated with
``--method max``. Its file's inputs, outputs and node names are the FP32 file's, so ``edge-isp
export report`` runs it as it is.

Outcome: docs/study/int8-modelopt/.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

LIGHT = "1.5,3,6,12,24,48,96,10000"


def make_calibration(model: Path, data: Path, light: str, images: int, seed: int, out: Path) -> dict:
    """The frames ``edge-isp export precision`` calibrates on (``_precision`` in
    edge_isp/cli/export_commands.py), saved as ``out`` (npz: raw, noise)."""
    from edge_isp.contract.metadata import read_metadata
    from edge_isp.export.calibration import simulated_feed
    from edge_isp.export.evalset import check_class_names, light_levels, load_images, open_dataset
    from edge_isp.sensor.profile import SensorProfile

    metadata = read_metadata(model)
    profile = SensorProfile.load(metadata.profile)
    levels = light_levels(profile, [float(v) for v in light.split(",")], "lux")
    dataset = open_dataset(
        data, metadata.task, "train", teacher=metadata.teacher, input_size=metadata.input_size,
        raw_scale=metadata.raw_scale,
    )  # fmt: skip
    check_class_names(dataset.class_names, metadata.class_names, str(data))
    calib = load_images(dataset, metadata.task, metadata.input_size, images)
    feed = simulated_feed(calib.images, profile, [lv.electrons for lv in levels], seed=seed)
    raw = np.concatenate([item["raw"] for item in feed])
    noise = np.concatenate([item["noise"] for item in feed])
    np.savez(out, raw=raw, noise=noise)
    return {"description": feed.description, "raw": list(raw.shape), "noise": list(noise.shape)}


def kept_float(model: Path) -> list[str]:
    """ModelOpt ``--nodes_to_exclude`` patterns for what our INT8 export keeps float
    (``quantize_int8``'s defaults): every node of the ISP outside its prior (ours quantizes only
    Conv/Gemm/MatMul, so none of the ISP's element-wise nodes there; ModelOpt also puts Q/DQ on
    Add, Mul, Sub, Div, Resize... and would quantize those) and the output layers."""
    from edge_isp.export.precision import ISP_PRIOR_SCOPE, ISP_SCOPE, output_layers

    isp = f"^{re.escape(ISP_SCOPE)}(?!{re.escape(ISP_PRIOR_SCOPE[len(ISP_SCOPE) :])})"
    return [isp, *[f"^{re.escape(name)}$" for name in output_layers(str(model))]]


def fold_constant_exp(src: Path, dst: Path) -> list[str]:
    """Write ``src`` to ``dst`` with every Exp of an initializer replaced by the initializer of
    its value; returns the folded nodes' names. ModelOpt 0.47 fails on such a node (its
    ``is_const_input`` looks for a Clip before an Exp and indexes past the initializer: IndexError
    in graph_utils.py); ONNX Runtime folds the same constants when it opens the file, so this
    changes nothing the model computes."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    values = {i.name: i for i in model.graph.initializer}
    folded = []
    for node in list(model.graph.node):
        if node.op_type == "Exp" and node.input[0] in values:
            value = np.exp(numpy_helper.to_array(values[node.input[0]]))
            model.graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), node.output[0]))
            model.graph.node.remove(node)
            folded.append(node.name)
    onnx.save(model, str(dst))
    return folded


def run_modelopt(python: str, model: Path, calib: Path, dst: Path, method: str, exclude: list[str]) -> float:
    """ModelOpt's INT8 PTQ in its own interpreter; returns its wall time (s)."""
    command = [
        python, "-m", "modelopt.onnx.quantization", "--onnx_path", str(model), "--quantize_mode", "int8",
        "--calibration_data_path", str(calib), "--calibration_eps", "cpu", "--calibration_method", method,
        "--high_precision_dtype", "fp32", "--output_path", str(dst),
    ]  # fmt: skip
    if exclude:
        command += ["--nodes_to_exclude", *exclude]
    print("+", " ".join(command[:20]), "..." if len(command) > 20 else "", flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def copy_metadata(fp32: Path, quantized: Path) -> dict:
    """The FP32 file's edge-isp metadata onto ``quantized`` (precision int8, the groups whose
    Conv/Gemm/MatMul does not run in INT8 as higher precision); returns what it found."""
    import onnx

    from edge_isp.contract.metadata import read_metadata, set_metadata
    from edge_isp.export.cpu_int8 import int8_mac_fraction, integer_nodes
    from edge_isp.export.precision import INT8_OP_TYPES, layer_name

    source = onnx.load(str(fp32))
    model = onnx.load(str(quantized))
    integer = set(integer_nodes(model))
    float_nodes = [n.name for n in source.graph.node if n.op_type in INT8_OP_TYPES and n.name not in integer]
    names = {n.name for n in model.graph.node}
    missing = [n for n in float_nodes if n not in names]
    groups = sorted({layer_name(n) for n in float_nodes})
    set_metadata(model, read_metadata(source).replace(precision="int8", higher_precision=tuple(groups)))
    onnx.save(model, str(quantized))
    ops: dict[str, int] = {}
    for node in model.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return {
        "float_conv_gemm_matmul": float_nodes,
        "renamed_or_missing": missing,
        "higher_precision": groups,
        "int8_mac_fraction": int8_mac_fraction(fp32, quantized),
        "inputs": [i.name for i in model.graph.input],
        "outputs": [o.name for o in model.graph.output],
        "op_counts": dict(sorted(ops.items())),
        "opset": [(o.domain, o.version) for o in model.opset_import],
    }


def _share(note: str | None) -> str:
    """``"99.7% of the multiply-accumulates in int8"`` -> ``"99.7%"``."""
    return (note or "?").split(" ", 1)[0]


def write_study(pairs: list[tuple[str, Path, Path, Path]], docs: Path) -> None:
    """``results.json`` and ``README.md`` tables in ``docs`` from, per model, our report
    (FP32 and our Q/DQ file) and ModelOpt's (FP32 again, on the same frames: a check) and
    ModelOpt's quantize JSON (the MAC share, what stayed float)."""
    results: dict = {}
    lines: list[str] = []
    for name, ours_path, mo_path, info_path in pairs:
        ours, mo, info = (json.loads(Path(p).read_text()) for p in (ours_path, mo_path, info_path))
        labels = [level["label"] for level in mo["levels"]]
        entry = {
            "metric": mo["metric"], "images_per_level": mo["images_per_level"], "noise_draws": mo["noise_draws"],
            "sources": {"ours": str(ours_path), "modelopt": str(mo_path), "modelopt_quantize": str(info_path)},
            "fp32": mo["results"]["fp32"], "fp32_in_our_report": ours["results"]["fp32"],
            "ours": ours["results"]["int8"], "modelopt": mo["results"]["int8"],
            "ours_drop": ours["drop_from_fp32"]["int8"], "modelopt_drop": mo["drop_from_fp32"]["int8"],
            "ours_within_tolerance": ours["within_tolerance"]["int8"],
            "modelopt_within_tolerance": mo["within_tolerance"]["int8"],
            "ours_int8_macs": ours["notes"].get("int8"), "modelopt_int8_macs": mo["notes"].get("int8"),
            "modelopt_int8_mac_fraction": info["int8_mac_fraction"],
            "ours_higher_precision": ours["higher_precision"]["int8"],
            "modelopt_higher_precision": info["higher_precision"],
            "modelopt_settings": {k: info[k] for k in ("method", "exclude_ours", "folded_exp") if k in info},
        }  # fmt: skip
        results[name] = entry
        each = f"{mo['images_per_level']} images x {mo['noise_draws']} noise draws"
        lines += [
            f"### {name}: {mo['metric']}, {each} per level (`{mo_path}`)", "",
            "| light | FP32 | ours (Q/DQ) | ModelOpt | ours - FP32 | ModelOpt - FP32 |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]  # fmt: skip
        for label in labels:
            fp32, a, b = entry["fp32"][label], entry["ours"][label], entry["modelopt"][label]
            lines.append(f"| {label} | {fp32:.1f} | {a:.1f} | {b:.1f} | {a - fp32:+.1f} | {b - fp32:+.1f} |")
        lines += [
            f"| MACs in INT8 | 0 | {_share(entry['ours_int8_macs'])} | {_share(entry['modelopt_int8_macs'])} | | |", "",
            f"FP32 in our report equals FP32 here: {entry['fp32'] == entry['fp32_in_our_report']}; "
            f"ModelOpt kept float: {', '.join(entry['modelopt_higher_precision']) or 'nothing'}", "",
        ]  # fmt: skip
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (docs / "tables.md").write_text("\n".join(lines))
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["table"]:
        table = argparse.ArgumentParser(description="the study's tables from the reports")
        table.add_argument("--pair", nargs=4, action="append", required=True, metavar=("NAME", "OURS", "MO", "INFO"))
        table.add_argument("--docs", type=Path, default=Path("docs/study/int8-modelopt"))
        args = table.parse_args(argv[1:])
        write_study([(n, Path(a), Path(b), Path(c)) for n, a, b, c in args.pair], args.docs)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="the FP32 ONNX file (raw input)")
    parser.add_argument("--data", type=Path, required=True, help="the real data set (its train split calibrates)")
    parser.add_argument("--light", default=LIGHT, help="calibration light levels, lux (default %(default)s)")
    parser.add_argument("--calib-images", type=int, default=32, help="images per light level (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--method", default="entropy", choices=["entropy", "max"], help="ModelOpt's calibration")
    parser.add_argument("--exclude-ours", action="store_true", help="keep float the nodes our export keeps float")
    parser.add_argument("--modelopt-python", default=".venv-mo/bin/python", help="the venv with nvidia-modelopt")
    parser.add_argument("--out", type=Path, required=True, help="folder for calib.npz, model.int8.onnx, JSON")
    parser.add_argument("--name", default="model.int8.onnx", help="the quantized file's name in --out")
    args = parser.parse_args(argv)
    if not args.model.is_file():
        parser.error(f"{args.model} does not exist")
    args.out.mkdir(parents=True, exist_ok=True)
    calib = args.out / "calib.npz"
    info: dict = {"model": str(args.model), "method": args.method, "exclude_ours": args.exclude_ours}
    if calib.is_file():
        print(f"{calib}: reused")
    else:
        info["calibration"] = make_calibration(
            args.model, args.data, args.light, args.calib_images, args.seed, calib
        )  # fmt: skip
        print(f"{calib}: {info['calibration']}")
    exclude = kept_float(args.model) if args.exclude_ours else []
    info["nodes_excluded"] = exclude
    dst = args.out / args.name
    prepared = args.out / "model.prepared.onnx"
    info["folded_exp"] = fold_constant_exp(args.model, prepared)
    info["quantize_seconds"] = run_modelopt(args.modelopt_python, prepared, calib, dst, args.method, exclude)
    prepared.unlink()
    info.update(copy_metadata(args.model, dst))
    info["file_bytes"] = dst.stat().st_size
    (args.out / f"{dst.stem}.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps({k: v for k, v in info.items() if k not in ("op_counts", "float_conv_gemm_matmul")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
