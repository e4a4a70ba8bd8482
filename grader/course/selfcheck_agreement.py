"""Does the student's self-check (``dlcheck``) fail exactly where the grader does?

``dlgrader selfcheck-agreement [ASSIGNMENT ...]`` runs, for every assignment, the solution, the
untouched stub and each declared known bug (``solutions/<assignment>.mutants.toml``) once, and
compares the failed test cells three ways: declared, :mod:`grader.selfcheck`'s verdicts, and
nbgrader's own rule (what Validate applies). Cells that only hidden tests catch may differ.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from grader.course.mutants import mutants_file
from grader.course.release import (
    available_assignments,
    release_notebook,
    repo_root,
    source_notebook,
)
from grader.course.submissions import (
    fill,
    load_mutants,
    mutate,
    nbgrader_meta,
    reference_answers,
    without_trailing_experiments,
)
from grader.engine.configuration import CELL_TIMEOUT
from grader.selfcheck import execute, is_graded_test, verdicts


def agreement(root: str | Path, assignment: str, mutants: list[str] | None = None) -> list[dict]:
    """Instructor check: does the self-check fail exactly where the grader does?

    For the solution, the untouched stub and each declared mutant (or those named), run
    the notebook once, without the plain code cells after its last test (they cannot change a
    test: :func:`~grader.course.submissions.without_trailing_experiments`), and compare three
    sets of failed test cells: the declared ones (none, all, ``caught_by``),
    :mod:`grader.selfcheck`'s verdicts, and nbgrader's own rule
    (``nbgrader.utils.determine_grade``, what Validate applies to the executed cells).
    """
    from nbgrader.utils import determine_grade

    release = nbformat.read(release_notebook(root, assignment), as_version=4)
    answers = reference_answers(nbformat.read(source_notebook(root, assignment), as_version=4))
    tests = [nbgrader_meta(c)["grade_id"] for c in release.cells if is_graded_test(c)]
    variants = [("solution", fill(release, answers), set()), ("stub", release, set(tests))]
    path = mutants_file(root, assignment)
    declared = load_mutants(path) if path.is_file() else []
    variants += [(f"mutant {m.name}", fill(release, mutate(answers, m)), set(m.caught_by))
                 for m in declared if mutants is None or m.name in mutants]
    rows = []
    for name, nb, declared in variants:
        # the failed test cells are settled before the closing experiments run: skip them
        executed = execute(without_trailing_experiments(nb),
                           release_notebook(root, assignment).parent, timeout=CELL_TIMEOUT)
        ours = {r.grade_id for r in verdicts(executed) if not r.passed}
        theirs = set()
        for cell in executed.cells:
            if is_graded_test(cell):
                try:
                    score, points = determine_grade(cell)
                except ValueError:  # partial credit above the points: Validate crashes
                    score, points = 0, 1
                if score < points:
                    theirs.add(nbgrader_meta(cell)["grade_id"])
        rows.append({"assignment": assignment, "variant": name, "declared": declared,
                     "selfcheck": ours, "validate": theirs})
    return rows


def classify(row: dict) -> str:
    """``exact``; ``hidden only: ...`` (cells only hidden tests catch); else what is wrong."""
    declared, ours, theirs = row["declared"], row["selfcheck"], row["validate"]
    if ours != theirs:
        return f"DISAGREE: selfcheck {sorted(ours ^ theirs)} vs validate"
    if ours - declared:
        return f"EXTRA: fails {sorted(ours - declared)}, which the grader passes"
    if declared - ours:
        return f"hidden only: {', '.join(sorted(declared - ours))}"
    return "exact"


def agreement_table(rows: list[dict]) -> str:
    """Markdown table of :func:`agreement` rows: declared cells, visible failures, verdict."""
    out = ["| assignment | variant | declared | failed (selfcheck = validate) | verdict |",
           "|---|---|---|---|---|"]
    for r in rows:
        failed = r["selfcheck"] | r["validate"]
        shown = "same" if failed == r["declared"] and failed else ", ".join(sorted(failed))
        out.append(f"| {r['assignment']} | {r['variant']} | {len(r['declared'])} | "
                   f"{shown or '-'} | {classify(r)} |")
    return "\n".join(out)


def main(assignments: list[str], root: str | Path | None = None) -> int:
    """Print the agreement table of ``assignments`` (default all) of the course ``root``
    (default: this checkout); 0 when every row agrees or differs only where hidden tests catch."""
    root = root or repo_root()
    rows = []
    for assignment in assignments or available_assignments(root):
        rows += agreement(root, assignment)
    print(agreement_table(rows))
    verdicts_ = [classify(r) for r in rows]
    exact = sum(v == "exact" for v in verdicts_)
    hidden = sum(v.startswith("hidden only") for v in verdicts_)
    print(f"{len(rows)} variants: {exact} exact, {hidden} differ only in cells that hidden "
          f"tests catch, {len(rows) - exact - hidden} wrong")
    return 0 if exact + hidden == len(rows) else 1
