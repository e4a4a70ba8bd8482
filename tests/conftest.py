"""Shared fixtures; reports printed at the end of the run (mutant tables).

``gates_class``: the gates that only *read* grades of made-up submissions (the mutants, the
do-nothing answers, code pasted from a later notebook) share one graded class. Each such test
module says what it hands in with ``gate_submissions(assignment) -> {student: notebook}``; the
fixture collects them from every module that this run will test, and grades them all in one
run of the kit's class grader (each assignment's known-answer canaries paid once, both workers
busy to the end). A name two gates both hand in must be the same notebook (the untouched stubs).

Under pytest-xdist (``-n auto --dist loadgroup``, the default in ``pyproject.toml``) the tests run
on one worker per core, a whole group at a time: each module is a group (its module fixtures are
built once), the gates modules are one group (``gates_class`` is graded once), and the modules
that work in the ordinary user's clone (``tests.test_isolation.user_clone``) are one group.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
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


#: Modules that share the ordinary user's clone and venv (one at a time).
AS_A_USER = {"test_isolation", "test_exchange", "test_cgroup_delegation"}

#: Where reports wait for the terminal summary: a folder, since under xdist they are written by
#: the workers and printed by the controller (which makes it before the workers start).
_REPORTS = "DLGRADE_TEST_REPORTS"


def pytest_configure(config):
    if not hasattr(config, "workerinput"):  # the controller, or a run without xdist
        os.environ[_REPORTS] = tempfile.mkdtemp(prefix="dlgrade-test-reports-")


def pytest_unconfigure(config):
    if not hasattr(config, "workerinput"):
        shutil.rmtree(os.environ.pop(_REPORTS, ""), ignore_errors=True)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups into the test ids
def pytest_collection_modifyitems(config, items):
    """Put every test in its xdist group (see the module's docstring)."""
    gates = {item.module.__name__ for item in items
             if "gates_class" in getattr(item, "fixturenames", ())}
    for item in items:
        module = getattr(item, "module", None)
        name = module.__name__.rpartition(".")[2] if module else item.nodeid.split("::")[0]
        if module is not None and module.__name__ in gates:
            name = "gates"
        elif name in AS_A_USER:
            name = "as-a-user"
        item.add_marker(pytest.mark.xdist_group(name))


def pytest_collection_finish(session):
    """Refuse to run when xdist ignores the groups (gates_class would be graded per worker)."""
    config = session.config
    if hasattr(config, "workerinput") and config.getvalue("loadgroup") and session.items \
            and not any("@" in item.nodeid for item in session.items):
        raise pytest.UsageError(
            "pytest-xdist's --dist loadgroup does not group on this pytest (each worker would "
            "grade the gates class; pytest-dev/pytest-xdist#1386): install 'pytest<9.2' (as "
            "pyproject.toml asks), or run serially with -n0")


def add_report(text: str) -> None:
    """Queue ``text`` for the terminal summary (shown even when output is captured)."""
    folder = Path(os.environ[_REPORTS])
    (folder / f"{time.time_ns():020d}-{os.getpid()}.txt").write_text(text)


def pytest_terminal_summary(terminalreporter):
    folder = os.environ.get(_REPORTS)
    reports = sorted(Path(folder).glob("*.txt")) if folder else []
    if reports:
        terminalreporter.section("tests mean something: mutants caught")
        for path in reports:
            terminalreporter.write_line(path.read_text())


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def gates_class(request):
    """A :class:`grader.course.trial.Trial`: every ``gate_submissions`` of the modules whose
    tests use this fixture in this run, graded together."""
    from grader.course.submissions import without_trailing_experiments
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
    for by_student in submissions.values():
        bugs = sorted(s for s in by_student if s.startswith(("mutant-", "blind-")))
        twin = {f"{UNTRIMMED}{bugs[0]}": by_student[bugs[0]]} if bugs else {}
        by_student.update({s: without_trailing_experiments(nb) for s, nb in by_student.items()})
        by_student.update(twin)
    trial = grade_trial(ROOT, submissions)
    add_report(gates_cost(trial.results))
    return trial


def gates_cost(results: dict) -> str:
    """Where the gates' time goes (``results``: the class grader's outcomes): per assignment,
    the notebooks and the seconds their workers spent (fork to reap), and the slowest ones."""
    lines = ["gates_class: worker seconds per assignment (fork to reap; cells alone)"]
    for a in ASSIGNMENTS:
        mine = [o for (b, _), o in results.items() if b == a]
        lines.append(f"  {a:24s} {len(mine):3d} notebooks "
                     f"{sum(o.worker_seconds for o in mine):7.1f} s "
                     f"({sum(o.cell_seconds for o in mine):.1f} s)")
    slow = sorted(results.items(), key=lambda kv: -kv[1].worker_seconds)[:10]
    lines += [f"  slowest: {a} {s} {o.worker_seconds:.1f} s" for (a, s), o in slow]
    return "\n".join(lines)


#: The one submission per assignment that ``gates_class`` hands in whole, beside its trimmed
#: twin (``test_mutants.test_trimming_changes_no_grade`` compares the two).
UNTRIMMED = "untrimmed-"


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
