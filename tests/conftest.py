"""Shared fixtures; reports printed at the end of the run (mutant tables).

``gates_class``: the gates that only *read* grades of made-up submissions (the mutants, the
do-nothing answers, code pasted from a later notebook) share one graded class. Each such test
module says what it hands in with ``gate_submissions(assignment) -> {student: notebook}``; the
fixture collects them from every module that this run will test, and grades them all in one
run of the kit's class grader (each assignment's known-answer canaries paid once, both workers
busy to the end). A name two gates both hand in must be the same notebook (the untouched stubs).
"""

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


@pytest.fixture(scope="session")
def gates_class(request):
    """A :class:`grader.course.trial.Trial`: every ``gate_submissions`` of the modules whose
    tests use this fixture in this run, graded together."""
    from grader.course.trial import grade_trial

    modules = {item.module for item in request.session.items
               if "gates_class" in getattr(item, "fixturenames", ())}
    submissions: dict[str, dict] = {}
    for module in sorted(modules, key=lambda m: m.__name__):
        for assignment in ASSIGNMENTS:
            for student, nb in module.gate_submissions(assignment).items():
                by_student = submissions.setdefault(assignment, {})
                if by_student.setdefault(student, nb) != nb:
                    raise ValueError(f"{module.__name__} hands in another {student!r} for "
                                     f"{assignment}")
    return grade_trial(ROOT, submissions)


@pytest.fixture(scope="session")
def validate_release():
    """``validate_release(assignment)``: nbgrader's Validate (the student's button, not inverted)
    on the untouched release notebook, run once per assignment and session."""
    from grader.course.release import release_notebook
    from grader.engine.configuration import ensure_environment_on_path

    results: dict[str, dict] = {}

    def validate(assignment: str) -> dict:
        if assignment not in results:
            from nbgrader.validator import Validator

            ensure_environment_on_path()
            results[assignment] = Validator().validate(str(release_notebook(ROOT, assignment)))
        return results[assignment]

    return validate


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(1234)
