"""Known-answer canaries: every worker proves itself before any of its grades is trusted.

For each assignment graded, two notebooks go through exactly the path a student's does
(sanitised by nbgrader's preprocessors, executed by a worker in a sandboxed process, outputs
post-processed by nbgrader, cells scored by nbgrader's own ``determine_grade``):

* the **untouched release** notebook must score 0 on every autograded cell;
* the **reference solution** (the source notebook, hidden tests included) must score full.

Each worker runs them before its first job of the assignment and attaches what they produced
to every result it returns (:func:`grader.engine.worker.execute_job`); the coordinator calls
:meth:`Canaries.check` on that before it commits anything the worker produced. A grader that
would give untouched stubs points, or the solution less than full marks, grades nobody.

When grading sandboxed, a third canary, the **isolation probe**, runs in the same place a
student's code does and tries to read the course root, its solutions, ``.git`` and the
gradebook: if it reads any of them (or does not report), nothing the worker graded is recorded.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path

import nbformat

from grader.engine.intake import source_files

STUB, SOLUTION = "stub", "solution"
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
    """A worker failed its known-answer test: its results must not be recorded."""


class Canaries:
    """Canary jobs per assignment, and their verdicts per worker (coordinator side)."""

    def __init__(self, grader):
        self.grader = grader
        self._prepared: dict[str, dict] = {}  # assignment -> {canary key: (nb_id, kind, nb, res)}
        self._verdicts: dict[tuple[str, str], list[str]] = {}  # (worker, assignment) -> problems
        self._files: dict[str, dict[str, bytes]] = {}  # assignment -> instructor's data files

    def _prepare(self, assignment: str) -> dict:
        if assignment not in self._prepared:
            g = self.grader
            out = {}
            for nb_id in g.ensure_assignment(assignment):
                for kind, nb in ((STUB, g.release_notebook(assignment, nb_id)),
                                 (SOLUTION, g.source_notebook(assignment, nb_id))):
                    sanitized, res, _ = g.sanitize("canary", assignment, nb_id,
                                                   copy.deepcopy(nb))
                    # the key names the content: a worker's cached verdict never outlives it
                    digest = hashlib.sha256(nbformat.writes(sanitized).encode()).hexdigest()
                    key = f"canary/{assignment}/{nb_id}/{kind}/{digest[:16]}"
                    out[key] = (nb_id, kind, sanitized, res)
            self._prepared[assignment] = out
        return self._prepared[assignment]

    def jobs(self, assignment: str):
        """The canary jobs a worker must run before grading ``assignment``."""
        if assignment not in self._files:
            cd = self.grader.coursedir
            source = Path(cd.format_path(cd.source_directory, ".", assignment))
            self._files[assignment] = source_files(source, list(cd.ignore))
        jobs = [self.grader.make_job(key, nb, files=self._files[assignment])
                for key, (_, _, nb, _) in self._prepare(assignment).items()]
        if self.grader.sandbox:
            jobs.append(self._isolation_job())
        return jobs

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

    def check(self, worker: str, assignment: str, results: dict[str, dict]) -> None:
        """Raise :class:`CanaryFailure` unless ``worker``'s canaries for ``assignment`` hold."""
        key = (worker, assignment)
        if key not in self._verdicts:
            self._verdicts[key] = self._problems(assignment, results)
        problems = self._verdicts[key]
        if problems:
            raise CanaryFailure(
                f"worker {worker} failed its known-answer check for {assignment}; nothing it "
                "graded is recorded:\n  " + "\n  ".join(problems))

    def _problems(self, assignment: str, results: dict[str, dict]) -> list[str]:
        problems = []
        for key, (nb_id, kind, nb, res) in self._prepare(assignment).items():
            result = results.get(key)
            if result is None:
                problems.append(f"{nb_id} {kind}: the worker did not run it")
                continue
            if result["status"] != "ok":
                problems.append(f"{nb_id} {kind}: {result['status']}: {result['detail']}")
                continue
            for cell_id, (score, max_score) in self.scores(nb, res, result).items():
                want = 0.0 if kind == STUB else max_score
                if score != want:
                    problems.append(
                        f"{nb_id} {kind}: cell {cell_id} scored {score:g}/{max_score:g}, "
                        f"must score {want:g}" + _why(nb, cell_id, result))
        if self.grader.sandbox:
            problems += self._isolation_problems(results)
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
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == cell_id:
            ran = result["cells"].get(i) or result["cells"].get(str(i))
            if ran is None:
                return " (it never ran)"
            errors = [o for o in ran["outputs"] if o.get("output_type") == "error"]
            if errors:
                return f" (raised {errors[0].get('ename')}: {errors[0].get('evalue')[:200]})"
            return " (it ran without raising)"
    return ""


