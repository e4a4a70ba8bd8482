"""The built-in demo class: release, autograde, feedback and export, end to end.

Five students hand in every available notebook:

========  =================================================================
ada       complete: the reference answers
ben       empty: the release exactly as received (stubs untouched)
cleo      half done: the first half of the functions (and methods) to write
dev       classic bugs: one known bug (mutant) in every second graded function
eve       complete, but every function prints to stderr and raises a warning
========  =================================================================

``python -m grader demo`` builds the class in a fresh nbgrader course directory (default
``demo_class/``), grades it with the kit's class grader into nbgrader's gradebook (the same
engine as ``python -m grader grade``: parallel, limited, sandboxed as root or with user
namespaces, refusing where nothing isolates unless ``--unsandboxed``), writes
the feedback HTML with nbgrader (hidden tests stripped) and the grades CSV, and prints the
grade table. ``tests/test_demo.py`` grades the same class with nbgrader's own autograde and
checks that every cell gets the same score.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import nbformat

from grader.course.class_report import write_class_report
from grader.course.feedback import write_class_feedback
from grader.course.grades import export_grades_csv, grade_table
from grader.course.mutants import mutants_file
from grader.course.release import available_assignments, release_notebook, source_notebook
from grader.course.submissions import (
    fill,
    half_done_answers,
    load_mutants,
    make_noisy,
    mutate,
    reference_answers,
    write_submission,
)
from grader.engine.configuration import SOURCE_DIR, write_course_config
from grader.engine.coordinator import ClassGrader, Outcome

STUDENTS = {
    "ada": "complete",
    "ben": "empty (untouched release)",
    "cleo": "half done",
    "dev": "classic bugs",
    "eve": "complete, noisy (stderr + warnings)",
}


def student_answers(root: Path, assignment: str) -> dict[str, dict[str, str] | None]:
    """``{student: answers to fill}`` for one assignment (None: submit the release as is)."""
    source_nb = nbformat.read(source_notebook(root, assignment), as_version=4)
    reference = reference_answers(source_nb)
    buggy = dict(reference)
    seen_cells = []
    for m in load_mutants(mutants_file(root, assignment)):
        if m.cell in seen_cells:
            continue
        seen_cells.append(m.cell)
        if len(seen_cells) % 2 == 1:  # first known bug of every second graded function
            buggy = mutate(buggy, m)
    return {
        "ada": reference,
        "ben": None,
        "cleo": half_done_answers(source_nb),
        "dev": buggy,
        "eve": make_noisy(reference),
    }


def build_class(root: str | Path, out: str | Path,
                assignments: list[str] | None = None) -> Path:
    """Create the demo course directory ``out`` (replacing it) with every submission (of
    ``assignments``, default all)."""
    root, out = Path(root).resolve(), Path(out).resolve()
    if out == root or out in root.parents:
        raise ValueError(f"refusing to use {out} as the demo directory: it holds the course")
    if out.exists():
        if not (out / ".dlkit-demo").exists():
            raise FileExistsError(
                f"{out} exists and is not a demo class made by this command; "
                "choose another --out or remove it yourself"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / ".dlkit-demo").write_text("made by `python -m grader demo`; safe to delete\n")
    write_course_config(out)
    for assignment in assignments or available_assignments(root):
        shutil.copytree(root / SOURCE_DIR / assignment, out / SOURCE_DIR / assignment)
        release_nb = nbformat.read(release_notebook(root, assignment), as_version=4)
        for student, answers in student_answers(root, assignment).items():
            nb = release_nb if answers is None else fill(release_nb, answers)
            write_submission(out, student, assignment, {assignment: nb})
    return out


def run(root: str | Path, out: str | Path, *, progress: bool = True,
        sandbox: bool = True, assignments: list[str] | None = None) -> list[Outcome]:
    """Build, grade (``dlgrader grade``'s engine), give feedback and export; print the table.

    Raises :class:`grader.engine.sandbox.Refused` where nothing isolates and ``sandbox`` is True."""
    from grader.engine.sandbox import Refused, can_isolate, describe, refusal

    if sandbox and not can_isolate():
        raise Refused(refusal())
    start = time.perf_counter()
    course = build_class(root, out, assignments)
    assignments = assignments or available_assignments(root)
    grader = ClassGrader(course, progress=progress, sandbox=sandbox)
    mode = describe(grader.limits) if sandbox else "UNSANDBOXED (--unsandboxed)"
    print(f"sandbox: {mode}", flush=True)
    results = grader.grade(assignments)
    failed = [r for r in results if not r.success]
    write_class_feedback(course, assignments)
    csv = export_grades_csv(course, outcomes=results)
    report, _ = write_class_report(course, results, time.perf_counter() - start)
    print()
    print("Demo class —", ", ".join(f"{s}: {d}" for s, d in STUDENTS.items()))
    print(grade_table(results, assignments))
    print("(autograded points; written answers await manual grading in the formgrader)")
    print(f"grades CSV:    {csv}")
    print(f"feedback HTML: {course / 'feedback'}/<student>/<assignment>/")
    print(f"class report:  {report}")
    print(f"graded {len(results)} notebooks in {time.perf_counter() - start:.1f} s")
    print(f"sandbox: {mode}")
    for r in failed:
        print(f"ERROR grading {r.student}/{r.assignment}: {r.error}")
    return results
