"""Shared fixtures; reports printed at the end of the run (mutant tables)."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.course.release import available_assignments

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENTS = available_assignments(ROOT)
#: Bugs written blind, from each release notebook's text alone (tests/test_blind_bugs.py).
BLIND_BUGS = ROOT / "tests" / "blind_bugs"

#: How many blind bugs per notebook CI grades (each is a whole notebook to grade).
BLIND_SAMPLE = 24

_SUITES: dict = {}


def blind_sample(bugs: list, size: int = BLIND_SAMPLE) -> list:
    """``size`` bugs taken round-robin over their targets in file order (the first bug of each
    function, then the second, …): a rule fixed before any was graded, so the sample covers every
    function and nobody picks the bugs that happen to be diagnosed well."""
    by_target: dict[str, list] = {}
    for bug in bugs:
        by_target.setdefault(bug.find, []).append(bug)
    picked, depth = [], 0
    while len(picked) < min(size, len(bugs)):
        for group in by_target.values():
            if depth < len(group) and len(picked) < size:
                picked.append(group[depth])
        depth += 1
    return picked


def graded_suite(assignment: str):
    """Solution, stubs, declared mutants, alternatives and the blind bugs of ``assignment``,
    graded in one class-grading run and shared by the tests that read it (test_mutants,
    test_blind_bugs)."""
    if assignment not in _SUITES:
        from grader.course.mutants import evaluate
        from grader.course.submissions import load_definition_bugs

        corpus = BLIND_BUGS / f"{assignment}.toml"
        extra = (lambda answers: blind_sample(load_definition_bugs(corpus, answers))) \
            if corpus.exists() else None
        _SUITES[assignment] = evaluate(ROOT, assignment, extra=extra)
    return _SUITES[assignment]

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
