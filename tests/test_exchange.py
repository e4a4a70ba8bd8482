"""Issue 21 P5: nbgrader's exchange, end to end, as two unprivileged users on one machine.

An instructor (the isolation tests' user, with its clone and venv in its 0700 home) and a
student (a second user with only nbgrader in a venv of its own) share an exchange folder in a
temporary directory, and run what the README's instructor section shows: release_assignment →
fetch_assignment → the student's work → submit → collect → ``grader grade`` → ``grader
feedback`` → release_feedback → fetch_feedback. The student ends with its own feedback page,
with the score the gradebook holds. Needs root on Linux (it creates the users); skipped with
a message otherwise.
"""

from __future__ import annotations

import csv
import importlib.metadata
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from grader.engine.configuration import COURSE_ID

from .conftest import ROOT
from .test_classgrade import GOOD, A
from .test_isolation import USER, _run_as, as_root, ensure_user, system_python, user_clone

__all__ = ["user_clone"]  # the fixture, used below
STUDENT = "dlgrade-student"
#: what the README shows, in this order (the assignment's name aside)
STEPS = ["nbgrader release_assignment", "nbgrader fetch_assignment", "nbgrader submit",
         "nbgrader collect", "python -m grader grade", "python -m grader feedback",
         "nbgrader release_feedback", "nbgrader fetch_feedback"]


@pytest.fixture(scope="module")
def student():
    """The student: its own 0700 home and a venv with nothing but nbgrader (reused while the
    version is the same)."""
    home = ensure_user(STUDENT)
    version = importlib.metadata.version("nbgrader")
    venv = home / "nbgrader-venv"
    if (venv / "stamp").is_file() and (venv / "stamp").read_text() == version:
        return home
    made = _run_as(STUDENT, f"rm -rf {venv} && {system_python()} -m venv {venv} && "
                   f"{venv}/bin/pip install -q nbgrader=={version} && echo -n {version} > "
                   f"{venv}/stamp", cwd=str(home))
    if made.returncode != 0:
        pytest.skip(f"cannot install nbgrader as {STUDENT}: {made.stderr[-500:]}")
    return home


def _ok(res) -> str:
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    return out


@as_root
def test_the_exchange_loop_as_two_users(user_clone, student, tmp_path):
    exchange = Path(tempfile.mkdtemp(prefix="dlgrade-exchange-"))
    os.chmod(exchange, 0o1777)  # as /tmp: everyone may create, nobody may delete others'
    shared = Path(tempfile.mkdtemp(prefix="dlgrade-work-"))
    os.chmod(shared, 0o755)
    try:
        _loop(user_clone, student, exchange, shared)
    finally:
        shutil.rmtree(exchange, ignore_errors=True)
        shutil.rmtree(shared, ignore_errors=True)


def _loop(repo: Path, home: Path, exchange: Path, shared: Path) -> None:
    course = repo.parent / "exchange-course"
    ex = f"--Exchange.root={exchange}"
    teacher_nbgrader = f"{repo}/.venv/bin/nbgrader"
    grader = f"{repo}/.venv/bin/python -m grader"
    student_nbgrader = f"{home}/nbgrader-venv/bin/nbgrader"

    def teacher(cmd: str):
        return _ok(_run_as(USER, cmd, cwd=str(course)))

    def pupil(cmd: str):
        return _ok(_run_as(STUDENT, cmd, cwd=str(home)))

    make = ("from tests.test_classgrade import SOURCE, A; from pathlib import Path; "
            "from grader.course.authoring import save; "
            "from grader.engine.configuration import write_course_config; "
            f"c = Path({str(course)!r}); write_course_config(c); "
            "save(SOURCE, c / 'solutions' / A / f'{A}.ipynb')")
    _ok(_run_as(USER, f"rm -rf {course} && .venv/bin/python -c \"{make}\"", cwd=str(repo)))
    teacher(f"{teacher_nbgrader} generate_assignment {A}")
    teacher(f"{teacher_nbgrader} release_assignment {A} {ex}")
    pupil(f"rm -rf {A} .local/share/jupyter/nbgrader_cache && "
          f"{student_nbgrader} fetch_assignment {A} --course {COURSE_ID} {ex}")
    work = shared / "work.py"  # the student's work: every answer cell filled in
    work.write_text(
        "import json, nbformat, sys\n"
        f"answers = json.loads({json.dumps(json.dumps(GOOD))})\n"
        f"path = '{A}/{A}.ipynb'\n"
        "nb = nbformat.read(path, as_version=4)\n"
        "for cell in nb.cells:\n"
        "    gid = cell.metadata.get('nbgrader', {}).get('grade_id')\n"
        "    if gid in answers and cell.metadata['nbgrader'].get('solution'):\n"
        "        cell.source = answers[gid]\n"
        "nbformat.write(nb, path)\n")
    os.chmod(work, 0o644)
    pupil(f"{home}/nbgrader-venv/bin/python {work}")
    pupil(f"{student_nbgrader} submit {A} --course {COURSE_ID} {ex}")
    teacher(f"{teacher_nbgrader} collect {A} {ex}")
    submitted = course / "submitted" / STUDENT / A
    assert (submitted / f"{A}.ipynb").is_file() and (submitted / "timestamp.txt").is_file()
    graded = teacher(f"{grader} grade {A} --no-progress")
    assert "graded 1," in graded and "UNSANDBOXED" not in graded, graded[-3000:]
    assert "flagged" not in graded, graded[-3000:]  # nbgrader's files are not the student's
    with open(course / "class_grades.csv") as fh:
        (row,) = [r for r in csv.DictReader(fh) if r["assignment"] == A]
    assert row["student_id"] == STUDENT and float(row["auto_score"]) == float(row["auto_max"]) > 0
    teacher(f"{grader} feedback {A}")
    teacher(f"{teacher_nbgrader} release_feedback {A} {ex}")
    pupil(f"{student_nbgrader} fetch_feedback {A} --course {COURSE_ID} {ex}")
    (page,) = (home / A / "feedback").glob(f"*/{A}.html")
    text = page.read_text()
    ours = (course / "feedback" / STUDENT / A / f"{A}.html").read_text()
    assert text == ours  # the page `grader feedback` wrote, in the student's hands
    assert STUDENT in text and "BEGIN HIDDEN TESTS" not in text


def test_the_readme_shows_the_exchange_loop():
    text = (ROOT / "README.md").read_text()
    start = text.index("**Through nbgrader's exchange**")
    block = text[start:text.index("\n- **", start + 10)]
    found = [m.start() for step in STEPS for m in [re.search(re.escape(step) + r"\b", block)]
             if m]
    assert len(found) == len(STEPS) and found == sorted(found), block
    assert "tests/test_exchange.py" in block
