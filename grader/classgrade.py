"""Grade a whole class: parallel, on one machine or a Dask cluster, losing nothing.

The *coordinator* (this module, one process) decides and records grades; *workers*
(:mod:`grader.executor`) only run notebooks. For every ``submitted/<student>/<assignment>/``:

1. **prepare** (coordinator): read the notebook (malformed JSON, a wrong or missing name and
   extra files are reported), repair grade cells the student deleted, duplicated, retyped or
   stripped of metadata (each repair is flagged), then run nbgrader's own sanitising
   preprocessors (restore test cells from the gradebook, clear outputs, ...);
2. **execute** (a worker): run the code cells in a forked, sandboxed process with per-cell and
   whole-notebook time limits and memory/process/output limits — locally in a process pool
   (workers ≈ cores) or on a Dask cluster given its scheduler address;
3. **commit** (coordinator, the only gradebook writer): mark cells that never ran as failed,
   run nbgrader's own grading preprocessors (stderr guard, output limits, SaveAutoGrades, late
   penalties), then swap the new ``autograded/`` folder in atomically.

A failure of the infrastructure (a worker died, the pool broke) is retried and never written
as a 0: the previous grade and ``autograded/`` files stay until a run succeeds. A student
process that dies is run once more before the death is blamed on the student's code. Each
graded submission leaves a fingerprint, so re-running skips what is already up to date (an
interrupted run resumes); ``force=True`` regrades everything.
"""

from __future__ import annotations

import concurrent.futures as cf
import glob
import hashlib
import json
import multiprocessing
import os
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from grader.autograde import CellScores, make_api
from grader.executor import Job, Limits, execute_job, preload

LEDGER = ".dlgrader.json"
MAX_EXTRA_BYTES = 20 * 1024 * 1024
FORMAT_VERSION = 1  # bump to invalidate every fingerprint


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

    @property
    def ok(self) -> bool:
        return self.status in ("graded", "up to date")

    success = ok  # the interface of grader.autograde.GradeResult, for grader.reports

    @property
    def error(self) -> str | None:
        return None if self.ok else self.reason


@dataclass
class _Prepared:
    student: str
    assignment: str
    notebooks: dict[str, NotebookNode]  # notebook id -> sanitized notebook
    resources: dict[str, dict]
    extra_files: dict[str, bytes]
    fingerprint: str
    flags: list[str]
    missing: list[str]  # notebook ids not submitted (scored 0, as nbgrader does)


class GradingError(Exception):
    """A submission that cannot be graded; the message says why, for the instructor."""


# ----------------------------------------------------------------------------- backends


class InlineBackend:
    """No pool: the coordinator forks each notebook's process itself, one at a time."""

    def submit(self, job: Job):
        fut = cf.Future()
        try:
            fut.set_result(execute_job(job))
        except Exception as exc:  # noqa: BLE001 - handed to the retry logic like any backend
            fut.set_exception(exc)
        return fut

    def wait(self, futures):
        return set(futures), set()

    def reset(self) -> None:
        pass

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return "the coordinator process itself (no pool)"


class LocalBackend:
    """A pool of worker processes on this machine, each importing the libraries once."""

    def __init__(self, workers: int):
        self.workers = workers
        self._pool = None

    def _ensure(self):
        if self._pool is None:
            ctx = multiprocessing.get_context("spawn")
            self._pool = cf.ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=preload)
        return self._pool

    def submit(self, job: Job):
        return self._ensure().submit(execute_job, job)

    def wait(self, futures):
        done, pending = cf.wait(futures, timeout=1.0, return_when=cf.FIRST_COMPLETED)
        return done, pending

    def reset(self) -> None:
        """After a worker crash the pool is broken: start a fresh one."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def describe(self) -> str:
        return f"{self.workers} local worker process(es)"


class DaskBackend:
    """Workers of a Dask distributed cluster (``scheduler`` address or an existing Client)."""

    def __init__(self, scheduler):
        from distributed import Client

        self.client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
        self._own = not isinstance(scheduler, Client)

    def submit(self, job: Job):
        return self.client.submit(execute_job, job, pure=False)

    def wait(self, futures):
        from distributed import wait

        try:
            res = wait(list(futures), timeout=1.0, return_when="FIRST_COMPLETED")
        except TimeoutError:
            return set(), set(futures)
        return set(res.done), set(res.not_done)

    def reset(self) -> None:
        pass  # the scheduler replaces dead workers itself

    def close(self) -> None:
        if self._own:
            self.client.close()

    def describe(self) -> str:
        n = len(self.client.scheduler_info().get("workers", {}))
        return f"Dask cluster at {self.client.scheduler.address} ({n} workers)"


# ----------------------------------------------------------------------------- helpers


def _sha256(*chunks: bytes) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(hashlib.sha256(c).digest())
    return h.hexdigest()


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def repair_grade_cells(nb: NotebookNode, release: NotebookNode) -> list[str]:
    """Undo what students do to nbgrader's cells, in place; return one flag per repair.

    Compared with the release notebook (what the student received): a grade/locked/answer cell
    that was duplicated keeps its first copy; one whose type was changed gets its type back;
    one whose nbgrader metadata was stripped (same source, no metadata) gets it back; one that
    was deleted is put back after the cell that preceded it in the release.
    """
    flags: list[str] = []
    reference = {
        _meta(c)["grade_id"]: c for c in release.cells if _meta(c).get("grade_id") is not None
    }
    by_source = {
        c.source.strip(): gid
        for gid, c in reference.items()
        if not _meta(c).get("solution") and c.source.strip()
    }
    seen: set[str] = set()
    kept = []
    for cell in nb.cells:
        meta = _meta(cell)
        gid = meta.get("grade_id")
        if gid is None and cell.source.strip() in by_source:
            gid = by_source[cell.source.strip()]
            if gid not in seen:
                cell.setdefault("metadata", {})["nbgrader"] = dict(_meta(reference[gid]))
                flags.append(f"cell {gid}: nbgrader metadata was stripped; restored")
        if gid is not None and gid in reference:
            if gid in seen:
                flags.append(f"cell {gid}: duplicated; extra copy removed")
                continue
            seen.add(gid)
            want = reference[gid].cell_type
            if cell.cell_type != want:
                flags.append(f"cell {gid}: type changed to {cell.cell_type}; restored to {want}")
                fresh = (
                    nbformat.v4.new_code_cell(cell.source)
                    if want == "code"
                    else nbformat.v4.new_markdown_cell(cell.source)
                )
                fresh.metadata = cell.metadata
                cell = fresh
        kept.append(cell)
    # deleted cells: put each back after its predecessor in the release
    order = [_meta(c).get("grade_id") for c in release.cells]
    for pos, gid in enumerate(order):
        if gid is None or gid in seen or gid not in reference:
            continue
        prev = next((g for g in reversed(order[:pos]) if g in seen), None)
        where = 0
        if prev is not None:
            where = 1 + next(i for i, c in enumerate(kept) if _meta(c).get("grade_id") == prev)
        kept.insert(where, nbformat.from_dict(reference[gid]))
        seen.add(gid)
        flags.append(f"cell {gid}: deleted by the student; restored from the release")
    nb.cells = kept
    return flags


# ----------------------------------------------------------------------------- coordinator


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
        if scheduler is not None:
            self.backend = DaskBackend(scheduler)
        elif workers == 0:
            self.backend = InlineBackend()
        else:
            self.backend = LocalBackend(workers or os.cpu_count() or 1)
        self._release_cache: dict[tuple[str, str], NotebookNode] = {}
        self._exporter = None

    # -- paths ---------------------------------------------------------------
    def _dir(self, step: str, student: str, assignment: str) -> Path:
        return Path(self.coursedir.format_path(step, student, assignment))

    def hidden_paths(self) -> list[str]:
        """What a student's process must not see: sources, gradebook, everyone's files."""
        cd = self.coursedir
        paths = [
            cd.format_path(cd.source_directory, ".", ""),
            cd.format_path(cd.submitted_directory, ".", ""),
            cd.format_path(cd.autograded_directory, ".", ""),
            cd.format_path(cd.feedback_directory, ".", ""),
            str(self.course / "gradebook.db"),
        ]
        url = cd.db_url
        if url.startswith("sqlite:///"):
            paths.append(url[len("sqlite:///"):])
        return sorted({os.path.normpath(p) for p in paths})

    def assignments(self) -> list[str]:
        base = Path(self.coursedir.format_path(self.coursedir.submitted_directory, "*", "*"))
        return sorted({Path(p).name for p in glob.glob(str(base)) if os.path.isdir(p)})

    def submissions(self, assignment: str) -> list[str]:
        base = self.coursedir.format_path(self.coursedir.submitted_directory, "*", assignment)
        return sorted(Path(p).parent.name for p in glob.glob(base) if os.path.isdir(p))

    # -- gradebook -----------------------------------------------------------
    def _gradebook(self):
        from nbgrader.api import Gradebook

        return Gradebook(self.coursedir.db_url, self.coursedir.course_id)

    def ensure_assignment(self, assignment: str) -> list[str]:
        """Make sure the gradebook knows ``assignment``; return its notebook ids."""
        from nbgrader.api import MissingEntry

        with self._gradebook() as gb:
            try:
                return [nb.name for nb in gb.find_assignment(assignment).notebooks]
            except MissingEntry:
                pass
        source = self.coursedir.format_path(self.coursedir.source_directory, ".", assignment)
        if not os.path.isdir(source):
            raise GradingError(f"assignment {assignment!r} has no source in {source}")
        result = self.api.generate_assignment(assignment, force=True, create=True)
        if not result["success"]:
            raise GradingError(f"nbgrader generate_assignment {assignment} failed")
        with self._gradebook() as gb:
            return [nb.name for nb in gb.find_assignment(assignment).notebooks]

    def _release(self, assignment: str, notebook: str) -> NotebookNode:
        key = (assignment, notebook)
        if key not in self._release_cache:
            path = Path(
                self.coursedir.format_path(self.coursedir.release_directory, ".", assignment)
            ) / f"{notebook}.ipynb"
            if not path.is_file():  # fall back on the source, markers and all
                path = Path(
                    self.coursedir.format_path(self.coursedir.source_directory, ".", assignment)
                ) / f"{notebook}.ipynb"
            self._release_cache[key] = nbformat.read(path, as_version=4)
        return self._release_cache[key]

    # -- 1. prepare ----------------------------------------------------------
    def prepare(self, student: str, assignment: str, notebook_ids: list[str]) -> _Prepared:
        from nbgrader.converters import Autograde

        sub = self._dir(self.coursedir.submitted_directory, student, assignment)
        flags: list[str] = []
        ipynbs = sorted(
            p for p in sub.glob("*.ipynb") if not p.name.startswith(".")
        )
        expected = {f"{nb}.ipynb" for nb in notebook_ids}
        present = {p.name: p for p in ipynbs}
        chosen: dict[str, Path] = {nb: present[f"{nb}.ipynb"] for nb in notebook_ids
                                   if f"{nb}.ipynb" in present}
        missing = [nb for nb in notebook_ids if nb not in chosen]
        strays = [p for p in ipynbs if p.name not in expected]
        if missing and len(missing) == 1 and len(strays) == 1:
            chosen[missing[0]] = strays[0]
            flags.append(f"notebook named {strays[0].name}, expected {missing[0]}.ipynb: "
                         "graded as that notebook")
            missing, strays = [], []
        if not chosen:
            found = ", ".join(p.name for p in ipynbs) or "nothing"
            raise GradingError(
                f"no notebook to grade: expected {', '.join(sorted(expected))}, found {found}"
            )
        if missing:
            flags.append(f"missing notebook(s) {', '.join(missing)}: scored 0")
        for p in strays:
            flags.append(f"extra notebook {p.name} ignored")

        extra: dict[str, bytes] = {}
        total = 0
        for path in sorted(sub.rglob("*")):
            rel = path.relative_to(sub).as_posix()
            if not path.is_file() or path.suffix == ".ipynb" or rel == "timestamp.txt":
                continue
            if any(part.startswith(".") for part in path.relative_to(sub).parts):
                continue
            size = path.stat().st_size
            if total + size > MAX_EXTRA_BYTES:
                flags.append(f"extra file {rel} ({size} bytes) left out: over the size limit")
                continue
            extra[rel] = path.read_bytes()
            total += size
        if extra:
            flags.append(f"extra files copied alongside: {', '.join(sorted(extra))}")
        source_dir = Path(self.coursedir.format_path(self.coursedir.source_directory, ".",
                                                     assignment))
        for path in sorted(source_dir.rglob("*")):  # instructor's data files win, as in nbgrader
            rel = path.relative_to(source_dir).as_posix()
            if path.is_file() and path.suffix != ".ipynb" and not any(
                glob.fnmatch.fnmatch(part, pat)
                for part in path.relative_to(source_dir).parts
                for pat in self.coursedir.ignore
            ):
                extra[rel] = path.read_bytes()

        raw = {nb: chosen[nb].read_bytes() for nb in chosen}
        source_bytes = [
            (source_dir / f"{nb}.ipynb").read_bytes()
            for nb in notebook_ids
            if (source_dir / f"{nb}.ipynb").is_file()
        ]
        fingerprint = _sha256(
            str(FORMAT_VERSION).encode(),
            json.dumps(sorted(chosen)).encode(),
            *[raw[nb] for nb in sorted(raw)],
            *[extra[k] for k in sorted(extra)],
            *source_bytes,
        )

        notebooks, resources = {}, {}
        for nb_id in chosen:
            try:
                nb = nbformat.reads(raw[nb_id].decode("utf-8"), as_version=4)
            except UnicodeDecodeError as exc:
                raise GradingError(f"{chosen[nb_id].name} is not UTF-8 text: {exc}") from None
            except Exception as exc:  # nbformat raises several kinds for bad JSON
                raise GradingError(
                    f"{chosen[nb_id].name} is not a readable notebook: {exc}".splitlines()[0]
                ) from None
            try:
                nbformat.validate(nb)
            except nbformat.ValidationError:
                nb = nbformat.from_dict(nb)
                flags.append(f"{nb_id}: notebook did not validate against nbformat; repaired")
            for cell in nb.cells:  # outputs never matter and may be huge
                if cell.cell_type == "code":
                    cell.outputs, cell.execution_count = [], None
            flags += [f"{nb_id}: {f}" for f in repair_grade_cells(nb, self._release(assignment,
                                                                                  nb_id))]
            res = {
                "unique_key": nb_id,
                "output_files_dir": f"{nb_id}_files",
                "nbgrader": {
                    "student": student,
                    "assignment": assignment,
                    "notebook": nb_id,
                    "db_url": self.coursedir.db_url,
                },
            }
            sanitize = Autograde.class_traits()["sanitize_preprocessors"].default()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    nb, res = self._apply(sanitize, nb, res)
                except Exception as exc:
                    raise GradingError(f"{nb_id}: nbgrader could not sanitize it: {exc}") from None
            notebooks[nb_id] = nb
            resources[nb_id] = res
        return _Prepared(student, assignment, notebooks, resources, extra, fingerprint, flags,
                         missing)

    def _apply(self, classes, nb: NotebookNode, resources: dict):
        """Run nbgrader's preprocessors in order, configured as its converters configure them.

        (nbconvert's exporter would also re-validate the whole notebook after every step.)
        """
        from nbconvert.exporters import NotebookExporter

        if self._exporter is None:
            self._exporter = NotebookExporter(config=self.config)
        for cls in classes:
            nb, resources = cls(parent=self._exporter)(nb, resources)
        return nb, resources

    def up_to_date(self, prep: _Prepared) -> Outcome | None:
        if self.force:
            return None
        ledger = self._dir(self.coursedir.autograded_directory, prep.student, prep.assignment)
        try:
            record = json.loads((ledger / LEDGER).read_text())
        except (OSError, ValueError):
            return None
        if record.get("fingerprint") != prep.fingerprint:
            return None
        from nbgrader.api import MissingEntry

        with self._gradebook() as gb:  # the gradebook must still hold the grade
            try:
                gb.find_submission(prep.assignment, prep.student)
            except MissingEntry:
                return None
        cells = {k: tuple(v) for k, v in record.get("cells", {}).items()}
        return Outcome(prep.student, prep.assignment, "up to date", record.get("score", 0.0),
                       record.get("max_score", 0.0), record.get("flags", []), cells=cells)

    def job(self, prep: _Prepared, nb_id: str) -> Job:
        nb = prep.notebooks[nb_id]
        cells = {i: c.source for i, c in enumerate(nb.cells) if c.cell_type == "code"}
        return Job(f"{prep.student}/{prep.assignment}/{nb_id}", cells, dict(prep.extra_files),
                   self.limits, self.sandbox, self.hidden_paths())

    # -- 3. commit -----------------------------------------------------------
    @staticmethod
    def _fill_outputs(nb: NotebookNode, result: dict) -> list[str]:
        """Put the worker's outputs into ``nb``; every code cell that did not run fails."""
        flags = []
        cells = {int(k): v for k, v in result["cells"].items()}
        ended = result["running"]
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            if i in cells:
                cell.outputs = [nbformat.from_dict(o) for o in cells[i]["outputs"]]
                cell.execution_count = cells[i]["execution_count"]
                continue
            if i == ended:
                why = f"{result['detail']} while running this cell"
                ename = "CellTimeout" if result["status"] == "timeout" else "ProcessDied"
            else:
                why = "not run: " + (
                    f"the notebook's process ended in cell {ended} ({result['detail']})"
                    if ended is not None else result["detail"] or "the process ended early")
                ename = "NotExecuted"
            cell.outputs = [nbformat.v4.new_output("error", ename=ename, evalue=why,
                                                   traceback=[f"{ename}: {why}"])]
            cell.execution_count = None
        if result["status"] != "ok":
            flags.append(f"{result['detail']} (in cell {ended})")
        return flags

    def commit(self, prep: _Prepared, results: dict[str, dict]) -> Outcome:
        with warnings.catch_warnings():
            # nbgrader 0.9.6 trips SQLAlchemy 2 "not in session" warnings on every submission
            warnings.simplefilter("ignore")
            return self._commit(prep, results)

    def _commit(self, prep: _Prepared, results: dict[str, dict]) -> Outcome:
        from nbgrader.converters import Autograde
        from nbgrader.preprocessors import CheckCellMetadata, Execute

        flags = list(prep.flags)
        executed = {}
        for nb_id, nb in prep.notebooks.items():
            flags += [f"{nb_id}: {f}" for f in self._fill_outputs(nb, results[nb_id])]
            executed[nb_id] = nb
        if any(r.get("sandbox", {}).get("isolated") is False and self.sandbox
               for r in results.values()):
            flags.append("UNSANDBOXED: student code ran without isolation")

        timestamp = self.coursedir.get_existing_timestamp(
            str(self._dir(self.coursedir.submitted_directory, prep.student, prep.assignment))
        )
        with self._gradebook() as gb:
            gb.update_or_create_student(prep.student)
            if timestamp:
                gb.update_or_create_submission(prep.assignment, prep.student, timestamp=timestamp)
            else:
                gb.update_or_create_submission(prep.assignment, prep.student)
        post = Autograde.class_traits()["autograde_preprocessors"].default()
        # the workers executed the cells; cell metadata was checked when preparing
        post = [pp for pp in post if pp is not Execute and pp is not CheckCellMetadata]
        written = {}
        for nb_id, nb in executed.items():
            nb, _ = self._apply(post, nb, prep.resources[nb_id])
            written[f"{nb_id}.ipynb"] = nbformat.writes(nb).encode("utf-8")  # validates once
        with self._gradebook() as gb:
            for nb_id in prep.missing:  # as nbgrader: a missing notebook scores 0
                sub_nb = gb.find_submission_notebook(nb_id, prep.assignment, prep.student)
                for grade in sub_nb.grades:
                    grade.auto_score, grade.needs_manual_grade = 0, False
                gb.db.commit()
            submission = gb.find_submission(prep.assignment, prep.student)
            score, max_score = float(submission.score), float(submission.max_score)
            cells = {}
            for snb in submission.notebooks:
                for grade in snb.grades:
                    if grade.cell.cell_type == "code":
                        cells[grade.name] = (float(grade.score), float(grade.max_score))
        outcome = Outcome(prep.student, prep.assignment, "graded", score, max_score, flags,
                          cells=cells,
                          cell_seconds=sum(r["cell_seconds"] for r in results.values()),
                          worker_seconds=sum(r["total_seconds"] for r in results.values()))
        self._write_autograded(prep, written, outcome)
        return outcome

    def _write_autograded(self, prep: _Prepared, notebooks: dict[str, bytes], outcome: Outcome):
        """Replace ``autograded/<student>/<assignment>/`` in one rename."""
        dest = self._dir(self.coursedir.autograded_directory, prep.student, prep.assignment)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.new-{os.getpid()}")
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for rel, data in {**prep.extra_files, **notebooks}.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        ts = self._dir(self.coursedir.submitted_directory, prep.student, prep.assignment)
        if (ts / "timestamp.txt").is_file():
            shutil.copy(ts / "timestamp.txt", tmp / "timestamp.txt")
        record = {
            "fingerprint": prep.fingerprint,
            "score": outcome.score,
            "max_score": outcome.max_score,
            "flags": outcome.flags,
            "cells": outcome.cells,
            "graded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (tmp / LEDGER).write_text(json.dumps(record, indent=1))
        if dest.exists():
            os.rename(dest, old)
        os.rename(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)

    # -- the run -------------------------------------------------------------
    def _prepared(self, assignments: list[str], outcomes: list[Outcome]):
        """Yield every submission that needs grading, prepared; report the others."""
        for assignment in assignments:
            try:
                notebook_ids = self.ensure_assignment(assignment)
            except GradingError as exc:
                outcomes += [Outcome(s, assignment, "failed", reason=str(exc))
                             for s in self.submissions(assignment)]
                continue
            for student in self.submissions(assignment):
                try:
                    prep = self.prepare(student, assignment, notebook_ids)
                except GradingError as exc:
                    outcomes.append(Outcome(student, assignment, "invalid", reason=str(exc)))
                    continue
                except Exception as exc:  # noqa: BLE001 - one bad submission never stops all
                    outcomes.append(Outcome(student, assignment, "failed",
                                            reason=f"could not prepare: {exc!r}"))
                    continue
                done = self.up_to_date(prep)
                if done is not None:
                    outcomes.append(done)
                else:
                    yield prep

    def grade(self, assignments: list[str] | None = None) -> list[Outcome]:
        """Grade every submission of ``assignments`` (default: all submitted ones).

        Preparing, executing and committing overlap: the coordinator prepares the next
        submissions while the workers run the previous ones.
        """
        from tqdm.auto import tqdm

        assignments = assignments or self.assignments()
        total = sum(len(self.submissions(a)) for a in assignments)
        outcomes: list[Outcome] = []
        pending_preps = self._prepared(assignments, outcomes)
        todo: dict[tuple, _Prepared] = {}
        results: dict[tuple, dict] = {}
        attempts: dict[tuple, int] = {}
        died_once: set[tuple] = set()
        started: dict[tuple, float] = {}
        remaining: dict[int, int] = {}  # notebooks still to run, per prepared submission
        futures: dict = {}
        in_flight_cap = 2 * getattr(self.backend, "workers", 8)

        refused: set = set()  # futures that failed at submission (e.g. a broken pool)

        def launch(key):
            attempts[key] = attempts.get(key, 0) + 1
            started.setdefault(key, time.perf_counter())
            try:
                fut = self.backend.submit(self.job(todo[key], key[2]))
            except Exception as exc:  # noqa: BLE001 - handled below like a failed run: retried
                fut = cf.Future()
                fut.set_exception(exc)
                refused.add(fut)
            futures[fut] = key

        def finish(out: Outcome):
            outcomes.append(out)
            bar.update(1)

        bar = tqdm(total=total, desc="grading", unit="nb", disable=not self.progress)
        reported = 0
        try:
            exhausted = False
            while futures or not exhausted:
                while not exhausted and len(futures) < in_flight_cap:
                    prep = next(pending_preps, None)
                    if prep is None:
                        exhausted = True
                        break
                    remaining[id(prep)] = len(prep.notebooks)
                    for nb in prep.notebooks:
                        todo[(prep.student, prep.assignment, nb)] = prep
                        launch((prep.student, prep.assignment, nb))
                if len(outcomes) > reported:  # reported without running anything
                    bar.update(len(outcomes) - reported)
                    reported = len(outcomes)
                if not futures:
                    continue
                if refused & futures.keys():
                    done = refused & futures.keys()
                    refused.clear()
                else:
                    done, _ = self.backend.wait(set(futures))
                for fut in done:
                    key = futures.pop(fut, None)
                    if key is None:  # already relaunched after a broken pool
                        continue
                    prep = todo[key]
                    try:
                        res = fut.result()
                    except Exception as exc:  # noqa: BLE001 - infrastructure failure: retry
                        if attempts[key] <= self.retries:
                            if isinstance(exc, cf.process.BrokenProcessPool):
                                # a worker died: the pool and everything queued on it is gone
                                self.backend.reset()
                                stale = list(futures.values())
                                futures.clear()
                                for k in stale:
                                    launch(k)
                            launch(key)
                            continue
                        if remaining[id(prep)] >= 0:
                            remaining[id(prep)] = -1
                            finish(Outcome(
                                prep.student, prep.assignment, "failed",
                                reason=f"infrastructure failure after {attempts[key]} attempts:"
                                       f" {type(exc).__name__}: {exc}; previous grade kept"))
                            reported += 1
                        continue
                    if res["status"] in ("died", "crash") and key not in died_once:
                        died_once.add(key)  # once more, to rule out a flaky machine
                        launch(key)
                        continue
                    results[key] = res
                    remaining[id(prep)] -= 1
                    if remaining[id(prep)] == 0:
                        per_nb = {nb: results[(prep.student, prep.assignment, nb)]
                                  for nb in prep.notebooks}
                        try:
                            out = self.commit(prep, per_nb)
                        except Exception as exc:  # noqa: BLE001
                            out = Outcome(prep.student, prep.assignment, "failed",
                                          reason=f"could not record the grade: {exc!r}; "
                                                 "previous grade kept")
                        out.seconds = time.perf_counter() - started[key]
                        finish(out)
                        reported += 1
        finally:
            bar.close()
            self.backend.close()
        return sorted(outcomes, key=lambda o: (o.assignment, o.student))


def summary(outcomes: list[Outcome], seconds: float) -> str:
    """The closing report: counts, then every problem with its reason, then every flag."""
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
    return "\n".join(lines)
