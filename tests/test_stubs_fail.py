"""Every autograded test cell fails on the untouched student stubs.

``nbgrader validate --invert`` always exits 0 (nbgrader #1908), so this asserts on the
validator's result instead: every grade cell of the release must be among the cells it lists
as failed (a grade cell with a score either passed, score = max, or failed, score < max: this is
the inverted validator's "no cell passed"). The validation is the session's one run per
assignment (``validate_release``, tests/conftest.py), shared with tests/test_selfcheck.py.
"""

from collections import Counter

import nbformat
import pytest

from grader.course.release import release_notebook
from grader.course.submissions import is_autograded_test

from .conftest import ASSIGNMENTS, ROOT


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_validator_finds_no_passing_test_cell_on_stubs(assignment, validate_release):
    path = release_notebook(ROOT, assignment)
    tests = [c.source.strip() for c in nbformat.read(path, as_version=4).cells
             if is_autograded_test(c)]
    assert tests
    result = validate_release(assignment)
    assert "type_changed" not in result and "changed" not in result, result
    failed = Counter(c["source"] for c in result.get("failed", []))
    passed = [src.splitlines()[0] for src, n in Counter(tests).items() if failed[src] < n]
    assert not passed, f"{len(passed)} of {len(tests)} test cells pass on the stubs: {passed}"
