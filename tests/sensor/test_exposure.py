"""The exposure both raw simulators take (the torch simulator and the runtime's numpy synthesis):
auto gain, digital gain, refusals, and the Tukey-lambda scale against scipy."""

from __future__ import annotations

import pytest
from scipy import stats

from edge_isp.errors import InvalidInputError
from edge_isp.sensor.exposure import choose_exposure, tukey_lambda_std
from edge_isp.sensor.profile import SensorProfile

NEXUS = SensorProfile.load("nexus6p-rear")


def test_auto_gain_puts_white_at_full_scale():
    exposure = choose_exposure(NEXUS, 500.0)
    k = NEXUS.noise_at(exposure.analogue_gain).gain_dn_per_e
    assert 500.0 * k == pytest.approx(NEXUS.range_dn, rel=1e-9)
    assert exposure.digital_gain == pytest.approx(1.0) and exposure.electrons_at_white == 500.0
    dark = choose_exposure(NEXUS, 2.0)  # gain capped: the digital gain does the rest
    assert dark.analogue_gain == NEXUS.max_analogue_gain
    assert dark.digital_gain == pytest.approx(NEXUS.range_dn / (2.0 * NEXUS.noise_at(64.0).gain_dn_per_e))


def test_an_explicit_gain_keeps_white_at_one_through_the_digital_gain():
    exposure = choose_exposure(NEXUS, 50.0, 4.0)
    assert exposure.analogue_gain == 4.0
    assert exposure.digital_gain * 50.0 * NEXUS.noise_at(4.0).gain_dn_per_e == pytest.approx(NEXUS.range_dn)


def test_refuses_bad_gain_and_light():
    with pytest.raises(InvalidInputError, match="max_analogue_gain"):
        choose_exposure(NEXUS, 10.0, 1000.0)
    with pytest.raises(InvalidInputError, match="'auto' or a number"):
        choose_exposure(NEXUS, 10.0, "max")
    with pytest.raises(InvalidInputError, match="electrons_at_white"):
        choose_exposure(NEXUS, -1.0)


@pytest.mark.parametrize("lam", [-0.3, 0.0, 0.14, 0.5, 1.0])
def test_tukey_lambda_std_is_scipys(lam):
    assert tukey_lambda_std(lam) == pytest.approx(stats.tukeylambda(lam).std(), rel=1e-6)
