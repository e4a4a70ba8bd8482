"""Grades as the instructor sees them: read from nbgrader's gradebook, as a table and a CSV.

Autograded tests and written (manual) answers are kept apart. A written answer nobody has
graded yet is *awaiting grading* (``score is None``), never 0. Totals run over the assignments
each student was expected to submit (every assignment of the gradebook): a missing one counts
0 out of its full points, so every student's total is out of the same maximum.

The CSV (:data:`GRADES_CSV`, its own name so that ``nbgrader export``'s ``grades.csv`` and it
never overwrite each other) has a row for every student known to the gradebook or present in
``submitted/`` and every expected assignment, the reason in ``reason`` when a row is not a
grade (not submitted, ungradable, not graded yet), then one ``TOTAL`` row per student.
"""

from __future__ import annotations

import csv
import glob
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from grader.engine.nbgrader_api import GradeResult


@dataclass
class CellGrade:
    """One grade cell of one submitted notebook."""

    notebook: str
    name: str
    auto: bool  # an autograded test (code) rather than a written answer (manual)
    score: float | None  # None: a written answer awaiting grading
    max_score: float


@dataclass
class Submission:
    """One student's assignment as the gradebook holds it."""

    student: str
    assignment: str
    timestamp: str
    cells: list[CellGrade] = field(default_factory=list)
    comments: dict[tuple[str, str], str] = field(default_factory=dict)  # (nb, cell) -> text

    def _sum(self, auto: bool) -> tuple[float, float]:
        cells = [c for c in self.cells if c.auto == auto]
        return sum(c.score or 0.0 for c in cells), sum(c.max_score for c in cells)

    @property
    def auto(self) -> tuple[float, float]:
        """(points, max) over the autograded tests."""
        return self._sum(True)

    @property
    def manual(self) -> tuple[float, float]:
        """(points graded so far, max) over the written answers."""
        return self._sum(False)

    @property
    def awaiting(self) -> int:
        """How many written answers await grading."""
        return sum(1 for c in self.cells if c.score is None)


@dataclass
class CourseGrades:
    """Every assignment, student and submission of a gradebook."""

    assignments: list[str]
    students: list[str]
    maxima: dict[str, tuple[float, float]]  # assignment -> (auto max, manual max)
    submissions: dict[tuple[str, str], Submission]  # (student, assignment) -> submission
    handed_in: set[tuple[str, str]] = field(default_factory=set)  # submitted/<s>/<a>/ exists

    @property
    def class_list(self) -> list[str]:
        """Every student: the gradebook's, and whoever has a folder in ``submitted/`` for an
        assignment of the gradebook (graded or not)."""
        return sorted(set(self.students) | {s for s, a in self.handed_in if a in self.maxima})


def _submitted_notebooks(query):
    """``query`` joined from each submission to its assignment and its notebooks."""
    from nbgrader import api as nb

    return (query
            .join(nb.Assignment, nb.Assignment.id == nb.SubmittedAssignment.assignment_id)
            .join(nb.SubmittedNotebook,
                  nb.SubmittedNotebook.assignment_id == nb.SubmittedAssignment.id)
            .join(nb.Notebook, nb.Notebook.id == nb.SubmittedNotebook.notebook_id))


def read_gradebook(course: str | Path) -> CourseGrades:
    """Read every grade of the course at ``course`` in one query."""
    from nbgrader import api as nb
    from nbgrader.coursedir import CourseDirectory

    from grader.engine.configuration import make_config

    coursedir = CourseDirectory(config=make_config(course))
    with nb.Gradebook(coursedir.db_url, coursedir.course_id) as gb:
        assignments = sorted(a.name for a in gb.assignments)
        students = sorted(s.id for s in gb.students)
        maxima = {a: (0.0, 0.0) for a in assignments}
        q = (gb.db.query(nb.Assignment.name, nb.GradeCell.cell_type, nb.GradeCell.max_score)
             .join(nb.Notebook, nb.Notebook.assignment_id == nb.Assignment.id)
             .join(nb.GradeCell, nb.GradeCell.notebook_id == nb.Notebook.id))
        for a, kind, points in q:
            auto, manual = maxima[a]
            maxima[a] = (auto + points, manual) if kind == "code" else (auto, manual + points)
        q = (_submitted_notebooks(gb.db.query(
                nb.SubmittedAssignment.student_id, nb.Assignment.name,
                nb.SubmittedAssignment.timestamp, nb.Notebook.name, nb.GradeCell.name,
                nb.GradeCell.cell_type, nb.GradeCell.max_score, nb.Grade.auto_score,
                nb.Grade.manual_score, nb.Grade.extra_credit, nb.Grade.needs_manual_grade))
             .join(nb.Grade, nb.Grade.notebook_id == nb.SubmittedNotebook.id)
             .join(nb.GradeCell, nb.GradeCell.id == nb.Grade.cell_id)
             .order_by(nb.Notebook.name, nb.GradeCell.name))
        subs: dict[tuple[str, str], Submission] = {}
        for student, a, ts, nb_name, cell, kind, points, auto, manual, extra, pending in q:
            sub = subs.setdefault((student, a), Submission(student, a, _iso(ts)))
            sub.cells.append(CellGrade(nb_name, cell, kind == "code",
                                       _cell_score(auto, manual, extra, pending), points))
        q = (_submitted_notebooks(gb.db.query(
                nb.SubmittedAssignment.student_id, nb.Assignment.name, nb.Notebook.name,
                nb.BaseCell.name, nb.Comment.manual_comment))
             .join(nb.Comment, nb.Comment.notebook_id == nb.SubmittedNotebook.id)
             .join(nb.BaseCell, nb.BaseCell.id == nb.Comment.cell_id)
             .filter(nb.Comment.manual_comment.isnot(None), nb.Comment.manual_comment != ""))
        for student, a, nb_name, cell, text in q:
            if (student, a) in subs:
                subs[(student, a)].comments[(nb_name, cell)] = text
    pattern = coursedir.format_path(coursedir.submitted_directory, "*", "*")
    handed_in = {(Path(p).parent.name, Path(p).name) for p in glob.glob(pattern)
                 if os.path.isdir(p)}
    return CourseGrades(assignments, students, maxima, subs, handed_in)


def _iso(timestamp) -> str:
    return timestamp.isoformat(sep=" ", timespec="seconds") if timestamp else "unknown"


def _cell_score(auto, manual, extra, pending) -> float | None:
    """nbgrader's Grade.score, except that an ungraded answer is None rather than 0."""
    base = manual if manual is not None else (None if pending else auto)
    if base is None:
        return None
    return float(base) + float(extra or 0.0)


GRADES_CSV = "class_grades.csv"  # not nbgrader export's grades.csv: neither overwrites the other

#: nbgrader's export names where they exist (student_id, raw_score, max_score); raw_score is
#: autograded + written points graded so far, as nbgrader counts it
CSV_COLUMNS = ["student_id", "assignment", "submitted", "timestamp", "auto_score", "auto_max",
               "manual_score", "manual_max", "manual_awaiting", "raw_score", "max_score",
               "reason"]
NOT_SUBMITTED = "not submitted"
NOT_GRADED = "handed in, not graded yet: run `grader grade`"


def _row(grades: CourseGrades, student: str, a: str, problem) -> dict[str, object]:
    """One student's row for assignment ``a``; ``problem``: this run's outcome when it was
    not graded (an invalid submission scores 0; a failed regrade keeps the previous grade)."""
    sub = grades.submissions.get((student, a))
    if problem is not None and problem.status == "invalid":
        sub = None  # the work handed in is unusable: 0, never an older grade
    auto_max, manual_max = grades.maxima[a]
    auto, manual = (sub.auto[0], sub.manual[0]) if sub else (0.0, 0.0)
    handed = (student, a) in grades.handed_in or (student, a) in grades.submissions
    if problem is not None:
        reason = f"{problem.status}: {problem.reason}"
    else:
        reason = "" if sub else NOT_GRADED if handed else NOT_SUBMITTED
    return {"student_id": student, "assignment": a, "submitted": "yes" if handed else "no",
            "timestamp": sub.timestamp if sub else "", "auto_score": auto, "auto_max": auto_max,
            "manual_score": manual, "manual_max": manual_max,
            "manual_awaiting": sub.awaiting if sub else 0, "raw_score": auto + manual,
            "max_score": auto_max + manual_max, "reason": reason}


def grade_rows(grades: CourseGrades, outcomes: Iterable = ()) -> list[dict[str, object]]:
    """One row per student and expected assignment, then the student's ``TOTAL`` row; sorted.

    Students: those of the gradebook and of ``submitted/``. ``outcomes`` (a grade run's)
    give the reason of every submission that run could not grade. A missing or ungradable
    assignment is a row too (0 points, ``reason`` says why), and every total is over every
    assignment, so every total is out of the same maximum.
    """
    problems = {(o.student, o.assignment): o for o in outcomes if not o.ok}
    rows = []
    for student in grades.class_list:
        mine = [_row(grades, student, a, problems.get((student, a)))
                for a in grades.assignments]
        total = {k: sum(r[k] for r in mine) for k in (
            "auto_score", "auto_max", "manual_score", "manual_max", "manual_awaiting",
            "raw_score", "max_score")}
        handed = sum(r["submitted"] == "yes" for r in mine)
        rows += mine + [{"student_id": student, "assignment": "TOTAL",
                         "submitted": f"{handed} of {len(mine)}", "timestamp": "", **total,
                         "reason": ""}]
    return rows


def export_grades_csv(root: str | Path, path: str | Path | None = None,
                      outcomes: Iterable = ()) -> Path:
    """Write the grades CSV (columns :data:`CSV_COLUMNS`) of the course at ``root``, by
    default ``root/``:data:`GRADES_CSV`; ``outcomes``: the grade run's, for the reasons."""
    path = Path(path or Path(root) / GRADES_CSV).resolve()
    rows = grade_rows(read_gradebook(root), outcomes)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, CSV_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: format(v, ".10g") if isinstance(v, float) else v
                             for k, v in row.items()})
    tmp.replace(path)
    return path


def grade_table(results: Iterable[GradeResult], assignments: list[str]) -> str:
    """A plain-text table: one row per student, autograded points per assignment and in total.

    Totals are over every assignment in ``assignments``: one a student did not hand in (``-``)
    or that could not be graded (``ERROR``) counts 0 out of its points.
    """
    results = list(results)
    by_student: dict[str, dict[str, GradeResult]] = {}
    maxima: dict[str, float] = {}
    for r in results:
        by_student.setdefault(r.student, {})[r.assignment] = r
        if r.success:
            maxima[r.assignment] = max(maxima.get(r.assignment, 0.0), r.auto_max)
    short = {a: a.split("_", 1)[0] for a in assignments}
    header = ["student"] + [short[a] for a in assignments] + ["total"]
    rows = []
    for student in sorted(by_student):
        row, got, avail = [student], 0.0, 0.0
        for a in assignments:
            r = by_student[student].get(a)
            avail += maxima.get(a, 0.0)
            if r is None:
                row.append("-")
            elif not r.success:
                row.append("ERROR")
            else:
                row.append(f"{r.auto_score:g}/{r.auto_max:g}")
                got += r.auto_score
        row.append(f"{got:g}/{avail:g}" + (f" ({100 * got / avail:.0f}%)" if avail else ""))
        rows.append(row)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]

    def fmt(row: list[str]) -> str:
        return "  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)).rstrip()

    lines = [fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows]
    return "\n".join(lines)
