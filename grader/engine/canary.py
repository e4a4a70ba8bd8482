"""Known-answer canaries: nothing is recorded from an environment no canary vouched for.

For each assignment graded, two notebooks go through exactly the path a student's does
(sanitised by nbgrader's preprocessors, executed by a worker in a sandboxed process, outputs
post-processed by nbgrader, cells scored by nbgrader's own ``determine_grade``):

* the **untouched release** notebook must score 0 on every autograded cell;
* the **reference solution** (the source notebook, hidden tests included) must score full.

Both without their closing experiments (the code cells after the last test, which cannot change
a score: :mod:`grader.engine.graded_cells`); a student's notebook always runs in full.

They run once per assignment and **environment** (:mod:`grader.engine.environment`: host,
kernel, Python and packages, the grader's code, the sandbox mode), as ordinary jobs alongside the
first students (:mod:`grader.engine.dispatch`), and are remembered across runs
(:mod:`grader.engine.canary_cache`) while nothing they depend on changed. Every worker reports
its own environment with every result; a student's result is recorded only once the canaries of
that very environment passed — in this run or, cached, in an identical one. A worker whose
environment no canary vouches for is excluded (a local pool: the run stops).

When grading sandboxed, each worker also runs the **isolation probe** once, in the same place a
student's code does: it tries to read the course root, its solutions, ``.git`` and the gradebook;
if it reads any of them (or does not report), nothing the worker graded is recorded.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

import nbformat

from grader.engine import environment
from grader.engine.canary_cache import CACHE_DIR, CanaryCache
from grader.engine.graded_cells import nbgrader_meta, without_trailing_experiments
from grader.engine.intake import sha256, source_files

STUB, SOLUTION = "stub", "solution"
PASSED, PENDING, FAILED, UNKNOWN = "passed", "pending", "failed", "unknown"
ISOLATION_TAG = "DLGRADER-ISOLATION"
ISOLATION_PROBE = """import json as _json, os as _os
_seen = {}
for _p in %r:
    try:
        if _os.path.isdir(_p):
            _os.listdir(_p)
        else:
            open(_p, 'rb').close()
        _seen[_p] = True
    except OSError:
        _seen[_p] = False
print(%r, _json.dumps(_seen))
"""


class CanaryFailure(Exception):
    """A worker or an environment failed its known-answer test: record nothing from it."""


class Canaries:
    """Canary jobs per assignment, their verdicts per environment, the isolation probe's per
    worker (coordinator side)."""

    def __init__(self, grader):
        self.grader = grader
        self.cache = CanaryCache(grader.canary_cache or grader.course / CACHE_DIR)
        self._prepared: dict[str, dict] = {}  # assignment -> {canary key: (nb_id, kind, nb, res)}
        self._files: dict[str, dict[str, bytes]] = {}  # assignment -> instructor's data files
        self._verdicts: dict[tuple[str, str], list[str] | None] = {}  # None: running
        self._results: dict[tuple[str, str], dict[str, dict]] = {}
        self._isolation: dict[str, list[str]] = {}  # worker -> problems
        self.cached = self.ran = 0  # canary notebooks taken from the cache / run
        self.seconds = 0.0  # the workers' time on the canaries run

    # -- the jobs --------------------------------------------------------------
    def _prepare(self, assignment: str) -> dict:
        if assignment not in self._prepared:
            g = self.grader
            out = {}
            for nb_id in g.ensure_assignment(assignment):
                for kind, nb in ((STUB, g.release_notebook(assignment, nb_id)),
                                 (SOLUTION, g.source_notebook(assignment, nb_id))):
                    # only scores are read: the closing experiments cannot change one
                    sanitized, res, _ = g.sanitize("canary", assignment, nb_id,
                                                   without_trailing_experiments(nb))
                    # the key names the content: a verdict never outlives it
                    digest = hashlib.sha256(nbformat.writes(sanitized).encode()).hexdigest()
                    key = f"canary/{assignment}/{nb_id}/{kind}/{digest}"
                    out[key] = (nb_id, kind, sanitized, res)
            self._prepared[assignment] = out
        return self._prepared[assignment]

    def files(self, assignment: str) -> dict[str, bytes]:
        if assignment not in self._files:
            cd = self.grader.coursedir
            source = Path(cd.format_path(cd.source_directory, ".", assignment))
            self._files[assignment] = source_files(source, list(cd.ignore))
        return self._files[assignment]

    def jobs(self, assignment: str, keys=None):
        """The canary jobs of ``assignment`` (those of ``keys`` only, when given)."""
        return [self.grader.make_job(key, nb, files=self.files(assignment),
                                     canaries=self.probe_jobs())
                for key, (_, _, nb, _) in self._prepare(assignment).items()
                if keys is None or key in keys]

    def probe_jobs(self):
        """What each worker runs once before its first job: the isolation probe (sandboxed)."""
        return [self._isolation_job()] if self.grader.sandbox else []

    # -- verdicts per (assignment, environment) ----------------------------------
    def _material(self, assignment: str, key: str, env: dict) -> dict:
        g = self.grader
        files = self.files(assignment)
        return json.loads(json.dumps({
            "environment": env, "canary": key,
            "files": sha256(*[n.encode() + b"\0" + files[n] for n in sorted(files)]),
            "limits": asdict(g.limits), "sandbox": g.sandbox, "judge": g.judge,
            "protect": g.protect_paths()}))

    def state(self, assignment: str, env_key: str) -> str:
        if (assignment, env_key) not in self._verdicts:
            return UNKNOWN
        verdict = self._verdicts[assignment, env_key]
        return PENDING if verdict is None else FAILED if verdict else PASSED

    def start(self, assignment: str, env: dict) -> list:
        """Begin vouching for ``env``: from the cache when every canary run of ``assignment``
        in exactly this environment passed before (scored again now), else the jobs to run."""
        k = (assignment, environment.key(env))
        if k in self._verdicts:
            return []
        results, missing = {}, []
        for key in self._prepare(assignment):
            result = self.cache.load(self._material(assignment, key, env))
            if result is not None and not self._problems_of(assignment, key, result):
                results[key] = result
            else:  # absent, or not genuine, or no longer passing: never trusted
                missing.append(key)
        self._results[k] = results
        self.cached += len(results)
        if not missing:
            self._verdicts[k] = []
            return []
        self._verdicts[k] = None
        self.ran += len(missing)
        return self.jobs(assignment, set(missing))

    def record(self, assignment: str, env: dict, key: str, result: dict) -> list[str] | None:
        """One canary run of ``env`` came back; once all are in, the verdict (the problems,
        empty when it passed — then every run is cached), else None."""
        k = (assignment, environment.key(env))
        if self._verdicts.get(k, []) is not None:
            return self._verdicts.get(k)  # decided already (a rerun's late copy)
        self._results[k][key] = result
        if set(self._results[k]) != set(self._prepare(assignment)):
            return None
        problems = []
        for key_, result_ in self._results[k].items():
            problems += self._problems_of(assignment, key_, result_)
        self._verdicts[k] = problems
        if not problems:
            for key_, result_ in self._results[k].items():
                self.cache.store(self._material(assignment, key_, env), result_)
        return problems

    def problems(self, assignment: str, env_key: str) -> list[str]:
        return self._verdicts.get((assignment, env_key)) or []

    def failure(self, who: str, assignment: str, problems: list[str]) -> CanaryFailure:
        return CanaryFailure(
            f"{who} failed its known-answer check for {assignment}; nothing it "
            "graded is recorded:\n  " + "\n  ".join(problems))

    # -- each worker's own probe ------------------------------------------------
    def secrets(self) -> list[str]:
        """What the isolation probe must fail to read: the course, its solutions, ``.git``,
        the gradebook (and every folder the grader protects)."""
        g = self.grader
        cd = g.coursedir
        paths = set(g.protect_paths())
        if cd.db_url.startswith("sqlite:///"):
            paths.add(os.path.realpath(cd.db_url[len("sqlite:///"):]))
        for extra in (g.course / ".git", g.course / "gradebook.db"):
            if extra.exists():
                paths.add(str(extra))
        return sorted(paths)

    def _isolation_job(self):
        import nbformat.v4 as v4

        src = ISOLATION_PROBE % (self.secrets(), ISOLATION_TAG)
        key = f"canary/isolation/{hashlib.sha256(src.encode()).hexdigest()[:16]}"
        return self.grader.make_job(key, v4.new_notebook(cells=[v4.new_code_cell(src)]), {})

    def _isolation_problems(self, results: dict[str, dict]) -> list[str]:
        job = self._isolation_job()
        result = results.get(job.key)
        if result is None:
            return ["isolation probe: the worker did not run it"]
        if result["status"] != "ok":
            return [f"isolation probe: {result['status']}: {result['detail']}"]
        cell = result["cells"].get(0) or result["cells"].get("0") or {}
        text = "".join(o.get("text", "") for o in cell.get("outputs", [])
                       if o.get("output_type") == "stream")
        line = next((ln for ln in text.splitlines() if ln.startswith(ISOLATION_TAG + " ")),
                    None)
        try:
            seen = json.loads(line.split(" ", 1)[1]) if line else None
        except ValueError:
            seen = None
        if cell.get("raised", True) or not isinstance(seen, dict) or \
                set(seen) != set(self.secrets()):
            return ["isolation probe: it did not report what it could read"]
        readable = sorted(p for p, ok in seen.items() if ok is not False)
        if readable:
            return ["isolation probe: student code could read " + ", ".join(readable)]
        return []

    def check_worker(self, worker: str, results: dict[str, dict]) -> None:
        """Raise :class:`CanaryFailure` unless ``worker``'s isolation probe held (sandboxed)."""
        if not self.grader.sandbox:
            return
        if worker not in self._isolation:
            self._isolation[worker] = self._isolation_problems(results)
        if self._isolation[worker]:
            raise CanaryFailure(
                f"worker {worker} failed its isolation probe; nothing it graded is recorded:"
                "\n  " + "\n  ".join(self._isolation[worker]))

    def _problems_of(self, assignment: str, key: str, result) -> list[str]:
        """What is wrong with one canary run's result (nothing: it passed)."""
        nb_id, kind, nb, res = self._prepare(assignment)[key]
        try:
            if result["status"] != "ok":
                return [f"{nb_id} {kind}: {result['status']}: {result['detail']}"]
            scores = self.scores(nb, res, result)
        except Exception as exc:  # noqa: BLE001 - evidence that cannot be read proves nothing
            return [f"{nb_id} {kind}: an unreadable result ({exc!r})"[:500]]
        problems = []
        for cell_id, (score, max_score) in scores.items():
            want = 0.0 if kind == STUB else max_score
            if score != want:
                problems.append(
                    f"{nb_id} {kind}: cell {cell_id} scored {score:g}/{max_score:g}, "
                    f"must score {want:g}" + _why(nb, cell_id, result))
        return problems

    def scores(self, nb, res, result: dict) -> dict[str, tuple[float, float]]:
        """Score ``result`` as the commit would, without touching the gradebook."""
        from nbgrader.utils import determine_grade, is_grade

        filled = copy.deepcopy(nb)
        self.grader.fill_outputs(filled, result)
        filled, _ = self.grader.post_process(filled, copy.deepcopy(res), gradebook=False)
        out = {}
        for cell in filled.cells:
            if cell.cell_type == "code" and is_grade(cell):
                score, max_score = determine_grade(cell)
                out[cell.metadata.nbgrader["grade_id"]] = (float(score or 0.0), max_score)
        return out


def _why(nb, cell_id: str, result: dict) -> str:
    for i, cell in enumerate(nb.cells):
        if nbgrader_meta(cell).get("grade_id") == cell_id:
            ran = result["cells"].get(i) or result["cells"].get(str(i))
            if ran is None:
                return " (it never ran)"
            errors = [o for o in ran["outputs"] if o.get("output_type") == "error"]
            if errors:
                return f" (raised {errors[0].get('ename')}: {errors[0].get('evalue')[:200]})"
            return " (it ran without raising)"
    return ""


