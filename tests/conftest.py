"""Settings for the whole test run: the hypothesis profiles of the fuzz suite (tests/fuzz).

``ci`` (the default) is derandomized: the same examples every run, so a failure reproduces
and CI is deterministic. ``thorough`` (``HYPOTHESIS_PROFILE=thorough``) tries ten times as
many, randomly, for hunting rather than for CI.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,  # 2 shared cores: an example's time says nothing
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    "database": None,
    "print_blob": True,
}
settings.register_profile("ci", derandomize=True, max_examples=25, **_COMMON)
settings.register_profile("thorough", max_examples=250, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
