"""Grades read from the gradebook: auto and manual apart, awaiting grading, the CSV, the table.

:func:`fabricate_course` builds a graded course cheaply (a gradebook written with nbgrader's
API and autograded notebooks written with nbformat, no kernel run), for this file and for
tests/test_feedback.py, tests/test_classreport.py and tests/test_cli.py.
"""

from __future__ import annotations

import csv
import functools
import shutil
import tempfile
from pathlib import Path

import nbformat
import numpy as np
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from grader.course.grades import export_grades_csv, grade_table, read_gradebook
from grader.engine.configuration import COURSE_ID, ensure_environment_on_path, write_course_config
from grader.engine.nbgrader_api import GradeResult

#: test cells of every fabricated assignment: (grade_id, points, first comment line, cause)
TESTS = [
    ("test_shape", 1.0, "returns one number per example", None),
    ("test_gradient", 2.0, "compare with finite differences", "the gradient is not divided by "
     "the batch size n"),
    ("test_values", 2.0, None, None),  # no comment: named from its grade id
]
ANSWERS = [("written_why", 1.0), ("written_how", 2.0)]
HIDDEN_SECRET = "_secret_hidden_reference = 12345"


def _nbgrader(grade_id: str, points: float | None, solution: bool) -> dict:
    meta = {"grade": points is not None, "grade_id": grade_id, "locked": not solution,
            "schema_version": 3, "solution": solution}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def _test_cell(grade_id: str, comment: str | None, failing: tuple[str, str] | None):
    src = ([f"# {comment}"] if comment else []) + [
        "assert_close(f(1.0), 2.0, 'f(1)')",
        "# More tests of this cell are hidden; they run when your notebook is graded.",
        "### BEGIN HIDDEN TESTS", HIDDEN_SECRET, "### END HIDDEN TESTS"]
    cell = new_code_cell("\n".join(src), metadata=_nbgrader(grade_id, 1.0, False))
    if failing:
        ename, evalue = failing
        cell.outputs = [new_output("error", ename=ename, evalue=evalue,
                                   traceback=["\x1b[31mTraceback\x1b[0m", HIDDEN_SECRET,
                                              f"{ename}: {evalue}"])]
    return cell


def failure(grade_id: str, cause: str | None, student: str) -> tuple[str, str]:
    """The error a failing test cell shows in the fabricated class."""
    if cause:
        return "AssertionError", (f"{grade_id} differs from the expected value for {student} "
                                  f"in a message long enough to need wrapping " * 3
                                  + f"\nlikely cause: {cause}")
    return "AssertionError", f"{grade_id}: got 0.5, expected 1.0"


@functools.cache
def _empty_gradebook() -> Path:
    """An empty gradebook made once per session (nbgrader runs `alembic` for a new one: slow)."""
    from nbgrader.api import Gradebook

    ensure_environment_on_path()  # nbgrader runs `alembic` from PATH
    path = Path(tempfile.mkdtemp(prefix="gradebook-")) / "gradebook.db"
    Gradebook(f"sqlite:///{path}", COURSE_ID).close()
    return path


def fabricate_course(root: Path, students: list[str], assignments: list[str], *,
                     seed: int = 0, missing: dict[str, str] | None = None,
                     graded_answers: dict[tuple[str, str], float] | None = None) -> dict:
    """A graded course at ``root``; return ``{(student, assignment): {grade_id: score}}``.

    Each student fails each test with probability 0.4 (``seed``); ``missing`` maps a student
    to an assignment they did not hand in; ``graded_answers`` maps (student, answer id) to a
    manual score (the other written answers await grading).
    """
    from nbgrader.api import Gradebook

    rng = np.random.default_rng(seed)
    missing, graded_answers = missing or {}, graded_answers or {}
    write_course_config(root)
    shutil.copy(_empty_gradebook(), root / "gradebook.db")
    truth: dict = {}
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", COURSE_ID) as gb:
        for a in assignments:
            gb.update_or_create_assignment(a)
            gb.update_or_create_notebook(a, a)
            for gid, points, _, _ in TESTS:
                gb.update_or_create_grade_cell(gid, a, a, max_score=points, cell_type="code")
            for gid, points in ANSWERS:
                gb.update_or_create_grade_cell(gid, a, a, max_score=points,
                                               cell_type="markdown")
                gb.update_or_create_solution_cell(gid, a, a)
        for s in students:
            gb.update_or_create_student(s)
            for a in assignments:
                if missing.get(s) == a:
                    continue
                gb.add_submission(a, s)
                scores, cells = {}, [new_markdown_cell("# Exercise\nFit $y = w x + b$ with "
                                                       "$$L = \\frac{1}{n}\\sum_i r_i^2$$")]
                for gid, points, comment, cause in TESTS:
                    fails = bool(rng.random() < 0.4)
                    scores[gid] = 0.0 if fails else points
                    grade = gb.find_grade(gid, a, a, s)
                    grade.auto_score, grade.needs_manual_grade = scores[gid], False
                    cells.append(_test_cell(gid, comment,
                                            failure(gid, cause, s) if fails else None))
                for gid, _ in ANSWERS:
                    grade = gb.find_grade(gid, a, a, s)
                    grade.needs_manual_grade = True
                    if (s, gid) in graded_answers:
                        grade.manual_score = graded_answers[(s, gid)]
                        grade.needs_manual_grade = False
                        gb.find_comment(gid, a, a, s).manual_comment = f"Well argued, {s}."
                    cells.append(new_markdown_cell(f"My answer to {gid}: $\\eta < 2/\\lambda$",
                                                   metadata=_nbgrader(gid, 1.0, True)))
                gb.db.commit()
                truth[(s, a)] = scores
                path = root / "autograded" / s / a / f"{a}.ipynb"
                path.parent.mkdir(parents=True, exist_ok=True)
                nbformat.write(new_notebook(cells=cells), path)
    return truth


AUTO_MAX = sum(p for _, p, _, _ in TESTS)
MANUAL_MAX = sum(p for _, p in ANSWERS)


def test_gradebook_keeps_auto_and_manual_apart_and_ungraded_answers_unscored(tmp_path):
    truth = fabricate_course(tmp_path, ["ada", "ben"], ["01_a"],
                             graded_answers={("ada", "written_how"): 1.5})
    grades = read_gradebook(tmp_path)
    assert grades.maxima == {"01_a": (AUTO_MAX, MANUAL_MAX)}
    ada = grades.submissions[("ada", "01_a")]
    assert ada.auto == (sum(truth[("ada", "01_a")].values()), AUTO_MAX)
    assert ada.manual == (1.5, MANUAL_MAX)
    assert ada.awaiting == 1
    waiting = [c for c in ada.cells if c.score is None]
    assert [c.name for c in waiting] == ["written_why"]  # not 0: awaiting grading
    assert grades.submissions[("ben", "01_a")].awaiting == len(ANSWERS)


def test_grades_csv_sorted_filled_and_totals_over_expected_assignments(tmp_path):
    students = ["zoe", "ada", "mia"]
    truth = fabricate_course(tmp_path, students, ["01_a", "02_b"], missing={"mia": "02_b"})
    rows = list(csv.DictReader(export_grades_csv(tmp_path, tmp_path / "g.csv").open()))
    assert [(r["student_id"], r["assignment"]) for r in rows] == \
        [(s, a) for s in sorted(students) for a in ("01_a", "02_b", "TOTAL")]
    assert all(v != "" for r in rows for k, v in r.items() if k not in ("reason", "timestamp"))
    mia = {r["assignment"]: r for r in rows if r["student_id"] == "mia"}
    assert mia["02_b"]["submitted"] == "no" and mia["02_b"]["reason"] == "not submitted"
    assert mia["01_a"]["reason"] == "" and mia["01_a"]["timestamp"] != ""
    # the missing assignment still counts in the maximum: same max as everyone else
    totals = [r for r in rows if r["assignment"] == "TOTAL"]
    assert {float(r["max_score"]) for r in totals} == {2 * (AUTO_MAX + MANUAL_MAX)}
    assert float(mia["TOTAL"]["raw_score"]) == sum(truth[("mia", "01_a")].values())
    assert mia["TOTAL"]["submitted"] == "1 of 2"
    assert float(mia["01_a"]["raw_score"]) == float(mia["01_a"]["auto_score"])
    assert {r["manual_awaiting"] for r in rows if r["assignment"] == "01_a"} == {"2"}
    assert mia["TOTAL"]["manual_awaiting"] == "2"


def test_grade_table_total_out_of_every_expected_assignment():
    results = [GradeResult("ada", "01_a", True, cells={"t": (3.0, 4.0)}),
               GradeResult("ada", "02_b", True, cells={"t": (5.0, 6.0)}),
               GradeResult("ben", "01_a", True, cells={"t": (4.0, 4.0)})]
    table = grade_table(results, ["01_a", "02_b"])
    ben = next(line for line in table.splitlines() if line.startswith("ben"))
    assert ben.split() == ["ben", "4/4", "-", "4/10", "(40%)"]
