"""Issue 21 P2 and P4: the class's grades file loses no student and is not nbgrader export's.

Every student of the gradebook or of ``submitted/`` has a row for every expected assignment,
an ungradable submission (not JSON, an empty folder) a 0 with the reason, then one ``TOTAL``
row per student, as the README says; ``nbgrader export`` (``grades.csv``) and our
``class_grades.csv`` never overwrite each other.
"""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grader.course.cli import main
from grader.course.grades import CSV_COLUMNS, GRADES_CSV
from tests.test_release_untouched import A, make_course

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """A tiny course: ada hands in the release, fay a file that is not JSON, gus an empty
    folder; graded with the CLI (unsandboxed: isolation is tested elsewhere)."""
    root = tmp_path_factory.mktemp("course")
    rel = make_course(root)
    for student in ("ada", "fay", "gus"):
        (root / "submitted" / student / A).mkdir(parents=True)
    shutil.copy(rel, root / "submitted" / "ada" / A / f"{A}.ipynb")
    (root / "submitted" / "fay" / A / f"{A}.ipynb").write_text("{ not json")
    code = main(["grade", "--course", str(root), "--no-progress", "--unsandboxed"])
    with open(root / GRADES_CSV) as fh:
        rows = list(csv.DictReader(fh))
    return root, code, rows


def test_every_student_in_submitted_has_a_row_and_a_reason(graded):
    _, code, rows = graded
    assert code == 1  # two submissions could not be graded
    by = {(r["student_id"], r["assignment"]): r for r in rows}
    assert sorted(by) == [(s, a) for s in ("ada", "fay", "gus") for a in (A, "TOTAL")]
    assert by["ada", A]["reason"] == "" and float(by["ada", A]["auto_max"]) == 2
    for student, why in (("fay", "not a readable notebook"), ("gus", "no notebook to grade")):
        row = by[student, A]
        assert row["submitted"] == "yes" and float(row["raw_score"]) == 0, row
        assert row["reason"].startswith("invalid: ") and why in row["reason"], row
        assert float(by[student, "TOTAL"]["max_score"]) == float(by["ada", "TOTAL"]["max_score"])


def test_csv_matches_the_readme(graded):
    """The README names the file, says one row per student and assignment then a TOTAL row,
    and names the reason column; the header is CSV_COLUMNS."""
    root, _, rows = graded
    text = " ".join(README.read_text().split())
    assert f"`{GRADES_CSV}` (one row per student and assignment, then a `TOTAL` row" in text
    assert "`reason`" in text
    assert list(rows[0]) == CSV_COLUMNS
    students = {r["student_id"] for r in rows}
    assert [r["assignment"] for r in rows].count("TOTAL") == len(students)
    assert re.search(r"`grades\.csv`[^.]*nbgrader export", text) or \
        re.search(r"nbgrader export[^.]*`grades\.csv`", text)


def test_nbgrader_export_and_our_csv_never_overwrite_each_other(graded):
    root, _, _ = graded
    ours = (root / GRADES_CSV).read_bytes()
    exe = Path(sys.executable).parent / "nbgrader"
    proc = subprocess.run([str(exe), "export"], cwd=root, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (root / GRADES_CSV).read_bytes() == ours
    theirs = (root / "grades.csv").read_bytes()
    assert b"student_id" in theirs and theirs != ours
    assert main(["report", "--course", str(root)]) == 0  # and our commands leave theirs alone
    assert main(["grade", "--course", str(root), "--no-progress", "--unsandboxed"]) == 1
    assert (root / "grades.csv").read_bytes() == theirs
