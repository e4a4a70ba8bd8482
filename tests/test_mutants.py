"""Autograde through nbgrader's real gradebook: solution full marks, stubs zero, every mutant
loses exactly the points of the tests declared to catch it, and gets the diagnosis declared for
it (no message names a wrong cause). The tables are printed at the end of the run.

Every assignment's suite is graded in the session's shared class (``gates_class`` in
tests/conftest.py: one run of the class grader for all the gates that read grades)."""

import nbformat
import pytest

from grader.course.mutants import (
    MutantOutcome,
    failing_cell_causes,
    mutants_file,
    suite_report,
    suite_submissions,
)
from grader.course.submissions import Mutant, load_alternatives, load_mutants
from grader.engine.nbgrader_api import GradeResult

from .conftest import ASSIGNMENTS, ROOT, UNTRIMMED, add_report


def gate_submissions(assignment):
    """What this gate hands in to the shared class: solution, stubs, mutants, alternatives."""
    return suite_submissions(ROOT, assignment)


@pytest.fixture(scope="module", params=ASSIGNMENTS)
def report(request, gates_class):
    rep = suite_report(ROOT, request.param, gates_class)
    add_report(rep.table())
    return rep


def test_every_graded_function_has_a_mutant(report):
    import nbformat

    from grader.course.release import source_notebook
    from grader.course.submissions import is_answer_cell, load_mutants, nbgrader_meta

    nb = nbformat.read(source_notebook(ROOT, report.assignment), as_version=4)
    code_answers = {nbgrader_meta(c)["grade_id"] for c in nb.cells
                    if is_answer_cell(c) and c.cell_type == "code"}
    mutated = {m.cell for m in load_mutants(mutants_file(ROOT, report.assignment))}
    by_hand = _read_by_hand(nb, mutants_file(ROOT, report.assignment))
    assert code_answers <= mutated | set(by_hand), (
        f"no mutant for {sorted(code_answers - mutated - set(by_hand))}")


def _read_by_hand(nb, path) -> dict[str, str]:
    """``[read_by_hand]`` cells of a mutants file (answer cells graded through a written question):
    none of the names such a cell assigns at its top level may appear in an autograded test cell."""
    import ast
    import re
    import tomllib

    from grader.course.submissions import is_autograded_test, nbgrader_meta

    with open(path, "rb") as fh:
        by_hand = tomllib.load(fh).get("read_by_hand", {})
    tests = "\n".join(c.source for c in nb.cells if is_autograded_test(c))
    cells = {nbgrader_meta(c).get("grade_id"): c.source for c in nb.cells}
    for cell, reason in by_hand.items():
        assert cell in cells and reason, f"read_by_hand: no cell {cell!r} (or no reason)"
        top = [n for n in ast.parse(cells[cell]).body if isinstance(n, ast.Assign)]
        names = {e.id for node in top for t in node.targets
                 for e in (t.elts if isinstance(t, ast.Tuple) else [t]) if isinstance(e, ast.Name)}
        used = sorted(n for n in names if re.search(rf"\b{re.escape(n)}\b", tests))
        assert not used, f"{cell} is read by autograded tests ({used}): give it a mutant"
    return by_hand


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


def test_every_alternative_gets_full_marks(report):
    rejected = [f"{a.alternative.name}: {a.result.error or a.lost}"
                for a in report.alternatives if not a.accepted]
    assert not rejected, "other correct answers lose points:\n" + "\n".join(rejected)


def test_declared_diagnoses_are_named(report):
    missed = [
        f"{m.mutant.name}: declared {m.mutant.diagnosis!r}, named {m.named}"
        for m in report.mutants
        if m.mutant.diagnosis is not None and m.caught and not m.right_cause
    ]
    assert not missed, "\n".join(missed)


def test_no_message_names_a_wrong_cause(report):
    wrong = [f"{m.mutant.name}: {m.wrong_causes} (declared {m.mutant.diagnosis!r})"
             for m in report.mutants if m.wrong_causes]
    assert not wrong, "\n".join(wrong)
    assert not report.stub_causes, f"an untouched stub is blamed on {report.stub_causes}"
    assert report.diagnosis_counts()["wrong-cause messages"] == 0
    assert not [p for p in report.problems() if "cause" in p]


# --- the bookkeeping, on made-up data (no grading) ---------------------------------------

def _outcome(diagnosis, causes, zeroed=("t1",)):
    m = Mutant("m", "c", "a", "b", tuple(zeroed), diagnosis=diagnosis)
    res = GradeResult("s", "a", True, cells={"t1": (0.0, 1.0), "t2": (1.0, 1.0)})
    return MutantOutcome(m, res, set(zeroed), set(), causes)


def test_outcome_judges_named_causes_against_the_declared_one():
    right = _outcome("the bias is left out", {"t1": ["the bias is left out (in predict)"]})
    assert right.right_cause and right.wrong_causes == [] and right.unverified == []
    wrong = _outcome("the bias is left out", {"t1": ["the bias is left out", "a sign"]})
    assert not wrong.right_cause and wrong.wrong_causes == ["a sign"]
    unnamed = _outcome("the bias is left out", {})
    assert not unnamed.right_cause and unnamed.wrong_causes == []
    silent = _outcome("", {})
    assert silent.right_cause
    blamed = _outcome("", {"t1": ["a sign"]})
    assert not blamed.right_cause and blamed.wrong_causes == ["a sign"]
    undeclared = _outcome(None, {"t1": ["a sign"]})
    assert not undeclared.right_cause and undeclared.wrong_causes == []
    assert undeclared.unverified == ["a sign"]


def test_causes_are_read_from_error_outputs_of_graded_cells(tmp_path):
    def cell(gid, evalue):
        c = nbformat.v4.new_code_cell("pass")
        c.metadata["nbgrader"] = {"grade_id": gid, "grade": True, "points": 1}
        if evalue is not None:
            c.outputs = [nbformat.v4.new_output("error", ename="AssertionError", evalue=evalue,
                                                traceback=[])]
        return c

    nb = nbformat.v4.new_notebook(cells=[
        cell("t1", "x differs\nlikely cause: the bias is left out"),
        cell("t2", "x differs by 3"),
        cell("t3", None),
    ])
    path = tmp_path / "a.ipynb"
    nbformat.write(nb, path)
    assert failing_cell_causes(path) == {"t1": ["the bias is left out"], "t2": []}


def test_diagnosis_field_is_optional_and_one_line(tmp_path):
    path = tmp_path / "a.mutants.toml"
    base = 'name = "{}"\ncell = "c"\nfind = "a"\nreplace = "b"\ncaught_by = ["t"]\n'
    path.write_text(
        "[[mutant]]\n" + base.format("m1") + 'diagnosis = "the bias is left out"\n'
        + "[[mutant]]\n" + base.format("m2") + 'diagnosis = ""\n'
        + "[[mutant]]\n" + base.format("m3")
    )
    assert [m.diagnosis for m in load_mutants(path)] == ["the bias is left out", "", None]
    assert load_alternatives(path) == []
    path.write_text(path.read_text() + '[[alternative]]\nname = "a1"\ncell = "c"\n'
                    'find = "a"\nreplace = "c"\n')
    (alt,) = load_alternatives(path)
    assert (alt.name, alt.caught_by, alt.diagnosis) == ("a1", (), None)
    assert len(load_mutants(path)) == 3
    path.write_text("[[mutant]]\n" + base.format("m1") + 'diagnosis = "two\\nlines"\n')
    with pytest.raises(ValueError, match="one line"):
        load_mutants(path)


def test_report_problems_and_counts():
    from grader.course.mutants import SuiteReport

    ok = GradeResult("solution", "a", True, cells={"t1": (1.0, 1.0), "t2": (1.0, 1.0)})
    stub = GradeResult("stub", "a", True, cells={"t1": (0.0, 1.0), "t2": (0.0, 1.0)})
    report = SuiteReport("a", {"t1": 1.0, "t2": 1.0}, ok, stub, [
        _outcome("p", {"t1": ["p"]}),
        _outcome("p", {"t1": ["q"]}),
        _outcome("p", {}),
        _outcome(None, {"t1": ["r"]}),
    ])
    assert report.diagnosis_counts() == {
        "bugs": 4, "caught": 4, "declared": 3, "right cause": 1,
        "wrong-cause messages": 1, "unverified": 1, "alternatives": 0, "alternatives accepted": 0,
    }
    assert report.problems() == ["m: wrong cause ['q']", "m: 'p' is not named"]
    assert "WRONG CAUSE" in report.table() and "cause unverified" in report.table()
    report.stub_causes = {"t1": ["p"]}
    assert report.diagnosis_counts()["wrong-cause messages"] == 2
    assert "stubs are blamed" in report.problems()[0]


def test_alternative_outcome_needs_full_marks_everywhere():
    from grader.course.mutants import AlternativeOutcome

    alt = Mutant("expit", "c", "a", "b", ())
    full = GradeResult("s", "a", True, cells={"t1": (1.0, 1.0), "t2": (2.0, 2.0)})
    assert AlternativeOutcome(alt, full).accepted
    part = GradeResult("s", "a", True, cells={"t1": (1.0, 1.0), "t2": (0.0, 2.0)})
    assert not AlternativeOutcome(alt, part).accepted
    assert AlternativeOutcome(alt, part).lost == ["t2"]
    assert not AlternativeOutcome(alt, GradeResult("s", "a", False, error="boom")).accepted


def test_trimming_changes_no_grade(gates_class):
    """The gates grade submissions without their trailing experiments
    (``grader.course.submissions.without_trailing_experiments``); one bug per assignment is
    also graded whole: the same points in every test cell, the same messages and named
    causes."""
    twins = [(a, s[len(UNTRIMMED):]) for (a, s) in gates_class.results if s.startswith(UNTRIMMED)]
    assert {a for a, _ in twins} == set(ASSIGNMENTS)
    for assignment, bug in twins:
        whole, trimmed = (assignment, UNTRIMMED + bug), (assignment, bug)
        assert gates_class.results[trimmed].cells == gates_class.results[whole].cells, bug
        assert gates_class.messages[whole], bug  # the bug fails some test cell
        assert gates_class.messages[trimmed] == gates_class.messages[whole], bug
        assert gates_class.causes[trimmed] == gates_class.causes[whole], bug
