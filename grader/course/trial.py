"""Grade made-up submissions in a throw-away course, and read what their graded notebooks say.

The instructor's checks that the tests mean something (:mod:`grader.course.mutants`: solution,
stubs, known bugs, other correct answers) and the test suite's gates (do-nothing answers, code
pasted from a later notebook) all do the same thing: write submissions of one or more
assignments into a fresh nbgrader course, grade them all, then read the scores and the
``likely cause:`` phrases of the failing cells. Grading every assignment's submissions in *one*
run lets the workers stay busy from the first notebook to the last and pays each assignment's
known-answer canaries once.

``engine="parallel"`` (the default) is the kit's class grader (the same preprocessors,
gradebook, judge and sandbox as ``dlgrader grade``); ``engine="nbgrader"`` is nbgrader's own
serial ``autograde``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from grader.course.submissions import write_submission
from grader.diagnose import causes_in
from grader.engine.configuration import SOURCE_DIR
from grader.engine.graded_cells import nbgrader_meta

ENGINES = ("parallel", "nbgrader")

#: ``{assignment: {student: notebook}}``: one notebook per submission, named as the assignment
Submissions = Mapping[str, Mapping[str, NotebookNode]]


@dataclass
class Trial:
    """Every submission's grade and named causes, keyed by ``(assignment, student)``."""

    results: dict  # (assignment, student) -> GradeResult or Outcome (same interface)
    causes: dict[tuple[str, str], dict[str, list[str]]]  # -> {failing cell: [named causes]}
    messages: dict[tuple[str, str], dict[str, list[str]]]  # -> {failing cell: [its errors]}


def grade_trial(root: str | Path, submissions: Submissions, *, engine: str = "parallel",
                progress: bool = False, workdir: str | Path | None = None) -> Trial:
    """Write ``submissions`` into a throw-away course (``workdir``, or a temporary folder that is
    removed afterwards) next to the sources of their assignments, grade them all, and return
    their scores and the causes their failing cells name."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    root = Path(root).resolve()
    tmp = tempfile.TemporaryDirectory() if workdir is None else None
    course = Path(workdir or tmp.name)
    try:
        (course / SOURCE_DIR).mkdir(parents=True, exist_ok=True)
        for assignment, by_student in submissions.items():
            shutil.copytree(root / SOURCE_DIR / assignment, course / SOURCE_DIR / assignment,
                            dirs_exist_ok=True)
            for student, nb in by_student.items():
                write_submission(course, student, assignment, {assignment: nb})
        results = _grade_all(course, list(submissions), engine, progress)
        messages = {(a, s): graded_messages(course, s, a)
                    for a, by_student in submissions.items() for s in by_student}
    finally:
        if tmp is not None:
            tmp.cleanup()
    causes = {key: {cell: [p for text in texts for p in causes_in(text)]
                    for cell, texts in by_cell.items()} for key, by_cell in messages.items()}
    return Trial(results, causes, messages)


def _grade_all(course: Path, assignments: list[str], engine: str, progress: bool) -> dict:
    if engine == "nbgrader":
        from grader.engine.nbgrader_api import autograde

        return {(r.assignment, r.student): r for a in assignments
                for r in autograde(course, a, progress=progress)}
    from grader.engine.coordinator import ClassGrader

    grader = ClassGrader(course, force=True, progress=progress)
    return {(o.assignment, o.student): o for o in grader.grade(assignments)}


def failing_cell_messages(notebook_path: str | Path) -> dict[str, list[str]]:
    """``{grade cell: [error messages]}`` from the error outputs of a graded notebook."""
    nb = nbformat.read(notebook_path, as_version=4)
    out = {}
    for cell in nb.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if gid and errors:
            out[gid] = [_error_text(o) for o in errors]
    return out


def failing_cell_causes(notebook_path: str | Path) -> dict[str, list[str]]:
    """``{grade cell: [named causes]}`` from the error outputs of a graded notebook."""
    return {cell: [p for text in texts for p in causes_in(text)]
            for cell, texts in failing_cell_messages(notebook_path).items()}


def _error_text(output) -> str:
    """An error output's message (``evalue``; the traceback only if it has none)."""
    if output.get("evalue"):
        return output["evalue"]
    return "\n".join(output.get("traceback", []))


def graded_messages(course: Path, student: str, assignment: str) -> dict[str, list[str]]:
    """Error messages per failing cell over the student's autograded notebooks of
    ``assignment``."""
    out: dict[str, list[str]] = {}
    for path in sorted((course / "autograded" / student / assignment).glob("*.ipynb")):
        for cell, texts in failing_cell_messages(path).items():
            out.setdefault(cell, []).extend(texts)
    return out
