"""Autograde through nbgrader's real gradebook: solution full marks, stubs zero, every mutant
loses exactly the points of the tests declared to catch it. The tables are printed at the end
of the run."""

import pytest

from grader.mutants import evaluate, mutants_file

from .conftest import ASSIGNMENTS, ROOT, add_report


@pytest.fixture(scope="module", params=ASSIGNMENTS)
def report(request):
    rep = evaluate(ROOT, request.param)
    add_report(rep.table())
    return rep


def test_every_graded_function_has_a_mutant(report):
    import nbformat

    from grader.release import source_notebook
    from grader.submissions import is_answer_cell, load_mutants, nbgrader_meta

    nb = nbformat.read(source_notebook(ROOT, report.assignment), as_version=4)
    code_answers = {nbgrader_meta(c)["grade_id"] for c in nb.cells
                    if is_answer_cell(c) and c.cell_type == "code"}
    mutated = {m.cell for m in load_mutants(mutants_file(ROOT, report.assignment))}
    assert code_answers <= mutated, f"no mutant for {sorted(code_answers - mutated)}"


def test_every_test_cell_has_points(report):
    assert report.test_points and all(p > 0 for p in report.test_points.values())


def test_solution_gets_full_marks(report):
    sol = report.solution
    assert sol.success, sol.error
    failed = {k: v for k, v in sol.cells.items() if v[0] != v[1]}
    assert not failed, f"reference solution fails {failed}"
    assert sol.auto_max == sum(report.test_points.values())


def test_untouched_stubs_get_zero(report):
    stub = report.stub
    assert stub.success, stub.error
    assert stub.auto_score == 0, {k: v for k, v in stub.cells.items() if v[0]}


def test_each_mutant_loses_exactly_the_declared_points(report):
    assert report.mutants, "no mutants declared"
    problems = []
    for m in report.mutants:
        if not m.result.success:
            problems.append(f"{m.mutant.name}: grading failed: {m.result.error}")
        elif not m.as_declared:
            problems.append(
                f"{m.mutant.name}: zeroed {sorted(m.zeroed)} (partial {sorted(m.partial)}), "
                f"declared {sorted(m.mutant.caught_by)}"
            )
        else:
            lost = report.solution.auto_score - m.result.auto_score
            assert lost == sum(report.test_points[c] for c in m.mutant.caught_by)
    assert not problems, "\n".join(problems)
