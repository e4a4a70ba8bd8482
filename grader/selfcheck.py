"""Check your notebook before you hand it in: ``dlcheck NOTEBOOK``.

``dlcheck`` (or ``python -m grader.selfcheck NOTEBOOK``) runs the whole notebook from the top
in a fresh kernel, as the grader will, and says for every graded test cell whether it passed,
and why not when it failed. The exit code is 0 only when every test passed. Only the visible
tests run here; the hidden ones run when your notebook is graded.

A test cell fails when it raises an error, or (nbgrader's rule) when its last line shows a
number below the cell's points, which nbgrader reads as partial credit. Text written to stderr
(warnings, debug prints) does not fail a cell: the grader ignores it too.

Whether this check and nbgrader's Validate agree on each declared known bug is the instructor's
question: ``dlgrader selfcheck-agreement`` (:mod:`grader.course.selfcheck_agreement`).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

MAX_MESSAGE_LINES = 12


@dataclass(frozen=True)
class CellResult:
    """The verdict on one graded test cell."""

    grade_id: str
    points: float
    passed: bool
    message: str = ""


def _meta(cell: NotebookNode) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_graded_test(cell: NotebookNode) -> bool:
    """An autograded test cell: nbgrader ``grade: true``, not an answer cell, code."""
    meta = _meta(cell)
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


def _partial_credit(output: NotebookNode) -> float | None:
    """The number nbgrader reads from a cell's result, or None when it reads none."""
    text = output.get("data", {}).get("text/plain")
    if text is None:
        return None
    try:
        return float(text if isinstance(text, str) else "".join(text))
    except ValueError:
        return None


def error_message(output: NotebookNode) -> str:
    """``Name: message`` of an error output (the diagnosis; no library frames)."""
    if output.get("ename") == "NotImplementedError" and not output.get("evalue"):
        return ("NotImplementedError: not answered yet: an exercise this test uses still has "
                "`raise NotImplementedError()`")
    text = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}".rstrip()
    lines = text.splitlines() or [text]
    if len(lines) > MAX_MESSAGE_LINES:
        lines = lines[:MAX_MESSAGE_LINES] + ["..."]
    return "\n".join(lines)


def verdict(cell: NotebookNode) -> CellResult:
    """Judge one executed graded test cell as the grader does."""
    meta = _meta(cell)
    points = float(meta.get("points", 0))
    for output in cell.get("outputs", []):
        if output.output_type == "error":
            return CellResult(meta.get("grade_id", "?"), points, False, error_message(output))
        if output.output_type == "execute_result":
            score = _partial_credit(output)
            if score is not None and score >= 0 and score != points:  # nbgrader's rule
                effect = ("more than the cell's points: Validate crashes" if score > points
                          else f"partial credit: {score:g} of {points:g} points")
                msg = (f"the test cell's last line shows {score:g}, which nbgrader reads as "
                       f"{effect}. The test cell must end with a statement: tell your teacher")
                return CellResult(meta.get("grade_id", "?"), points, False, msg)
    return CellResult(meta.get("grade_id", "?"), points, True)


def verdicts(executed: NotebookNode) -> list[CellResult]:
    """Verdicts on every graded test cell of an executed notebook, in notebook order."""
    return [verdict(c) for c in executed.cells if is_graded_test(c)]


def execute(nb: NotebookNode, cwd: str | Path, timeout: int = 300) -> NotebookNode:
    """Run ``nb`` top to bottom in a fresh kernel (errors recorded, not raised); return it."""
    from nbclient import NotebookClient

    nb = nbformat.from_dict(nb)  # leave the caller's notebook alone
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    kernel = nb.metadata.get("kernelspec", {}).get("name", "python3")
    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel, allow_errors=True,
                            resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return nb


def check(path: str | Path, timeout: int = 300) -> list[CellResult]:
    """Run the notebook at ``path`` (in its own directory) and judge its graded test cells."""
    path = Path(path).resolve()
    nb = nbformat.read(path, as_version=4)
    return verdicts(execute(nb, path.parent, timeout))


def report(name: str, results: list[CellResult]) -> str:
    """What a student reads: one line per test, the message under each failure, a summary."""
    lines = [name]
    for r in results:
        mark = "passed" if r.passed else "FAILED"
        lines.append(f"  {mark}  {r.grade_id}  ({r.points:g} point{'s' * (r.points != 1)})")
        if not r.passed:
            lines += ["          " + ln for ln in r.message.splitlines()]
    failed = [r for r in results if not r.passed]
    got = sum(r.points for r in results if r.passed)
    total = sum(r.points for r in results)
    if not results:
        lines.append("  no graded test cells found: is this a course notebook?")
    elif failed:
        lines.append(f"  {len(failed)} of {len(results)} tests failed ({got:g}/{total:g} visible "
                     f"points). Fix the first failure first: later tests often use earlier "
                     f"answers.")
    else:
        lines.append(f"  all {len(results)} visible tests passed ({got:g}/{total:g} points). "
                     f"Hidden tests run when your notebook is graded.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dlcheck", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="notebook files to check")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per cell")
    parser.add_argument("--mutants", nargs="*", metavar="ASSIGNMENT", default=None,
                        help=argparse.SUPPRESS)  # moved to the instructor's command line
    args = parser.parse_args(argv)
    if args.mutants is not None:
        print("dlcheck --mutants moved: the instructor runs `dlgrader selfcheck-agreement "
              "[ASSIGNMENT ...]` in the course checkout", file=sys.stderr)
        return 2
    if not args.notebooks:
        parser.error("name a notebook, e.g. dlcheck notebooks/01_linear_regression/"
                     "01_linear_regression.ipynb")
    ok = True
    for path in args.notebooks:
        try:
            import nbformat

            nbformat.read(path, as_version=4)
        except Exception as exc:  # missing, unreadable or not a notebook: one line, exit 2
            print(f"dlcheck: cannot read {path}: {type(exc).__name__}: {exc}".splitlines()[0],
                  file=sys.stderr)
            return 2
        results = check(path, args.timeout)
        print(report(str(path), results))
        ok &= bool(results) and all(r.passed for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
