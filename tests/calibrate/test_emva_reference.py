"""Photon transfer against the EMVA 1288 reference implementation (PyPI ``emva1288``, the
standard's own Python package): its camera simulator makes the frames (fixed exposure, the
light varied, a sensor that clips at its full well), and its results code, fed the plain
pair statistics of the same frames, gives the reference K, saturation capacity and SNR max."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from edge_isp.calibrate.frames import ref_from_frame
from edge_isp.calibrate.ptc import photon_transfer
from edge_isp.sensor.frame import RawFrame

emva1288 = pytest.importorskip("emva1288")
from emva1288.camera.camera import Camera  # noqa: E402
from emva1288.process.results import Results1288  # noqa: E402

LEVELS = 30


@pytest.fixture(scope="module")
def sweep():
    cam = Camera(bit_depth=12, width=128, height=128, K=0.4, u_esat=8000.0, blackoffset=64, seed=1)
    full = cam.get_radiance_for()
    t = cam.exposure * 1e-9
    refs, temporal = [], {k: [] for k in ("texp", "u_p", "u_y", "s2_y", "u_ydark", "s2_ydark")}

    def add(image, kind, name):
        frame = RawFrame(data=image.astype(np.uint16), cfa="RGGB", bit_depth=12, black_level=cam.blackoffset,
                         white_level=4095, exposure_time_s=t)  # fmt: skip
        refs.append(ref_from_frame(frame, kind, name))

    for k in range(8):
        add(cam.grab(0.0), "dark", f"dark{k}")
    for i, fraction in enumerate(np.linspace(0.04, 1.2, LEVELS)):
        a, b, d0, d1 = (cam.grab(r) for r in (full * fraction, full * fraction, 0.0, 0.0))
        add(a, "flat", f"flat{i}a")
        add(b, "flat", f"flat{i}b")
        # EMVA's temporal statistics of a pair, as the standard writes them.
        x, y, dx, dy = (v.astype(np.float64) for v in (a, b, d0, d1))
        temporal["u_y"].append((x + y).mean() / 2)
        temporal["s2_y"].append(((x - y) ** 2).mean() / 2 - (x.mean() - y.mean()) ** 2 / 2)
        temporal["u_ydark"].append((dx + dy).mean() / 2)
        temporal["s2_ydark"].append(((dx - dy) ** 2).mean() / 2)
        temporal["texp"].append(cam.exposure)
        temporal["u_p"].append(fraction)
    return cam, refs, {k: np.array(v) for k, v in temporal.items()}


def test_matches_the_reference_implementation(sweep, monkeypatch):
    # emva1288 1.0.2 calls np.asfarray, which NumPy 2 removed; give it back for its fits.
    monkeypatch.setattr(np, "asfarray", lambda x, dtype=float: np.asarray(x, dtype=dtype), raising=False)
    cam, refs, temporal = sweep
    g = photon_transfer(refs).gains[0]
    assert g.varied == "light"  # one exposure, the light varied: EMVA's second method
    signal = temporal["u_y"] - temporal["u_ydark"]
    variance = temporal["s2_y"] - temporal["s2_ydark"]
    peak = int(np.argmax(variance))
    # Saturation at the variance peak of the plain statistics (the package's own backward search
    # stops inside the flat region past the full well, at a level where the variance is ~0).
    for c in g.channels:
        assert c.saturation_reached and c.saturation_dn == pytest.approx(signal[peak], rel=0.002)
    reference = Results1288({"temporal": temporal, "spatial": {}}, index_u_ysat=peak, loglevel=logging.WARNING)
    assert g.gain_dn_per_e == pytest.approx(reference.K, rel=0.01)
    assert abs(g.gain_dn_per_e - cam.K) < 3 * g.gain_se  # and the simulator's own K
    assert g.saturation_e == pytest.approx(reference.u_e_sat, rel=0.015)
    assert g.snr_max == pytest.approx(reference.SNR_max, rel=0.01)
    # Release 4.0's threshold 1/2 + sqrt(1/4 + sigma_d^2), from the reference's dark noise and K
    # (the package itself still uses Release 3's sigma_d + 1/2).
    sigma_d = reference.sigma_y_dark / reference.K
    assert g.sensitivity_threshold_e == pytest.approx(0.5 + math.sqrt(0.25 + sigma_d**2), rel=0.03)
