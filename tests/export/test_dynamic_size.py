"""Dynamic-size ONNX export (issue 17, "The size a model runs at"): one file that runs at any
frame size in the model's multiple, for the full- and half-resolution variants, equal to
fixed-size exports at those sizes and to torch; and `edge-isp run` on replayed frames at a size
other than the export size giving a fixed export's detections."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from edge_isp.contract.metadata import ModelMetadata, read_metadata
from edge_isp.contract.model_input import UpscaleError
from edge_isp.contract.onnx_session import cpu_session
from edge_isp.errors import InvalidInputError
from edge_isp.export.onnx_export import (
    compare_outputs,
    export_onnx,
    parity_inputs,
    size_multiple,
)
from edge_isp.model.contract_module import ContractModule
from edge_isp.model.loading import load_model
from edge_isp.sensor.frame import RawFrame

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

CLASSES = ["a", "b", "c"]
# (model, export size, two other sizes to run at); detectors in multiples of 32 (dp and dpnh
# alike), classifiers of 4 (full-resolution ISP) and 8 (half).
CASES = [
    ("dp_s_det", (64, 64), [(96, 64), (128, 96)], 32),
    ("dpnh_s_det", (64, 64), [(96, 64), (128, 96)], 32),
    ("dp_s_cls", (64, 64), [(68, 52), (96, 72)], 4),
    ("dpnh_s_cls", (64, 64), [(72, 56), (96, 80)], 8),
]


def _export(loaded, path, size, profile, dynamic: bool):
    return export_onnx(loaded.model, path, input_size=size, class_names=CLASSES, profile=profile,
                       with_image=True, top_k=20, dynamic_size=dynamic)  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("name", "size", "others", "multiple"), CASES)
def test_dynamic_export_equals_fixed_exports_and_torch(tmp_path, profile, name, size, others, multiple):
    loaded = load_model(name, num_classes=3, width_mult=0.35)
    torch.manual_seed(0)
    with torch.no_grad():  # nonzero U-Net output layers, so the ISP's shape handling matters
        for prior in loaded.model.isp.priors:
            prior.out.weight.normal_(0, 0.05)
    dynamic = _export(loaded, tmp_path / "dynamic.onnx", size, profile, True)
    meta = read_metadata(dynamic.path)
    assert (
        meta.size_multiple
        == multiple
        == size_multiple(loaded.config.task, loaded.config.raw_scale, loaded.config.stem_stride)
    )
    assert meta.dynamic_size and meta.input_size == size
    raw = next(i for i in onnx.load(str(dynamic.path)).graph.input if i.name == "raw")
    dims = raw.type.tensor_type.shape.dim
    assert dims[2].dim_param and dims[3].dim_param  # height and width are not numbers in the file
    # The export checked itself at a second size, and found it equal.
    assert any("@" in key for key in dynamic.parity) and all(s.ok() for s in dynamic.parity.values())
    session = cpu_session(dynamic.path)
    names = [o.name for o in session.get_outputs()]
    for other in others:
        fixed = _export(loaded, tmp_path / f"fixed{other[0]}x{other[1]}.onnx", other, profile, False)
        assert read_metadata(fixed.path).size_multiple is None
        feed = parity_inputs(profile, other, seed=3)
        got = session.run(names, feed)
        want = cpu_session(fixed.path).run(names, feed)
        with torch.no_grad():
            loaded.model.eval()
            from_torch = [t.numpy() for t in fixed_wrapper(loaded, feed)]
        for a, b in ((got, want), (got, from_torch), (want, got), (from_torch, got)):
            for key, s in compare_outputs(names, a, _top(names, b)).items():
                assert s.ok(1e-5), (name, other, key, s)
        image = got[names.index("image")]
        raw_scale = loaded.config.raw_scale
        assert image.shape[2:] == (other[1] // raw_scale, other[0] // raw_scale)


def _top(names: list[str], outputs: list[np.ndarray], keep: int = 10) -> list[np.ndarray]:
    """The reference's first ``keep`` detections (all other outputs whole): an untrained
    heatmap has near-equal peaks, and which of them make the last places of the top K may
    differ in the last float bit between two runtimes; the strong ones must all be found."""
    if "boxes" not in names:
        return outputs
    return [o[:, :keep] if n in ("boxes", "scores", "labels") else o for n, o in zip(names, outputs, strict=True)]


def fixed_wrapper(loaded, feed):
    wrapper = ContractModule(loaded.model, 20, with_image=True).eval()
    return wrapper(torch.from_numpy(feed["raw"]), torch.from_numpy(feed["noise"]))


def test_dynamic_export_refuses_a_size_off_the_multiple(tmp_path, profile):
    loaded = load_model("dpnh_s_cls", num_classes=3, width_mult=0.35)
    with pytest.raises(InvalidInputError, match="multiples of 8"):
        _export(loaded, tmp_path / "m.onnx", (68, 52), profile, True)


def test_size_multiple_in_metadata_round_trips_and_is_checked():
    meta = ModelMetadata(task="detection", input_size=(64, 64), size_multiple=32)
    props = meta.to_props()
    assert props["edge_isp.size_multiple"] == "32"
    assert ModelMetadata.from_props(props, strict=False).size_multiple == 32
    assert "edge_isp.size_multiple" not in ModelMetadata(task="detection").to_props()
    for bad in ("0", "7", "x", "-32"):
        with pytest.raises(InvalidInputError, match="size_multiple"):
            ModelMetadata.from_props({**props, "edge_isp.size_multiple": bad}, strict=False)
    with pytest.raises(InvalidInputError, match="size_multiple"):
        ModelMetadata(task="detection", size_multiple=3)


def _cli(argv: list[str]) -> int:
    from edge_isp.cli import run_commands

    parser = argparse.ArgumentParser(prog="edge-isp")
    run_commands.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def _replay(model, frames, out, *extra) -> list[list[dict]]:
    code = _cli(["run", "--source", f"replay:{frames}", "--model", str(model), "--process-all", "--backend",
                 "onnxruntime", "--device", "cpu", "--score-threshold", "0.05", "--auto-exposure", "off",
                 "--record", str(out), *extra])  # fmt: skip
    assert code == 0
    (jsonl,) = out.glob("*.jsonl")
    return [json.loads(line)["results"]["detections"] for line in jsonl.read_text().splitlines()]


def _same_detections(got: list[list[dict]], want: list[list[dict]]) -> None:
    assert len(got) == len(want)
    for frame_got, frame_want in zip(got, want, strict=True):
        assert len(frame_got) == len(frame_want) > 0
        for g, w in zip(frame_got, frame_want, strict=True):
            assert g["label"] == w["label"]
            assert g["score"] == pytest.approx(w["score"], abs=1e-5)
            np.testing.assert_allclose(g["box"], w["box"], atol=1e-3)


@pytest.mark.slow
def test_replayed_frames_at_another_size_match_a_fixed_export(tmp_path, profile, capsys):
    """`edge-isp run` on recorded 160x128 frames: the dynamic model (exported at 64x64) runs
    them at their own size and gives the detections of a model exported at 160x128; asked for
    96x64 (a downscale) it gives those of a 96x64 export; the 160x128 export refuses 128x128
    frames instead of upscaling them."""
    loaded = load_model("dp_s_det", num_classes=3, width_mult=0.35)
    torch.manual_seed(1)
    with torch.no_grad():  # an untrained heatmap sits at 0.1 everywhere: give it peaks
        loaded.model.head.heatmap[-1].bias.fill_(0.0)
    dynamic = _export(loaded, tmp_path / "dynamic.onnx", (64, 64), profile, True).path
    fixed = _export(loaded, tmp_path / "fixed.onnx", (160, 128), profile, False).path
    small = _export(loaded, tmp_path / "small.onnx", (96, 64), profile, False).path
    rng = np.random.default_rng(0)
    for i in range(3):
        values = 0.1 + 0.05 * rng.random((128, 160))
        values[30:70, 20 + 20 * i : 60 + 20 * i] = 0.8
        data = np.rint(64 + values * (1023 - 64)).astype(np.uint16)
        RawFrame(data, "RGGB", 10, 64, 1023, analogue_gain=4.0).save(tmp_path / "rec" / f"{i:06d}")
    rec = tmp_path / "rec"
    _same_detections(_replay(dynamic, rec, tmp_path / "d"), _replay(fixed, rec, tmp_path / "f"))
    assert "input each frame's own size" in capsys.readouterr().out
    downscaled = _replay(dynamic, rec, tmp_path / "d2", "--input-size", "96x64")
    _same_detections(downscaled, _replay(small, rec, tmp_path / "s"))
    for i in range(2):
        data = np.full((128, 128), 300, np.uint16)
        RawFrame(data, "RGGB", 10, 64, 1023).save(tmp_path / "square" / f"{i:06d}")
    with pytest.raises(UpscaleError, match=r"128x128 frame is too small.*160x128.*--dynamic-size"):
        _replay(fixed, tmp_path / "square", tmp_path / "q")
    with pytest.raises(UpscaleError, match="upscaled"):
        _replay(dynamic, tmp_path / "square", tmp_path / "q2", "--input-size", "160x128")
