"""Recording grades: the worker's outputs into the notebook, nbgrader's scoring, the gradebook.

The coordinator is the only writer. **Fail closed**: a code cell counts as run only with
positive evidence (the worker saw it finish); a cell that raised gets an ``error`` output even
when none was recorded; a cell that never ran gets one saying why. Then nbgrader's own grading
preprocessors (stderr guard, output limits, SaveAutoGrades, late penalties) decide the points,
and the new ``autograded/`` folder replaces the old one in one rename. The private ledger (what lets
a re-run skip what is up to date) is :mod:`grader.engine.ledger`.
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
from dataclasses import dataclass, field

import nbformat
from nbformat import NotebookNode

from grader.engine.intake import NBGRADER_FILES, Prepared
from grader.engine.ledger import read_ledger, write_ledger
from grader.engine.nbgrader_api import CellScores

TIMINGS = {  # Outcome.timings: seconds per submission beyond its cells, step by step
    # (the coordinator's steps in its CPU seconds, the worker's in wall seconds)
    "prepare": "coordinator: read, repair, nbgrader's sanitising preprocessors",
    "setup": "worker: files, fork, sandbox, judge start, environment probe in the process",
    "relay": "worker: judge round trips and relaying results, beyond the cells' own time",
    "teardown": "worker: kill the tree, reap, remove the job folders",
    "fill": "coordinator: outputs into the notebook",
    "nbgrader": "coordinator: nbgrader's autograde preprocessors (scores, gradebook grades)",
    "gradebook": "coordinator: student and submission rows, the total read back",
    "files": "coordinator: autograded/ swapped in, the ledger",
}


@dataclass
class Outcome(CellScores):
    """What happened to one student's assignment."""

    student: str
    assignment: str
    status: str  # "graded", "up to date", "invalid" (student's file unusable), "failed" (ours)
    score: float = 0.0
    max_score: float = 0.0
    flags: list[str] = field(default_factory=list)
    reason: str = ""
    seconds: float = 0.0
    cells: dict[str, tuple[float, float]] = field(default_factory=dict)
    cell_seconds: float = 0.0  # time the student's cells ran
    worker_seconds: float = 0.0  # time the worker spent on it, fork to reap
    timings: dict[str, float] = field(default_factory=dict)  # where the rest went (TIMINGS)

    @property
    def ok(self) -> bool:
        return self.status in ("graded", "up to date")

    success = ok  # the interface of nbgrader_api.GradeResult, for grader.course.grades

    @property
    def error(self) -> str | None:
        return None if self.ok else self.reason


def _error(ename: str, why: str) -> NotebookNode:
    return nbformat.v4.new_output("error", ename=ename, evalue=why, traceback=[f"{ename}: {why}"])


def fill_outputs(nb: NotebookNode, result: dict) -> list[str]:
    """Put the worker's outputs into ``nb``; every code cell without evidence of a clean run
    fails. Returns flags for the instructor."""
    cells = {int(k): v for k, v in result["cells"].items()}
    ended = result["running"]
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        ran = cells.get(i)
        if ran is not None:
            outputs = [nbformat.from_dict(o) for o in ran["outputs"]]
            if ran.get("raised", True) and not any(o.output_type == "error" for o in outputs):
                outputs.append(_error("CellRaised", "the cell raised an exception"))
            cell.outputs, cell.execution_count = outputs, ran.get("execution_count")
            continue
        if i == ended:
            ename = "CellTimeout" if result["status"] == "timeout" else "ProcessDied"
            why = f"{result['detail']} while running this cell"
        else:
            ename = "NotExecuted"
            why = "not run: " + (
                f"the notebook's process ended in cell {ended} ({result['detail']})"
                if ended is not None else result["detail"] or "the process ended early")
        cell.outputs, cell.execution_count = [_error(ename, why)], None
    return [f"{result['detail']} (in cell {ended})"] if result["status"] != "ok" else []


def post_process(grader, nb: NotebookNode, res: dict, *, gradebook: bool):
    """nbgrader's autograde preprocessors after execution; without the gradebook writers when
    ``gradebook`` is false (canaries)."""
    from nbgrader.converters import Autograde
    from nbgrader.preprocessors import (
        AssignLatePenalties,
        CheckCellMetadata,
        Execute,
        SaveAutoGrades,
    )

    skip = {Execute, CheckCellMetadata}  # executed by the workers; checked when prepared
    if not gradebook:
        skip |= {SaveAutoGrades, AssignLatePenalties}
    steps = [pp for pp in Autograde.class_traits()["autograde_preprocessors"].default()
             if pp not in skip]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nbgrader 0.9.6 trips SQLAlchemy 2 warnings
        return grader.apply(steps, nb, res)


def commit(grader, prep: Prepared, results: dict[str, dict]) -> Outcome:
    """Score ``results`` with nbgrader into the gradebook; swap ``autograded/`` in."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _commit(grader, prep, results)


def _worker_timings(results: dict[str, dict]) -> dict[str, float]:
    r = list(results.values())
    setup = sum(x.get("setup_seconds", 0.0) for x in r)
    done = sum(x.get("done_seconds", 0.0) for x in r)
    return {"setup": setup, "relay": max(0.0, done - setup - sum(x["cell_seconds"] for x in r)),
            "teardown": sum(x["total_seconds"] for x in r) - done}


def _commit(grader, prep: Prepared, results: dict[str, dict]) -> Outcome:
    clock = [time.process_time()]  # the coordinator's CPU (it shares the cores with workers)
    timings = {"prepare": prep.seconds, **_worker_timings(results)}

    def lap(step: str) -> None:
        now = time.process_time()
        timings[step] = timings.get(step, 0.0) + now - clock[0]
        clock[0] = now

    flags = list(prep.flags)
    for nb_id, nb in prep.notebooks.items():
        flags += [f"{nb_id}: {f}" for f in fill_outputs(nb, results[nb_id])]
    lap("fill")
    if any(r.get("sandbox", {}).get("isolated") is not True for r in results.values()):
        flags.append("UNSANDBOXED: student code ran without isolation")
    for nb_id, r in results.items():
        if r.get("job_full"):
            mb = r.get("sandbox", {}).get("job_mb", "its")
            flags.append(f"{nb_id}: DISK FULL: the notebook filled its job folder ({mb} MB limit)")
    cd = grader.coursedir
    timestamp = cd.get_existing_timestamp(
        str(grader.path(cd.submitted_directory, prep.student, prep.assignment)))
    with grader.gradebook() as gb:
        gb.update_or_create_student(prep.student)
        kwargs = {"timestamp": timestamp} if timestamp else {}
        gb.update_or_create_submission(prep.assignment, prep.student, **kwargs)
    lap("gradebook")
    written = {}
    for nb_id, nb in prep.notebooks.items():
        nb, _ = post_process(grader, nb, prep.resources[nb_id], gradebook=True)
        written[f"{nb_id}.ipynb"] = nbformat.writes(nb).encode("utf-8")  # validates once
    lap("nbgrader")
    with grader.gradebook() as gb:
        for nb_id in prep.missing:  # as nbgrader: a missing notebook scores 0
            sub_nb = gb.find_submission_notebook(nb_id, prep.assignment, prep.student)
            for grade in sub_nb.grades:
                grade.auto_score, grade.needs_manual_grade = 0, False
            gb.db.commit()
        submission = gb.find_submission(prep.assignment, prep.student)
        score, max_score = float(submission.score), float(submission.max_score)
        cells = {g.name: (float(g.score), float(g.max_score))
                 for snb in submission.notebooks for g in snb.grades
                 if g.cell.cell_type == "code"}
    lap("gradebook")
    outcome = Outcome(prep.student, prep.assignment, "graded", score, max_score, flags,
                      cells=cells,
                      cell_seconds=sum(r["cell_seconds"] for r in results.values()),
                      worker_seconds=sum(r["total_seconds"] for r in results.values()),
                      timings=timings)
    write_autograded(grader, prep, written)
    write_ledger(grader, prep, outcome)
    lap("files")
    return outcome


def write_autograded(grader, prep: Prepared, notebooks: dict[str, bytes]) -> None:
    """Replace ``autograded/<student>/<assignment>/`` in one rename."""
    cd = grader.coursedir
    dest = grader.path(cd.autograded_directory, prep.student, prep.assignment)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.new-{os.getpid()}")
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for rel, data in {**prep.extra_files, **notebooks}.items():
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    submitted = grader.path(cd.submitted_directory, prep.student, prep.assignment)
    for name in NBGRADER_FILES:  # what nbgrader's feedback exchange reads
        if (submitted / name).is_file():
            shutil.copy(submitted / name, tmp / name)
    if dest.exists():
        os.rename(dest, old)
    os.rename(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)


def up_to_date(grader, prep: Prepared, since: float | None = None) -> Outcome | None:
    """The recorded outcome when this exact submission was graded already (and still is);
    ``since``: when a --force run of its assignment started (older grades are stale)."""
    from nbgrader.api import MissingEntry

    record = read_ledger(grader, prep.student, prep.assignment)
    if record is None:
        return None
    autograded = grader.path(grader.coursedir.autograded_directory, prep.student, prep.assignment)
    if record.get("fingerprint") != prep.fingerprint or not autograded.is_dir():
        return None
    if since is not None and float(record.get("graded_epoch", 0.0)) < since:
        return None
    with grader.gradebook() as gb:  # the gradebook must still hold the grade
        try:
            gb.find_submission(prep.assignment, prep.student)
        except MissingEntry:
            return None
    cells = {k: tuple(v) for k, v in record.get("cells", {}).items()}
    return Outcome(prep.student, prep.assignment, "up to date", record.get("score", 0.0),
                   record.get("max_score", 0.0), record.get("flags", []), cells=cells)
