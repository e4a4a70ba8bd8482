"""A later notebook never gives away an earlier one (issue 17, item 6).

The kit ships every release notebook at once, so a student working on notebook ``0k`` can open
every later one. This proves that nothing *given* in a later release notebook (its code cells
that are neither answer cells nor test cells: the setup, given helpers, demos) earns points in
an earlier one: pasted into the earlier release notebook, the given definitions score exactly
what the untouched stubs score (zero, by ``tests/test_stubs_fail.py``), cell by cell.

How a student would paste: the given functions and classes of the later notebook replace a stub
of the same name. To give them every chance, their top-level definitions (imports, functions,
classes) go into a new cell right before *every* test cell of the earlier notebook, so that
whatever the earlier notebook's own stubs defined, the later notebook's definition is the one
the test sees. The submissions (per earlier assignment: its untouched stubs and one submission
per later notebook) are graded like a student's by the kit's class grader (judge and sandbox
included), in the session's shared class (``gates_class``, tests/conftest.py). A control proves
that pasting reaches the tests: the first assignment's own reference answers, pasted the same
way, earn points.
"""

from __future__ import annotations

import ast

import nbformat
import pytest

from grader.course.release import release_notebook, source_notebook
from grader.course.submissions import (
    is_answer_cell,
    is_autograded_test,
    nbgrader_meta,
    reference_answers,
)

from .conftest import ASSIGNMENTS, ROOT

_DEFINITIONS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)


def given_code_cells(nb) -> list[str]:
    """Sources of the code cells a student receives as they are: not answers, not tests."""
    return [c.source for c in nb.cells
            if c.cell_type == "code" and not is_answer_cell(c)
            and not nbgrader_meta(c).get("grade")]


def given_definitions(nb) -> str:
    """The imports, functions and classes defined at top level by the given code cells.

    IPython magics (``%matplotlib inline``) are dropped first; demo statements (plots, training
    runs) are left out: they define no function a test could call.
    """
    return definitions(given_code_cells(nb))


def definitions(sources: list[str]) -> str:
    """The top-level imports, functions and classes of ``sources``, as one cell."""
    out = []
    for source in sources:
        code = "\n".join(ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!")))
        tree = ast.parse(code)
        out += [ast.get_source_segment(code, node) for node in tree.body
                if isinstance(node, _DEFINITIONS)]
    return "\n\n\n".join(out)


def paste_before_every_test(nb, code: str):
    """A copy of ``nb`` with a plain code cell holding ``code`` before each autograded test."""
    out = nbformat.from_dict(nb)
    cells = []
    for cell in out.cells:
        if is_autograded_test(cell):
            cells.append(nbformat.v4.new_code_cell(code))
        cells.append(cell)
    out.cells = cells
    return out


def _is_code(source: str) -> bool:
    try:
        ast.parse(source)
    except SyntaxError:
        return False  # a written answer
    return True


PAIRS = [(earlier, [later for later in ASSIGNMENTS[k + 1:]])
         for k, earlier in enumerate(ASSIGNMENTS[:-1])]


def test_given_definitions_are_found():
    """The extraction sees the given helpers (a notebook with given code gives something)."""
    found = {a: given_definitions(nbformat.read(release_notebook(ROOT, a), as_version=4))
             for a in ASSIGNMENTS}
    assert any("def " in code or "class " in code for code in found.values()), found
    for code in found.values():
        ast.parse(code)


def gate_submissions(earlier: str) -> dict:
    """What this gate hands in to the shared class for ``earlier``: the untouched stubs
    (``stub``, as the mutants gate's), ``pasted-<later>`` per later notebook, and for the first
    assignment the ``control``."""
    laters = dict(PAIRS).get(earlier)
    if not laters:
        return {}
    release = nbformat.read(release_notebook(ROOT, earlier), as_version=4)
    submissions = {"stub": release}
    if earlier == ASSIGNMENTS[0]:
        # the control: the assignment's own reference answers, pasted the same way, must earn
        # points (the pasted definitions do reach the tests)
        answers = reference_answers(nbformat.read(source_notebook(ROOT, earlier), as_version=4))
        code = definitions([a for a in answers.values() if _is_code(a)])
        submissions["control"] = paste_before_every_test(release, code)
    for later in laters:
        given = given_definitions(nbformat.read(release_notebook(ROOT, later), as_version=4))
        submissions[f"pasted-{later}"] = paste_before_every_test(release, given)
    return submissions


@pytest.mark.parametrize("earlier,laters", PAIRS, ids=[p[0] for p in PAIRS])
def test_later_given_code_earns_nothing_in_earlier_notebook(earlier, laters, gates_class):
    results = {s: gates_class.results[earlier, s] for s in gate_submissions(earlier)}
    assert all(r.success for r in results.values()), {s: r.error for s, r in results.items()}
    stub = results["stub"].cells
    assert stub and results["stub"].auto_score == 0, stub
    if "control" in results:
        assert results.pop("control").auto_score > 0, "pasted definitions do not reach the tests"
    for student, res in results.items():
        earned = {cell: score for cell, (score, _) in res.cells.items() if score > stub[cell][0]}
        assert not earned, (
            f"the given code of {student.removeprefix('pasted-')}, pasted into {earlier}, "
            f"earns points there: {earned}")
