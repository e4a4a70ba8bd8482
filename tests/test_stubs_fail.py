"""Every autograded test cell fails on the untouched student stubs.

``nbgrader validate --invert`` always exits 0 (nbgrader #1908), so this asserts on the
validator's result instead: with ``invert=True`` it lists every grade cell that *passed*.
"""

import nbformat
import pytest

from grader.course.release import release_notebook
from grader.course.submissions import is_autograded_test
from grader.engine.configuration import ensure_environment_on_path

from .conftest import ASSIGNMENTS, ROOT


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_validator_finds_no_passing_test_cell_on_stubs(assignment):
    from nbgrader.validator import Validator

    ensure_environment_on_path()
    path = release_notebook(ROOT, assignment)
    n_tests = sum(map(is_autograded_test, nbformat.read(path, as_version=4).cells))
    assert n_tests > 0
    result = Validator(invert=True).validate(str(path))
    assert "type_changed" not in result and "changed" not in result, result
    passed = [c["source"].splitlines()[0] for c in result.get("passed", [])]
    assert not passed, f"{len(passed)} of {n_tests} test cells pass on the stubs: {passed}"
