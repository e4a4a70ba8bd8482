"""Do the tests mean something? Grade the solution, the untouched stubs and known-bug mutants.

For one assignment (or several, graded together: :func:`evaluate_all`) this builds a
throw-away nbgrader course (:mod:`grader.course.trial`), submits

* ``solution`` — the reference answers: must get full marks;
* ``stub`` — the release as students receive it: must get 0 on every autograded test;
* ``mutant-<name>`` — the reference with one known bug (``solutions/<a>.mutants.toml``): the
  grade cells in its ``caught_by`` list must score 0 and all others full marks, so it loses
  exactly their points,
* ``alternative-<name>`` — the reference with one *other correct* answer (an ``[[alternative]]``
  of the same file: a library function, another formula the text allows): must get full marks,

and grades them all into nbgrader's real gradebook, either with nbgrader's own serial
``autograde`` (``engine="nbgrader"``) or with the kit's parallel class grader
(``engine="parallel"``, the default: same preprocessors and gradebook, one worker per core;
``tests/test_demo.py`` checks that both give the same scores). Used by the test suite and by
instructors writing new tests (``dlgrader mutants <assignment>``).

It also checks the *messages*: the ``likely cause:`` phrases (:mod:`grader.diagnose`) in the
error outputs of each submission's failing cells, read from the autograded notebooks that
grading wrote anyway (no regrading). A mutant that declares ``diagnosis = "<phrase>"`` must be
named by at least one failing cell and named wrongly by none; ``diagnosis = ""`` means no
failing cell may name a cause; without the field, named causes are reported as unverified.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from grader.course.release import release_notebook, source_notebook
from grader.course.submissions import (
    Mutant,
    autograded_test_points,
    fill,
    load_alternatives,
    load_mutants,
    mutate,
    reference_answers,
)
from grader.course.trial import Trial, grade_trial
from grader.course.trial import failing_cell_causes as failing_cell_causes  # re-exported
from grader.diagnose import names
from grader.engine.configuration import SOURCE_DIR
from grader.engine.nbgrader_api import GradeResult


def mutants_file(root: str | Path, assignment: str) -> Path:
    return Path(root) / SOURCE_DIR / f"{assignment}.mutants.toml"


@dataclass
class MutantOutcome:
    mutant: Mutant
    result: GradeResult
    zeroed: set[str]  # autograded test cells that scored 0
    partial: set[str]  # cells with 0 < score < max (should not happen: tests are all-or-nothing)
    causes: dict[str, list[str]] = field(default_factory=dict)  # failing cell -> named causes
    messages: dict[str, list[str]] = field(default_factory=dict)  # failing cell -> its errors

    @property
    def caught(self) -> bool:
        return self.result.success and bool(self.zeroed)

    @property
    def as_declared(self) -> bool:
        return self.caught and not self.partial and self.zeroed == set(self.mutant.caught_by)

    @property
    def named(self) -> list[str]:
        """Every cause named by a failing cell (one entry per message)."""
        return [p for cell in sorted(self.causes) for p in self.causes[cell]]

    @property
    def wrong_causes(self) -> list[str]:
        """Named causes that contradict the declared diagnosis (none declared: none wrong)."""
        want = self.mutant.diagnosis
        if want is None:
            return []
        return [p for p in self.named if not want or not names(p, want)]

    @property
    def unverified(self) -> list[str]:
        """Named causes of a mutant that declares no diagnosis."""
        return self.named if self.mutant.diagnosis is None else []

    @property
    def right_cause(self) -> bool:
        """Caught, and diagnosed as declared (a declared cause named, and nothing else)."""
        want = self.mutant.diagnosis
        if want is None or not self.caught or self.wrong_causes:
            return False
        return not self.named if want == "" else any(names(p, want) for p in self.named)


@dataclass
class AlternativeOutcome:
    alternative: Mutant
    result: GradeResult

    @property
    def accepted(self) -> bool:
        """Graded, and full marks on every autograded test cell."""
        cells = self.result.cells.values()
        return self.result.success and bool(cells) and all(s == m for s, m in cells)

    @property
    def lost(self) -> list[str]:
        return sorted(c for c, (s, m) in self.result.cells.items() if s != m)


@dataclass
class SuiteReport:
    assignment: str
    test_points: dict[str, float]
    solution: GradeResult
    stub: GradeResult
    mutants: list[MutantOutcome] = field(default_factory=list)
    stub_causes: dict[str, list[str]] = field(default_factory=dict)  # a stub has no cause
    alternatives: list[AlternativeOutcome] = field(default_factory=list)

    def diagnosis_counts(self) -> dict[str, int]:
        """The note's columns: bugs, caught, right cause, wrong-cause messages (and more)."""
        ms = self.mutants
        return {
            "bugs": len(ms),
            "caught": sum(m.caught for m in ms),
            "declared": sum(m.mutant.diagnosis is not None for m in ms),
            "right cause": sum(m.right_cause for m in ms),
            "wrong-cause messages": sum(len(m.wrong_causes) for m in ms)
            + sum(len(v) for v in self.stub_causes.values()),
            "unverified": sum(len(m.unverified) for m in ms),
            "alternatives": len(self.alternatives),
            "alternatives accepted": sum(a.accepted for a in self.alternatives),
        }

    def problems(self) -> list[str]:
        """Everything that makes the gate fail, one line each (empty: all as declared)."""
        out = []
        for what, res in (("solution", self.solution), ("untouched stubs", self.stub)):
            if not res.success:
                out.append(f"{what} could not be graded: {res.error}")
        if not self.solution.auto_max:
            out.append("no autograded points")
        if self.solution.auto_score != self.solution.auto_max:
            out.append(f"solution scores {self.solution.auto_score:g}/{self.solution.auto_max:g}")
        if self.stub.auto_score:
            out.append(f"untouched stubs score {self.stub.auto_score:g}")
        if self.stub_causes:
            out.append(f"untouched stubs are blamed on a cause: {self.stub_causes}")
        for m in self.mutants:
            if not m.result.success:
                out.append(f"{m.mutant.name}: could not be graded: {m.result.error}")
            elif not m.as_declared:
                out.append(f"{m.mutant.name}: zeroed {sorted(m.zeroed)}, "
                           f"declared {sorted(m.mutant.caught_by)}")
            if m.wrong_causes:
                out.append(f"{m.mutant.name}: wrong cause {m.wrong_causes}")
            elif m.mutant.diagnosis and m.caught and not m.right_cause:
                out.append(f"{m.mutant.name}: {m.mutant.diagnosis!r} is not named")
        for a in self.alternatives:
            if not a.accepted:
                why = a.result.error if not a.result.success else f"loses {a.lost}"
                out.append(f"alternative {a.alternative.name}: {why}")
        return out

    def table(self) -> str:
        lines = [f"Mutants of {self.assignment}:"]
        width = max([len(m.mutant.name) for m in self.mutants]
                    + [len(a.alternative.name) + 12 for a in self.alternatives] + [6])
        for m in self.mutants:
            lost = self.solution.auto_score - m.result.auto_score
            status = "caught" if m.caught else "MISSED"
            if m.caught and not m.as_declared:
                status = "caught, NOT AS DECLARED"
            lines.append(
                f"  {m.mutant.name:<{width}}  {status:<8} lost {lost:g} pts  "
                f"by {', '.join(sorted(m.zeroed)) or '-'}; {_cause_status(m)}"
            )
        caught = sum(m.caught for m in self.mutants)
        lines.append(f"  mutants caught: {caught}/{len(self.mutants)}")
        for a in self.alternatives:
            status = "accepted" if a.accepted else f"REJECTED: loses {', '.join(a.lost) or '-'}"
            lines.append(f"  {'alternative ' + a.alternative.name:<{width}}  {status}")
        counts = self.diagnosis_counts()
        lines.append(
            "  totals: " + ", ".join(f"{k} {v}" for k, v in counts.items())
            + (f"; untouched stubs NAME A CAUSE: {self.stub_causes}" if self.stub_causes else "")
        )
        lines.append(
            f"  autograded points: solution {self.solution.auto_score:g}/"
            f"{self.solution.auto_max:g}, untouched stubs {self.stub.auto_score:g}/"
            f"{self.stub.auto_max:g}"
        )
        return "\n".join(lines)


def _cause_status(m: MutantOutcome) -> str:
    want = m.mutant.diagnosis
    if m.wrong_causes:
        return f"WRONG CAUSE {'; '.join(m.wrong_causes)!r} (declared {want!r})"
    if want is None:
        return f"cause unverified: {'; '.join(m.unverified)!r}" if m.unverified else "no cause"
    if m.right_cause:
        return f"right cause {want!r}" if want else "no cause, as declared"
    return f"cause NOT NAMED (declared {want!r})"


def suite_submissions(root: str | Path, assignment: str) -> dict[str, NotebookNode]:
    """``{student: notebook}``: the solution, the untouched stubs, every mutant and every
    other correct answer of ``assignment``, each filled into its release notebook."""
    root = Path(root).resolve()
    source_nb = nbformat.read(source_notebook(root, assignment), as_version=4)
    release_nb = nbformat.read(release_notebook(root, assignment), as_version=4)
    answers = reference_answers(source_nb)
    submissions = {"solution": fill(release_nb, answers), "stub": release_nb}
    for m in load_mutants(mutants_file(root, assignment)):
        submissions[f"mutant-{m.name}"] = fill(release_nb, mutate(answers, m))
    for a in load_alternatives(mutants_file(root, assignment)):
        submissions[f"alternative-{a.name}"] = fill(release_nb, mutate(answers, a))
    return submissions


def _zeroed(result: GradeResult) -> tuple[set[str], set[str]]:
    zero = {name for name, (s, _) in result.cells.items() if s == 0}
    partial = {name for name, (s, m) in result.cells.items() if 0 < s < m}
    return zero, partial


def bug_outcomes(trial: Trial, assignment: str, bugs: list[Mutant],
                 prefix: str = "mutant-") -> list[MutantOutcome]:
    """What grading did to each bug of ``assignment``, handed in as ``<prefix><name>``."""
    out = []
    for bug in bugs:
        key = (assignment, f"{prefix}{bug.name}")
        res = trial.results[key]
        zero, partial = _zeroed(res)
        named = {c: p for c, p in trial.causes[key].items() if c in zero and p}
        texts = {c: t for c, t in trial.messages[key].items() if c in zero}
        out.append(MutantOutcome(bug, res, zero, partial, named, texts))
    return out


def suite_report(root: str | Path, assignment: str, trial: Trial) -> SuiteReport:
    """The report on ``assignment``'s suite, read from a trial that graded its
    :func:`suite_submissions` (and possibly more)."""
    root = Path(root).resolve()
    source_nb = nbformat.read(source_notebook(root, assignment), as_version=4)
    results = {s: r for (a, s), r in trial.results.items() if a == assignment}
    causes = {s: c for (a, s), c in trial.causes.items() if a == assignment}
    outcomes = bug_outcomes(trial, assignment, load_mutants(mutants_file(root, assignment)))
    points = autograded_test_points(source_nb)
    stub_causes = {c: p for c, p in causes["stub"].items() if p}
    alts = [AlternativeOutcome(a, results[f"alternative-{a.name}"])
            for a in load_alternatives(mutants_file(root, assignment))]
    return SuiteReport(
        assignment, points, results["solution"], results["stub"], outcomes, stub_causes, alts
    )


def evaluate(
    root: str | Path,
    assignment: str,
    *,
    workdir: str | Path | None = None,
    progress: bool = False,
    engine: str = "parallel",
) -> SuiteReport:
    """Grade solution, stubs and every declared mutant of ``assignment``; return the report."""
    return evaluate_all(root, [assignment], workdir=workdir, progress=progress,
                        engine=engine)[assignment]


def evaluate_all(
    root: str | Path,
    assignments: list[str],
    *,
    workdir: str | Path | None = None,
    progress: bool = False,
    engine: str = "parallel",
) -> dict[str, SuiteReport]:
    """:func:`evaluate` for several assignments, graded together in one run."""
    trial = grade_trial(root, {a: suite_submissions(root, a) for a in assignments},
                        engine=engine, progress=progress, workdir=workdir)
    return {a: suite_report(root, a, trial) for a in assignments}
