"""The fuzz tests count the requests they send; the total is printed at the end of the run."""

from __future__ import annotations

import collections

import pytest

SENT: collections.Counter = collections.Counter()


@pytest.fixture
def sent() -> collections.Counter:
    """Requests sent per fuzz target."""
    return SENT


def pytest_terminal_summary(terminalreporter) -> None:
    """One line with the number of generated requests, when the fuzz tests ran."""
    if SENT:
        parts = ", ".join(f"{name} {n}" for name, n in sorted(SENT.items()))
        terminalreporter.write_line(f"fuzz: {sum(SENT.values())} generated requests sent ({parts})")
