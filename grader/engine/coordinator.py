"""Grade a whole class: parallel, on one machine or a Dask cluster, failing closed.

The *coordinator* (this module, one process) decides and records grades; workers only run
notebooks. For every ``submitted/<student>/<assignment>/``:

1. **intake** (:mod:`grader.engine.intake`): read, repair and sanitise the notebooks;
2. **execute** (:mod:`grader.engine.backends` → :mod:`grader.engine.worker`): each notebook in
   a fresh, sandboxed process forked from a pristine zygote, with time, memory, process and output
   limits — locally in a process pool (workers ≈ cores) or on a Dask cluster;
3. **check the environment** (:mod:`grader.engine.canary`): a result is recorded only once the
   known-answer canaries of the environment it ran in passed (run alongside the first students,
   or cached from an identical environment) and its worker's isolation probe held; else the run
   stops (or, on Dask, the worker is excluded);
4. **record** (:mod:`grader.engine.gradebook_writer`, the only gradebook writer): fill outputs
   failing closed, score with nbgrader, swap the new ``autograded/`` folder in atomically.

A failure of the machinery (a broken sandbox, a worker that died or hung, a pool that broke) is
retried and, if it persists, reported for that submission with the previous grade kept — never
points, never a silent 0. A student process that dies is run once more before the death is
blamed on the student's code. Re-running skips what is already up to date.
"""

from __future__ import annotations

import contextlib
import glob
import os
import time
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from grader.engine import gradebook_writer as record
from grader.engine import intake, ledger
from grader.engine.backends import make_backend
from grader.engine.canary import Canaries, CanaryFailure
from grader.engine.gradebook_writer import Outcome
from grader.engine.graded_cells import is_autograded_test, nbgrader_meta
from grader.engine.intake import GradingError, Prepared
from grader.engine.job import Job, Limits
from grader.engine.nbgrader_api import make_api
from grader.engine.repairs import repair_grade_cells  # noqa: F401 - re-exported

__all__ = ["ClassGrader", "GradingError", "Outcome", "summary"]


class ClassGrader:
    """Grade every submission of some assignments in an nbgrader course directory."""

    def __init__(
        self,
        course: str | Path,
        *,
        workers: int | None = None,  # None: one per core; 0: no pool (inline)
        scheduler=None,  # a Dask scheduler address or distributed.Client
        limits: Limits | None = None,
        sandbox: bool = True,
        force: bool = False,
        retries: int = 3,
        progress: bool = True,
        judge: bool = True,
        canary_cache: str | Path | None = None,  # default: <course>/.dlgrader/canaries
    ):
        self.course = Path(course).resolve()
        self.api = make_api(self.course)
        self.coursedir = self.api.coursedir
        self.config = self.api.config
        self.limits = limits or Limits()
        self.sandbox = sandbox
        self.force = force
        self.retries = retries
        self.progress = progress
        self.judge = judge
        self.backend = make_backend(workers, scheduler)
        self.canary_cache = canary_cache
        self.canaries = Canaries(self)
        self._notebooks: dict[tuple[str, str, str], NotebookNode] = {}
        self.forced: dict[str, float] = {}  # assignment -> start of a --force run not finished
        self._exporter = None

    # -- paths and notebooks -------------------------------------------------
    def path(self, step: str, student: str, assignment: str) -> Path:
        return Path(self.coursedir.format_path(step, student, assignment))

    def protect_paths(self) -> list[str]:
        """What a student's process must never see: the course and everything it points to."""
        cd = self.coursedir
        paths = [str(self.course)] + [cd.format_path(d, ".", "") for d in (
            cd.source_directory, cd.release_directory, cd.submitted_directory,
            cd.autograded_directory, cd.feedback_directory)]
        if cd.db_url.startswith("sqlite:///"):
            paths.append(os.path.dirname(cd.db_url[len("sqlite:///"):]))
        return sorted({os.path.realpath(p) for p in paths})

    def assignments(self) -> list[str]:
        base = self.coursedir.format_path(self.coursedir.submitted_directory, "*", "*")
        return sorted({Path(p).name for p in glob.glob(base) if os.path.isdir(p)})

    def submissions(self, assignment: str) -> list[str]:
        base = self.coursedir.format_path(self.coursedir.submitted_directory, "*", assignment)
        return sorted(Path(p).parent.name for p in glob.glob(base) if os.path.isdir(p))

    def _notebook(self, step: str, assignment: str, notebook: str) -> NotebookNode:
        key = (step, assignment, notebook)
        if key not in self._notebooks:
            cd = self.coursedir
            path = self.path(getattr(cd, f"{step}_directory"), ".", assignment)
            path = path / f"{notebook}.ipynb"
            if step == "release" and not path.is_file():  # fall back on the source
                return self._notebook("source", assignment, notebook)
            self._notebooks[key] = nbformat.read(path, as_version=4)
        return self._notebooks[key]

    def release_notebook(self, assignment: str, notebook: str) -> NotebookNode:
        """What students received (the source, markers and all, when there is no release)."""
        return self._notebook("release", assignment, notebook)

    def source_notebook(self, assignment: str, notebook: str) -> NotebookNode:
        """The reference solution with every hidden test."""
        return self._notebook("source", assignment, notebook)

    # -- gradebook -----------------------------------------------------------
    def gradebook(self):
        from nbgrader.api import Gradebook

        return Gradebook(self.coursedir.db_url, self.coursedir.course_id)

    def ensure_assignment(self, assignment: str) -> list[str]:
        """Make sure the gradebook knows ``assignment``; return its notebook ids."""
        from nbgrader.api import MissingEntry

        with self.gradebook() as gb:
            try:
                return [nb.name for nb in gb.find_assignment(assignment).notebooks]
            except MissingEntry:
                pass
        source = self.coursedir.format_path(self.coursedir.source_directory, ".", assignment)
        if not os.path.isdir(source):
            raise GradingError(f"assignment {assignment!r} has no source in {source}")
        from grader.engine.nbgrader_api import generate_preserving_release

        result = generate_preserving_release(self.api, assignment)
        if not result["success"]:
            raise GradingError(f"nbgrader generate_assignment {assignment} failed")
        with self.gradebook() as gb:
            return [nb.name for nb in gb.find_assignment(assignment).notebooks]

    # -- the steps -----------------------------------------------------------
    def apply(self, classes, nb: NotebookNode, resources: dict):
        """Run nbgrader's preprocessors in order, configured as its converters configure them
        (nbconvert's exporter would also re-validate the whole notebook after every step)."""
        from nbconvert.exporters import NotebookExporter

        if self._exporter is None:
            self._exporter = NotebookExporter(config=self.config)
        for cls in classes:
            nb, resources = cls(parent=self._exporter)(nb, resources)
        return nb, resources

    def sanitize(self, student, assignment, nb_id, nb):
        return intake.sanitize(self, student, assignment, nb_id, nb)

    def prepare(self, student: str, assignment: str, notebook_ids: list[str]) -> Prepared:
        return intake.prepare(self, student, assignment, notebook_ids)

    def fill_outputs(self, nb: NotebookNode, result: dict) -> list[str]:
        return record.fill_outputs(nb, result)

    def post_process(self, nb, res, *, gradebook: bool):
        return record.post_process(self, nb, res, gradebook=gradebook)

    def make_job(self, key: str, nb: NotebookNode, files: dict[str, bytes],
                 canaries: list[Job] = ()) -> Job:
        cells = {i: c.source for i, c in enumerate(nb.cells) if c.cell_type == "code"}
        meta = {i: nbgrader_meta(nb.cells[i]) for i in cells}
        tests = [i for i in cells if is_autograded_test(nb.cells[i])]
        setup = "\n".join(cells[i] for i in cells if meta[i].get("locked")
                          and not meta[i].get("grade") and not meta[i].get("solution"))
        return Job(key, cells, dict(files), self.limits, self.sandbox, self.protect_paths(),
                   list(canaries), tests, setup, self.judge)

    def job(self, prep: Prepared, nb_id: str) -> Job:
        return self.make_job(f"{prep.student}/{prep.assignment}/{nb_id}",
                             prep.notebooks[nb_id], prep.extra_files,
                             self.canaries.probe_jobs())

    # -- the run -------------------------------------------------------------
    def _prepared(self, assignments: list[str], outcomes: list[Outcome]):
        """Yield every submission that needs grading, prepared (the longest first); report
        the others."""
        pairs = [(a, s) for a in assignments for s in self.submissions(a)]
        notebooks: dict[str, list[str] | None] = {}
        for assignment, student in ledger.longest_first(self, pairs):
            if assignment not in notebooks:
                try:
                    notebooks[assignment] = self.ensure_assignment(assignment)
                except GradingError as exc:
                    notebooks[assignment] = None
                    outcomes += [Outcome(s, assignment, "failed", reason=str(exc))
                                 for s in self.submissions(assignment)]
            notebook_ids = notebooks[assignment]
            if notebook_ids is None:
                continue
            started = time.process_time()  # the coordinator's CPU, shared with workers
            try:
                prep = self.prepare(student, assignment, notebook_ids)
                prep.seconds = time.process_time() - started
            except GradingError as exc:
                outcomes.append(Outcome(student, assignment, "invalid", reason=str(exc)))
                continue
            except Exception as exc:  # noqa: BLE001 - one bad submission never stops all
                outcomes.append(Outcome(student, assignment, "failed",
                                        reason=f"could not prepare: {exc!r}"))
                continue
            done = None if self.force else record.up_to_date(
                self, prep, self.forced.get(assignment))
            if done is not None:
                outcomes.append(done)
            else:
                yield prep
        for assignment in assignments:  # none submitted: its release is still kept up to date
            if assignment not in notebooks:
                with contextlib.suppress(GradingError):
                    self.ensure_assignment(assignment)

    def grade(self, assignments: list[str] | None = None) -> list[Outcome]:
        """Grade every submission of ``assignments`` (default: all submitted ones).

        Preparing, executing and committing overlap. Raises nothing for a student's doing;
        a canary failure stops the run and every submission not yet graded is reported failed.
        """
        from grader.engine.backends import DaskBackend
        from grader.engine.dispatch import Run
        from grader.engine.sandbox import Refused, can_isolate, refusal

        if self.sandbox and not isinstance(self.backend, DaskBackend) and not can_isolate():
            self.backend.close()
            raise Refused(refusal())  # (Dask workers each refuse for themselves)
        self.backend.warm()  # workers start while the first submissions are prepared
        assignments = assignments or self.assignments()
        self.forced = ledger.forced(self)  # an interrupted --force run goes on forcing
        if self.force:
            self.forced.update(dict.fromkeys(assignments, time.time()))
            ledger.write_forced(self, self.forced)
        run = Run(self, assignments)
        finished = False
        try:
            with run.guard:
                try:
                    run.loop(self._prepared(assignments, run.outcomes))
                    finished = True
                except CanaryFailure as exc:
                    run.abort(f"not graded: {exc}")
                except KeyboardInterrupt:
                    raise run.interrupted() from None
        finally:
            run.close()
            self.backend.close()
        if finished:  # a forced assignment is done once none of it failed
            failed = {o.assignment for o in run.outcomes if o.status == "failed"}
            ledger.write_forced(self, {a: t for a, t in self.forced.items()
                                       if a not in assignments or a in failed})
        return sorted(run.outcomes, key=lambda o: (o.assignment, o.student))


def summary(outcomes: list[Outcome], seconds: float, sandbox: str | None = None) -> str:
    """The closing report: counts, then every problem with its reason, then every flag;
    ``sandbox``: how student code was isolated and limited (a line of its own)."""
    by = {}
    for o in outcomes:
        by.setdefault(o.status, []).append(o)
    lines = [
        f"graded {len(by.get('graded', []))}, up to date {len(by.get('up to date', []))}, "
        f"invalid {len(by.get('invalid', []))}, failed {len(by.get('failed', []))} "
        f"— {seconds:.1f} s"
    ]
    for status in ("invalid", "failed"):
        for o in by.get(status, []):
            lines.append(f"  {status.upper()} {o.student}/{o.assignment}: {o.reason}")
    for o in outcomes:
        for flag in o.flags:
            lines.append(f"  flagged {o.student}/{o.assignment}: {flag}")
    if sandbox:
        lines.append(f"  sandbox: {sandbox}")
    return "\n".join(lines)
