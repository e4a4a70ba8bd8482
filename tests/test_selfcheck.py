"""The student's self-check and JupyterLab's Validate button agree with the grader.

* Gate: no test cell ends in an expression (Jupyter would show its value and nbgrader would
  read a number there as partial credit): checked on the graded source and on the visible part
  students get.
* nbgrader's real ``Validator`` (what the Validate button calls): the solution passes, the
  untouched stub fails on every test cell.
* ``grader.selfcheck`` and nbgrader's rule fail exactly the declared cells of a few mutants per
  notebook (cells caught only by hidden tests excepted); the full table:
  ``dlgrader selfcheck-agreement``.
"""

from __future__ import annotations

import ast

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from grader import selfcheck
from grader.course import selfcheck_agreement
from grader.course.release import release_notebook, source_notebook
from grader.course.submissions import fill, load_mutants, reference_answers
from grader.engine.configuration import ensure_environment_on_path

from .conftest import ASSIGNMENTS, ROOT, add_report

HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


def _visible_part(source: str) -> str:
    out, hidden = [], False
    for line in source.split("\n"):
        if HIDDEN_BEGIN in line:
            hidden = True
        elif HIDDEN_END in line:
            hidden = False
        elif not hidden:
            out.append(line)
    return "\n".join(out)


#: checks that return None: a last-line call to one of them shows no value (docs/AUTHORING.md)
SILENT_CHECKS = ("assert_close", "assert_shape", "assert_finite", "assert_no_loops")


def test_silent_checks_return_none():
    import numpy as np

    from grader import checks

    assert checks.assert_close(np.ones(2), np.ones(2), "x") is None
    assert checks.assert_shape(np.ones(2), (2,), "x") is None
    assert checks.assert_finite(np.ones(2), "x") is None
    assert checks.assert_no_loops(lambda x: x + 1, "f") is None


def _ends_in_expression(source: str) -> str | None:
    """The last top-level statement's source when it is an expression that can show a value
    (anything but a call to one of SILENT_CHECKS), else None."""
    body = ast.parse(source).body
    if body and isinstance(body[-1], ast.Expr):
        value = body[-1].value
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) \
                and value.func.id in SILENT_CHECKS:
            return None
        return ast.get_source_segment(source, body[-1]).splitlines()[0]
    return None


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_no_test_cell_ends_in_an_expression(assignment):
    nb = nbformat.read(source_notebook(ROOT, assignment), as_version=4)
    bad = []
    for cell in nb.cells:
        if not selfcheck.is_graded_test(cell):
            continue
        gid = cell.metadata.nbgrader["grade_id"]
        for part, source in (("graded", cell.source), ("visible", _visible_part(cell.source))):
            last = _ends_in_expression(source)
            if last is not None:
                bad.append(f"{gid} ({part} part) ends in `{last}`")
    assert not bad, ("test cells must end with a statement (`_err = check(...)`), or Validate "
                     "reads their value as partial credit:\n" + "\n".join(bad))


def test_gate_sees_expressions_in_either_part():
    graded = f"x = 1\nf(x)\n{HIDDEN_BEGIN}\n_y = f(2)\n{HIDDEN_END}"
    assert _ends_in_expression(graded) is None
    assert _ends_in_expression(_visible_part(graded)) == "f(x)"
    assert _ends_in_expression("_err = check(f)\n") is None


def _test_cell(*outputs, points=2):
    cell = new_code_cell("_x = 1", outputs=list(outputs))
    cell.metadata.nbgrader = {"grade": True, "solution": False, "grade_id": "t", "points": points}
    return cell


@pytest.mark.parametrize("outputs, passed", [
    ((), True),
    ((new_output("stream", name="stderr", text="RuntimeWarning: overflow\n"),), True),
    ((new_output("execute_result", data={"text/plain": "2.0"}, execution_count=1),), True),
    ((new_output("execute_result", data={"text/plain": "'done'"}, execution_count=1),), True),
    ((new_output("execute_result", data={"text/plain": "5.9e-12"}, execution_count=1),), False),
    ((new_output("execute_result", data={"text/plain": "6.0"}, execution_count=1),), False),
    ((new_output("execute_result", data={"text/plain": "-6.0"}, execution_count=1),), True),
    ((new_output("error", ename="AssertionError", evalue="sign error", traceback=[]),), False),
])
def test_verdict_follows_the_graders_rule(outputs, passed):
    result = selfcheck.verdict(_test_cell(*outputs))
    assert result.passed is passed
    assert (result.message == "") is passed


def test_report_names_each_failure_with_its_message():
    error = new_output("error", ename="AssertionError", evalue="mse_loss: forgot ÷n\nmore",
                       traceback=["frame 1", "AssertionError: mse_loss: forgot ÷n"])
    nb = new_notebook(cells=[_test_cell(), _test_cell(error, points=1)])
    nb.cells[1].metadata.nbgrader["grade_id"] = "test_loss"
    text = selfcheck.report("nb.ipynb", selfcheck.verdicts(nb))
    assert "passed  t  (2 points)" in text
    assert "FAILED  test_loss  (1 point)" in text
    assert "AssertionError: mse_loss: forgot ÷n" in text and "frame 1" not in text
    assert "1 of 2 tests failed (2/3 visible points)" in text


def _solution(assignment):
    release = nbformat.read(release_notebook(ROOT, assignment), as_version=4)
    answers = reference_answers(nbformat.read(source_notebook(ROOT, assignment), as_version=4))
    return fill(release, answers)


def _write_beside_release(nb, assignment, tmp_path):
    """Write ``nb`` where a student has it (its own folder), with the release's data files."""
    path = tmp_path / assignment / f"{assignment}.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(nb, path)
    return path


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_validate_button_says_success_on_solution_and_fails_every_test_of_stub(
        assignment, tmp_path, validate_release):
    from nbgrader.validator import Validator

    ensure_environment_on_path()
    path = _write_beside_release(_solution(assignment), assignment, tmp_path)
    result = Validator().validate(str(path))
    failed = [c["raw_error"].splitlines()[-1:] for c in result.get("failed", [])]
    assert result == {}, f"Validate on the solution: {sorted(result)} {failed}"

    stub = release_notebook(ROOT, assignment)
    tests = {c.source.strip() for c in nbformat.read(stub, as_version=4).cells
             if selfcheck.is_graded_test(c)}
    result = validate_release(assignment)  # the release, validated once per session
    assert sorted(result) == ["failed"], sorted(result)
    # the stub also fails its unanswered hand-graded cells ("You did not provide a response")
    assert tests <= {c["source"] for c in result["failed"]}


def test_command_exit_codes_and_report(tmp_path, capsys):
    assignment = ASSIGNMENTS[0]
    solved = _write_beside_release(_solution(assignment), assignment, tmp_path)
    assert selfcheck.main([str(solved)]) == 0
    assert "visible tests passed" in capsys.readouterr().out
    assert selfcheck.main([str(release_notebook(ROOT, assignment))]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "not answered yet" in out


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_selfcheck_and_validate_fail_where_the_grader_does(assignment):
    """Solution, stub, and the first and last declared mutant (the full table: --mutants)."""
    mutants = load_mutants(ROOT / "solutions" / f"{assignment}.mutants.toml")
    names = sorted({mutants[0].name, mutants[-1].name})
    rows = selfcheck_agreement.agreement(ROOT, assignment, mutants=names)
    add_report(selfcheck_agreement.agreement_table(rows))
    verdicts = {r["variant"]: selfcheck_agreement.classify(r) for r in rows}
    assert verdicts["solution"] == "exact" and verdicts["stub"] == "exact", verdicts
    wrong = {k: v for k, v in verdicts.items() if v != "exact" and not v.startswith("hidden")}
    assert not wrong, wrong
    assert len(rows) == 2 + len(names)
