"""Known-answer canaries: every worker proves itself before any of its grades is trusted.

For each assignment graded, two notebooks go through exactly the path a student's does
(sanitised by nbgrader's preprocessors, executed by a worker in a sandboxed process, outputs
post-processed by nbgrader, cells scored by nbgrader's own ``determine_grade``):

* the **untouched release** notebook must score 0 on every autograded cell;
* the **reference solution** (the source notebook, hidden tests included) must score full.

Each worker runs them before its first job of the assignment and attaches what they produced
to every result it returns (:func:`grader.executor.execute_job`); the coordinator calls
:meth:`Canaries.check` on that before it commits anything the worker produced. A grader that
would give untouched stubs points, or the solution less than full marks, grades nobody.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import nbformat

from grader.intake import source_files

STUB, SOLUTION = "stub", "solution"


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
        return [self.grader.make_job(key, nb, files=self._files[assignment])
                for key, (_, _, nb, _) in self._prepare(assignment).items()]

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


