"""Build progress and Ctrl-C: the monitor's answers, and a real SIGINT cancelling a build that
runs in a worker thread (a stand-in for TensorRT's build loop, which asks the monitor after
every step exactly as TensorRT does)."""

from __future__ import annotations

import io
import os
import signal
import sys
import time

import pytest

from edge_isp.contract.progress import BuildCancelled, BuildProgress, run_cancellable


def fake_build(progress: BuildProgress, steps: int = 400, delay_s: float = 0.005, stopped: list | None = None):
    """What TensorRT does with its monitor: phases of steps, stopping when a step returns False."""
    progress.phase_start("Building", None, 2)
    for outer in range(2):
        progress.phase_start("Tactics", "Building", steps)
        for step in range(steps):
            time.sleep(delay_s)
            if not progress.step_complete("Tactics", step):
                progress.phase_finish("Tactics")
                progress.phase_finish("Building")
                if stopped is not None:
                    stopped.append(step)
                return None  # TensorRT returns no engine when cancelled
        progress.phase_finish("Tactics")
        progress.step_complete("Building", outer)
    progress.phase_finish("Building")
    return b"PLAN"


class TestBuildProgress:
    def test_records_nested_phases(self):
        progress = BuildProgress(show=False)
        progress.phase_start("Building", None, 2)
        progress.phase_start("Tactics", "Building", 10)
        assert progress.step_complete("Tactics", 4)
        assert progress.phases["Tactics"] == [5, 10, "Building"]
        progress.phase_finish("Tactics")
        assert "Tactics" not in progress.phases and progress.finished == ["Tactics"]

    def test_cancel_makes_the_next_step_say_stop(self):
        progress = BuildProgress(show=False)
        progress.phase_start("p", None, 3)
        assert progress.step_complete("p", 0) is True
        progress.cancel()
        assert progress.step_complete("p", 1) is False
        assert progress.cancelled

    def test_draws_bars(self):
        stream = io.StringIO()
        progress = BuildProgress(show=True, stream=stream)
        assert fake_build(progress, steps=3, delay_s=0) == b"PLAN"
        progress.close()
        assert "Tactics" in stream.getvalue() and "Building" in stream.getvalue()


class TestRunCancellable:
    def test_returns_the_result(self):
        progress = BuildProgress(show=False)
        assert run_cancellable(lambda: fake_build(progress, steps=5, delay_s=0), progress) == b"PLAN"

    def test_reraises_the_builds_error(self):
        def failing():
            raise ValueError("parser error")

        with pytest.raises(ValueError, match=r"parser error"):
            run_cancellable(failing, BuildProgress(show=False))

    @pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to the own process")
    def test_ctrl_c_cancels_the_build_cleanly(self, capsys):
        # A real SIGINT, sent by the build itself at its 20th step (so it always lands while the
        # build runs, however loaded the machine), to a main thread with Python's own handler.
        progress = BuildProgress(show=False)
        stopped: list[int] = []
        sent: list[bool] = []
        steps = 2000

        class Interrupting:
            """The monitor TensorRT sees, sending Ctrl-C once, at step 20."""

            def __getattr__(self, name):
                return getattr(progress, name)

            def step_complete(self, phase, step):
                if step == 20 and not sent:
                    sent.append(True)
                    os.kill(os.getpid(), signal.SIGINT)
                return progress.step_complete(phase, step)

        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            with pytest.raises(BuildCancelled, match=r"cancelled"):
                run_cancellable(lambda: fake_build(Interrupting(), steps=steps, stopped=stopped), progress)
        finally:
            signal.signal(signal.SIGINT, previous)
        # The build stopped at a step after Ctrl-C, long before its end (2 x 2000 steps).
        assert stopped and 20 <= stopped[0] < steps
        assert "cancelling the build" in capsys.readouterr().err


def test_plain_lines_without_tqdm(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tqdm(name, *args, **kwargs):
        if name == "tqdm":
            raise ImportError("no tqdm")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    stream = io.StringIO()
    progress = BuildProgress(show=True, stream=stream)
    assert fake_build(progress, steps=2, delay_s=0) == b"PLAN"
    assert stream.getvalue().splitlines()[:2] == ["Building (2 steps)", "  Tactics (2 steps)"]
