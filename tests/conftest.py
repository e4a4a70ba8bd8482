"""Shared fixtures; reports printed at the end of the run (mutant tables)."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.course.release import available_assignments

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENTS = available_assignments(ROOT)

_REPORTS: list[str] = []


def add_report(text: str) -> None:
    """Queue ``text`` for the terminal summary (shown even when output is captured)."""
    _REPORTS.append(text)


def pytest_terminal_summary(terminalreporter):
    if _REPORTS:
        terminalreporter.section("tests mean something: mutants caught")
        for text in _REPORTS:
            terminalreporter.write_line(text)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(1234)
