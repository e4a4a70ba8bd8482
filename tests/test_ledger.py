"""The ledger orders the next run: the submissions that took longest go first, so the last jobs
of a run, which leave workers idle while they finish, are short ones."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import nbformat

from grader.course.authoring import save
from grader.course.submissions import fill
from grader.engine import backends
from grader.engine.configuration import write_course_config
from grader.engine.coordinator import ClassGrader
from grader.engine.job import Limits
from grader.engine.ledger import LEDGER_DIR, ledger_path, longest_first

from .test_canary_cache import _with_backend
from .test_classgrade import GOOD, SOURCE

A = "00_order"
LIMITS = Limits(cell_timeout=10.0, notebook_timeout=60.0, memory_mb=1024, job_mb=64)


def _record(course: Path, student: str, assignment: str, seconds) -> None:
    path = course / LEDGER_DIR / student / f"{assignment}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"fingerprint": "x", "seconds": seconds}))


def test_longest_first_by_assignment_mean_then_by_submission(tmp_path):
    grader = SimpleNamespace(course=tmp_path)
    for student, seconds in [("ada", 2.0), ("ben", 9.0), ("cleo", 4.0)]:
        _record(tmp_path, student, "01", seconds)
    for student, seconds in [("ada", 10.0), ("ben", 6.0)]:  # cleo: never graded
        _record(tmp_path, student, "02", seconds)
    pairs = [(a, s) for a in ("01", "02") for s in ("ada", "ben", "cleo")]
    assert longest_first(grader, pairs) == [
        ("02", "cleo"), ("02", "ada"), ("02", "ben"),  # mean 8 s; the unknown one first
        ("01", "ben"), ("01", "cleo"), ("01", "ada")]  # mean 5 s
    # an assignment never graded goes first of all; one without history keeps its order
    assert longest_first(grader, [("01", "ada"), ("03", "ben"), ("03", "ada")]) == [
        ("03", "ben"), ("03", "ada"), ("01", "ada")]


def test_unusable_records_count_as_never_graded(tmp_path):
    grader = SimpleNamespace(course=tmp_path)
    _record(tmp_path, "ada", "01", 1.0)
    for student, seconds in [("ben", "9"), ("cleo", -3.0), ("dev", True), ("eve", None)]:
        _record(tmp_path, student, "01", seconds)
    ledger_path(grader, "fay", "01").parent.mkdir(parents=True)
    ledger_path(grader, "fay", "01").write_text("{not json")
    ledger_path(grader, "gus", "01").parent.mkdir(parents=True)
    ledger_path(grader, "gus", "01").write_text("[1, 2]")
    students = ["ada", "ben", "cleo", "dev", "eve", "fay", "gus", "hal"]
    order = longest_first(grader, [("01", s) for s in students])
    assert order == [("01", s) for s in students[1:] + ["ada"]]


def test_a_regrade_runs_the_slowest_submission_first(tmp_path, monkeypatch):
    course = tmp_path / "course"
    write_course_config(course)
    save(SOURCE, course / "solutions" / A / f"{A}.ipynb")
    ClassGrader(course, workers=0, limits=LIMITS, progress=False).ensure_assignment(A)
    release = nbformat.read(course / "notebooks" / A / f"{A}.ipynb", as_version=4)
    slow = dict(GOOD, double="import time\ntime.sleep(1.0)\n\n" + GOOD["double"])
    for student, answers in [("ada", GOOD), ("ben", GOOD), ("zed", slow)]:
        sub = course / "submitted" / student / A
        sub.mkdir(parents=True)
        nbformat.write(fill(release, answers), sub / f"{A}.ipynb")
    submitted = []

    class Recording(backends.InlineBackend):
        def submit(self, job, worker=None):
            if not job.key.startswith("canary/"):
                submitted.append(job.key.split("/")[0])
            return super().submit(job)

    monkeypatch.setattr(ClassGrader, "__init__", _with_backend(Recording()))
    for _ in range(2):
        outcomes = ClassGrader(course, workers=0, limits=LIMITS, progress=False,
                               force=True).grade([A])
        assert [o.status for o in outcomes] == ["graded"] * 3, outcomes
    seconds = {s: json.loads(ledger_path(SimpleNamespace(course=course), s, A).read_text())
               ["seconds"] for s in ("ada", "ben", "zed")}
    assert seconds["zed"] > seconds["ada"] + 0.5 and seconds["zed"] > seconds["ben"] + 0.5
    assert submitted[:3] == ["ada", "ben", "zed"]  # never graded: the given order
    assert submitted[3] == "zed"  # then the slowest first
