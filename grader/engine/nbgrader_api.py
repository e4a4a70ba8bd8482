"""Autograde submissions through nbgrader's own API and gradebook.

Wraps the traps of nbgrader 0.9.6 (COURSE_NOTES.md) so callers never meet them:
``NbGraderAPI.autograde`` never raises (its ``success`` flag is checked here), and the kit's
settings (:mod:`grader.engine.configuration`) are always applied.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from grader.engine.configuration import make_config


class CellScores:
    """Totals over ``self.cells``: ``{grade cell: (score, max score)}`` of autograded tests."""

    cells: dict[str, tuple[float, float]]

    @property
    def auto_score(self) -> float:
        """Points earned on autograded test cells."""
        return sum(s for s, _ in self.cells.values())

    @property
    def auto_max(self) -> float:
        """Points available on autograded test cells (manual answers excluded)."""
        return sum(m for _, m in self.cells.values())


@dataclass
class GradeResult(CellScores):
    """The outcome of autograding one student's assignment."""

    student: str
    assignment: str
    success: bool
    score: float = 0.0
    max_score: float = 0.0
    cells: dict[str, tuple[float, float]] = field(default_factory=dict)  # autograded tests
    error: str | None = None


def make_api(root: str | Path):
    """An ``NbGraderAPI`` for the course directory ``root`` with the kit's settings."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    config = make_config(root)
    config.Application.log_level = "WARN"
    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)


def generate_preserving_release(api, assignment: str) -> dict:
    """nbgrader's generate_assignment (gradebook entry) with the release folder left byte-identical.

    generate_assignment rewrites ``release/<assignment>`` (kernelspec, language_info); the
    committed release is the instructor's file, so every file there is restored afterwards and
    anything new is removed (issue 21).
    """
    cd = api.coursedir
    release = Path(cd.format_path(cd.release_directory, ".", assignment))
    before = (
        {p: p.read_bytes() for p in release.rglob("*") if p.is_file()} if release.is_dir() else None
    )
    try:
        return api.generate_assignment(assignment, force=True, create=True)
    finally:
        if before is not None:  # a release that did not exist is nbgrader's to create
            for p in sorted(release.rglob("*"), reverse=True):
                if p.is_file() and p not in before:
                    p.unlink()
                elif p.is_dir() and not any(p.iterdir()) and not any(
                    q.is_relative_to(p) for q in before
                ):
                    p.rmdir()
            for p, data in before.items():
                p.parent.mkdir(parents=True, exist_ok=True)
                if not p.is_file() or p.read_bytes() != data:
                    p.write_bytes(data)


def register_assignment(api, assignment: str) -> None:
    """Record ``assignment`` (its notebooks, grade cells, points) in the gradebook.

    This runs nbgrader's generate_assignment; the release directory is restored byte-identical.
    """
    result = generate_preserving_release(api, assignment)
    if not result["success"]:
        raise RuntimeError(f"generate_assignment {assignment} failed:\n{result.get('error', '')}")


def gradebook_scores(api, assignment: str, student: str) -> tuple[float, float, dict]:
    """Total score, max score and ``{grade cell: (score, max)}`` of autograded tests."""
    from nbgrader.api import Gradebook

    with Gradebook(api.coursedir.db_url, api.coursedir.course_id) as gb:
        submission = gb.find_submission(assignment, student)
        cells = {}
        for nb in submission.notebooks:
            for grade in nb.grades:
                if grade.cell.cell_type == "code":
                    cells[grade.name] = (float(grade.score), float(grade.max_score))
        return float(submission.score), float(submission.max_score), cells


def autograde_one(api, assignment: str, student: str) -> GradeResult:
    """Autograde one submission; infrastructure failures come back as ``success=False``."""
    with warnings.catch_warnings():
        # nbgrader 0.9.6 trips SQLAlchemy 2 "not in session" warnings on every submission
        warnings.filterwarnings("ignore", module="nbgrader.api")
        warnings.filterwarnings("ignore", message=".*not in session.*")
        result = api.autograde(assignment, student, force=True, create=True)
    if not result["success"]:
        error = result.get("error") or result.get("log")
        return GradeResult(student, assignment, False, error=error)
    score, max_score, cells = gradebook_scores(api, assignment, student)
    return GradeResult(student, assignment, True, score, max_score, cells)


def submitted_students(root: str | Path, assignment: str) -> list[str]:
    """Students with a ``submitted/<student>/<assignment>/`` folder, sorted."""
    base = Path(root) / "submitted"
    return sorted(p.parent.name for p in base.glob(f"*/{assignment}") if p.is_dir())


def autograde(
    root: str | Path,
    assignment: str,
    students: Iterable[str] | None = None,
    *,
    progress: bool = True,
) -> list[GradeResult]:
    """Autograde every (or the given) submission of ``assignment``, one after the other."""
    from tqdm.auto import tqdm

    api = make_api(root)
    register_assignment(api, assignment)
    students = list(students) if students is not None else submitted_students(root, assignment)
    results = []
    for student in tqdm(students, desc=f"autograde {assignment}", disable=not progress):
        results.append(autograde_one(api, assignment, student))
    return results


def generate_feedback(root: str | Path, assignment: str, student: str) -> Path:
    """Render feedback HTML (hidden tests stripped); return its folder."""
    api = make_api(root)
    result = api.generate_feedback(assignment, student, force=True)
    if not result["success"]:
        raise RuntimeError(f"feedback for {student}/{assignment} failed:\n{result.get('error')}")
    return Path(api.coursedir.format_path(api.coursedir.feedback_directory, student, assignment))
