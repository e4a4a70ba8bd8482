"""Do the tests mean something? Grade the solution, the untouched stubs and known-bug mutants.

For one assignment this builds a throw-away nbgrader course, submits

* ``solution`` — the reference answers: must get full marks;
* ``stub`` — the release as students receive it: must get 0 on every autograded test;
* ``mutant-<name>`` — the reference with one known bug (``solutions/<a>.mutants.toml``): the
  grade cells in its ``caught_by`` list must score 0 and all others full marks, so it loses
  exactly their points,

and grades them all into nbgrader's real gradebook, either with nbgrader's own serial
``autograde`` (``engine="nbgrader"``) or with the kit's parallel class grader
(``engine="parallel"``, the default: same preprocessors and gradebook, one worker per core;
``tests/test_demo.py`` checks that both give the same scores). Used by the test suite and by
instructors writing new tests (``dlgrader mutants <assignment>``).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from grader.autograde import GradeResult, autograde
from grader.release import release_notebook, source_notebook
from grader.settings import SOURCE_DIR
from grader.submissions import (
    Mutant,
    autograded_test_points,
    fill,
    load_mutants,
    mutate,
    reference_answers,
    write_submission,
)


def mutants_file(root: str | Path, assignment: str) -> Path:
    return Path(root) / SOURCE_DIR / f"{assignment}.mutants.toml"


@dataclass
class MutantOutcome:
    mutant: Mutant
    result: GradeResult
    zeroed: set[str]  # autograded test cells that scored 0
    partial: set[str]  # cells with 0 < score < max (should not happen: tests are all-or-nothing)

    @property
    def caught(self) -> bool:
        return self.result.success and bool(self.zeroed)

    @property
    def as_declared(self) -> bool:
        return self.caught and not self.partial and self.zeroed == set(self.mutant.caught_by)


@dataclass
class SuiteReport:
    assignment: str
    test_points: dict[str, float]
    solution: GradeResult
    stub: GradeResult
    mutants: list[MutantOutcome] = field(default_factory=list)

    def table(self) -> str:
        lines = [f"Mutants of {self.assignment}:"]
        width = max([len(m.mutant.name) for m in self.mutants] + [6])
        for m in self.mutants:
            lost = self.solution.auto_score - m.result.auto_score
            status = "caught" if m.caught else "MISSED"
            if m.caught and not m.as_declared:
                status = "caught, NOT AS DECLARED"
            lines.append(
                f"  {m.mutant.name:<{width}}  {status:<8} lost {lost:g} pts  "
                f"by {', '.join(sorted(m.zeroed)) or '-'}"
            )
        caught = sum(m.caught for m in self.mutants)
        lines.append(f"  mutants caught: {caught}/{len(self.mutants)}")
        lines.append(
            f"  autograded points: solution {self.solution.auto_score:g}/"
            f"{self.solution.auto_max:g}, untouched stubs {self.stub.auto_score:g}/"
            f"{self.stub.auto_max:g}"
        )
        return "\n".join(lines)


def _zeroed(result: GradeResult) -> tuple[set[str], set[str]]:
    zero = {name for name, (s, _) in result.cells.items() if s == 0}
    partial = {name for name, (s, m) in result.cells.items() if 0 < s < m}
    return zero, partial


ENGINES = ("parallel", "nbgrader")


def _grade_all(course: Path, assignment: str, engine: str, progress: bool) -> dict:
    if engine == "nbgrader":
        return {r.student: r for r in autograde(course, assignment, progress=progress)}
    if engine == "parallel":
        from grader.classgrade import ClassGrader

        grader = ClassGrader(course, force=True, progress=progress)
        return {o.student: o for o in grader.grade([assignment])}
    raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")


def evaluate(
    root: str | Path,
    assignment: str,
    *,
    workdir: str | Path | None = None,
    progress: bool = False,
    engine: str = "parallel",
) -> SuiteReport:
    """Grade solution, stubs and every declared mutant of ``assignment``; return the report."""
    root = Path(root).resolve()
    source_nb = nbformat.read(source_notebook(root, assignment), as_version=4)
    release_nb = nbformat.read(release_notebook(root, assignment), as_version=4)
    answers = reference_answers(source_nb)
    mutants = load_mutants(mutants_file(root, assignment))

    tmp = tempfile.TemporaryDirectory() if workdir is None else None
    course = Path(workdir or tmp.name)
    try:
        (course / SOURCE_DIR).mkdir(parents=True, exist_ok=True)
        shutil.copytree(
            root / SOURCE_DIR / assignment, course / SOURCE_DIR / assignment, dirs_exist_ok=True
        )
        submissions = {"solution": fill(release_nb, answers), "stub": release_nb}
        for m in mutants:
            submissions[f"mutant-{m.name}"] = fill(release_nb, mutate(answers, m))
        for student, nb in submissions.items():
            write_submission(course, student, assignment, {assignment: nb})
        results = _grade_all(course, assignment, engine, progress)
    finally:
        if tmp is not None:
            tmp.cleanup()

    outcomes = []
    for m in mutants:
        res = results[f"mutant-{m.name}"]
        zero, partial = _zeroed(res)
        outcomes.append(MutantOutcome(m, res, zero, partial))
    points = autograded_test_points(source_nb)
    return SuiteReport(assignment, points, results["solution"], results["stub"], outcomes)
