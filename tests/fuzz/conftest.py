"""The fuzz suite's summary line: how many distinct inputs its tests tried, per parser."""

from __future__ import annotations

from tests.fuzz.tally import TRIED


def pytest_terminal_summary(terminalreporter) -> None:
    if not TRIED:
        return
    total = sum(len(v) for v in TRIED.values())
    parts = ", ".join(f"{name} {len(seen)}" for name, seen in sorted(TRIED.items()))
    terminalreporter.write_line(f"fuzz: {total} distinct inputs across {len(TRIED)} parsers ({parts})")
