"""`edge-isp simulate`, `isp`, `info` end to end, and how the command reports a user's mistake."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from edge_isp.cli import COMMAND_MODULES, build_parser, main
from edge_isp.sensor import RawFrame, SensorProfile
from edge_isp.sensor.cfa import pack


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edge_isp", *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    image = np.zeros((48, 64, 3), np.uint8)
    image[:, :32] = (200, 40, 40)
    image[:, 32:] = (40, 200, 40)
    path = out / "scene.png"
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert (
        main(["simulate", str(path), "--profile", "nexus6p-rear", "--lux", "3", "--seed", "1", "--out", str(out)]) == 0
    )
    return out


def test_simulate_writes_frame_and_preview(simulated):
    frame = RawFrame.load(simulated / "scene.npy")
    profile = SensorProfile.load("nexus6p-rear")
    assert frame.data.shape == (48, 64) and frame.sensor == "nexus6p-rear"
    # 3 lux is ~8 electrons at white: the gain caps at 64 and a digital gain lifts white to 1.
    assert frame.analogue_gain == pytest.approx(profile.max_analogue_gain)
    expected_d = profile.range_dn / (profile.electrons_at_white(3.0) * profile.noise_at(64.0).gain_dn_per_e)
    assert frame.digital_gain == pytest.approx(expected_d, rel=1e-4)
    # The red half is brighter in R than in G, after all the noise: the scene survived.
    planes = pack(frame.normalized(), frame.cfa)
    assert planes[0][:, :16].mean() > 2 * planes[1][:, :16].mean()
    preview = cv2.imread(str(simulated / "scene_preview.png"))
    assert preview is not None and preview.shape == (48, 64, 3)


def test_isp_renders_png_with_denoising(simulated, tmp_path):
    out = tmp_path / "isp"
    assert main(["isp", str(simulated / "scene.npy"), "--denoise", "nlm", "--out", str(out)]) == 0
    rgb = cv2.cvtColor(cv2.imread(str(out / "scene.png")), cv2.COLOR_BGR2RGB).astype(float)
    left, right = rgb[8:40, 4:28].mean(axis=(0, 1)), rgb[8:40, 36:60].mean(axis=(0, 1))
    assert left[0] > left[1] + 40 and right[1] > right[0] + 40


def test_info_prints_metadata(simulated, capsys):
    assert main(["info", str(simulated / "scene.npy")]) == 0
    text = capsys.readouterr().out
    assert "RGGB" in text and "nexus6p-rear" in text and "64 x 48 (W x H)" in text


def test_help_lists_every_subcommand():
    result = run_cli("--help")
    assert result.returncode == 0
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert len(COMMAND_MODULES) >= 2
    for name in sub.choices:
        assert name in result.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["info", "/nonexistent/frame.npy"], "does not exist"),
        (["simulate", "x.png", "--lux", "3", "--profile", "no-such-sensor", "--out", "o"], "no-such-sensor"),
        (["simulate", "skimage:astronaut", "--lux", "-2", "--out", "o"], "positive"),
        (["isp", "a.npy", "--demosaic", "magic", "--out", "o"], "invalid choice"),
        (["simulate", "skimage:astronaut", "--out", "o"], "--lux"),
    ],
)
def test_user_mistake_exits_1_without_traceback(args, words, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "edge_isp", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert words in result.stderr


def test_bad_profile_file_names_the_field(tmp_path):
    data = SensorProfile.load("nexus6p-rear").to_dict()
    data["white_level"] = 5000.0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    result = run_cli("simulate", "skimage:astronaut", "--lux", "3", "--profile", str(bad), "--out", str(tmp_path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "white_level" in result.stderr
