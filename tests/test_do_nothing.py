"""Points only for correct work (issue 20): "do-nothing" answers fail every graded test cell.

A test cell that checks a side property (no mutation, a shape, no loops, a call order) must
also check the value, or an answer that does nothing earns its points. For every assignment
the gate fills the release notebook with the reference answers in which every function and
every method of every code answer cell is replaced by one of four do-nothing bodies:

* ``identity``: returns its first input (``None`` when it takes none);
* ``zeros``: returns zeros of its first input's shape (the expected shape wherever the output
  has the input's shape: activations, layers' forward and backward, masks), else ``0.0``;
* ``constant``: returns ``1.0``;
* ``anything``: returns an object that answers every call and every attribute (itself), and
  every instance of an answer's class answers every attribute too.

A class's ``__init__`` stores nothing (it cannot return anything). Each variant is one
submission, graded like a student's with the project's class grader (judge and sandbox
included); every autograded test cell must score 0 on every variant. Cells that don't are
listed with the variants that earn points there.
"""

from __future__ import annotations

import ast
import tempfile
from pathlib import Path

import nbformat
import numpy as np
import pytest

from grader.mutants import _grade_all
from grader.release import release_notebook, source_notebook
from grader.settings import SOURCE_DIR
from grader.submissions import (
    autograded_test_points,
    fill,
    reference_answers,
    write_submission,
)

from .conftest import ASSIGNMENTS, ROOT, add_report

VARIANTS = ("identity", "zeros", "constant", "anything")

ANYTHING = '''
class _Anything:
    """Answers every call and every attribute with itself."""

    def __call__(self, *args, **kwargs):
        return self

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self

    def __iter__(self):
        return iter(())

    def __len__(self):
        return 0


'''


def _first_input(fn: ast.FunctionDef, method: bool) -> str | None:
    params = [a.arg for a in fn.args.posonlyargs + fn.args.args]
    if method and params and not any(
            isinstance(d, ast.Name) and d.id == "staticmethod" for d in fn.decorator_list):
        params = params[1:]
    return params[0] if params else None


def _body(variant: str, first: str | None) -> list[ast.stmt]:
    if variant == "identity":
        code = f"return {first or 'None'}"
    elif variant == "zeros":
        code = (f"return np.zeros(np.shape({first})) if np.ndim({first}) else 0.0"
                if first else "return 0.0")
    elif variant == "constant":
        code = "return 1.0"
    elif variant == "anything":
        code = "return _Anything()"
    else:
        raise ValueError(variant)
    return ast.parse(code).body


def _nothing_in(fn: ast.FunctionDef, variant: str, method: bool) -> None:
    if method and fn.name == "__init__":
        fn.body = [ast.Pass()]
    elif variant == "zeros" and _first_input(fn, method):
        # np.shape of an arbitrary object may fail: then 0.0
        first = _first_input(fn, method)
        fn.body = ast.parse(
            f"try:\n    return np.zeros(np.shape({first})) if np.ndim({first}) else 0.0\n"
            "except Exception:\n    return 0.0\n").body
    else:
        fn.body = _body(variant, _first_input(fn, method))


def do_nothing(source: str, variant: str) -> str:
    """``source`` (a code answer) with every function and method doing nothing."""
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            _nothing_in(node, variant, method=False)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    _nothing_in(item, variant, method=True)
            if variant == "anything":
                node.body.append(ast.parse(
                    "def __getattr__(self, name):\n"
                    "    if name.startswith('__'):\n"
                    "        raise AttributeError(name)\n"
                    "    return _Anything()\n").body[0])
    head = "import numpy as np\n" + (ANYTHING if variant == "anything" else "")
    return head + ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def do_nothing_answers(answers: dict[str, str], variant: str) -> dict[str, str]:
    """The reference answers with every code answer doing nothing (written answers kept)."""
    out = {}
    for gid, source in answers.items():
        try:
            out[gid] = do_nothing(source, variant)
        except SyntaxError:  # a written (markdown) answer: graded by hand, left as it is
            out[gid] = source
    return out


# ----------------------------------------------------------------------------- the transform


SAMPLE = '''
def relu(x):
    return np.maximum(x, 0)


def no_args():
    return 3


class Layer:
    def __init__(self, n):
        self.W = np.ones(n)

    def forward(self, x):
        self.x = x
        return x * self.W

    def train(self):
        self.training = True
        return self

    @staticmethod
    def helper(a, b):
        return a + b
'''


@pytest.mark.parametrize("variant", VARIANTS)
def test_do_nothing_answers_do_nothing(variant):
    ns: dict = {}
    exec(compile(do_nothing(SAMPLE, variant), "<answer>", "exec"), ns)
    x = np.array([-1.0, 2.0])
    layer = ns["Layer"](2)
    outs = [ns["relu"](x), ns["no_args"](), layer.forward(x), layer.train(),
            ns["Layer"].helper(x, x)]
    if variant == "identity":
        assert outs[0] is x and outs[1] is None and outs[2] is x and outs[3] is None
    elif variant == "zeros":
        assert np.array_equal(outs[0], np.zeros(2)) and outs[1] == 0.0
        assert np.array_equal(outs[2], np.zeros(2)) and outs[3] == 0.0
    elif variant == "constant":
        assert outs == [1.0] * 5
    else:
        assert all(type(o).__name__ == "_Anything" for o in outs)
        assert type(layer.W.anything().else_).__name__ == "_Anything"
    if variant != "anything":
        assert not hasattr(layer, "W")  # __init__ stores nothing


# ----------------------------------------------------------------------------- the gate


@pytest.fixture(scope="module", params=ASSIGNMENTS)
def graded(request):
    """``(assignment, points, {variant: GradeResult})``: every variant graded once."""
    assignment = request.param
    source_nb = nbformat.read(source_notebook(ROOT, assignment), as_version=4)
    release_nb = nbformat.read(release_notebook(ROOT, assignment), as_version=4)
    answers = reference_answers(source_nb)
    with tempfile.TemporaryDirectory() as tmp:
        course = Path(tmp)
        import shutil

        shutil.copytree(ROOT / SOURCE_DIR / assignment, course / SOURCE_DIR / assignment)
        for variant in VARIANTS:
            nb = fill(release_nb, do_nothing_answers(answers, variant))
            write_submission(course, f"nothing-{variant}", assignment, {assignment: nb})
        results = _grade_all(course, assignment, "parallel", progress=False)
    by_variant = {v: results[f"nothing-{v}"] for v in VARIANTS}
    return assignment, autograded_test_points(source_nb), by_variant


def test_do_nothing_answers_earn_nothing(graded):
    assignment, points, results = graded
    earned: dict[str, list[str]] = {}
    for variant, res in results.items():
        assert res.success, f"{assignment}: the {variant} submission was not graded: {res.error}"
        assert set(res.cells) == set(points), (variant, sorted(res.cells), sorted(points))
        for cell, (score, _) in res.cells.items():
            if score:
                earned.setdefault(cell, []).append(f"{variant} {score:g}/{points[cell]:g}")
    lines = [f"Do-nothing answers of {assignment}: {len(points)} test cells, "
             f"{len(earned)} give points to doing nothing"]
    lines += [f"  {cell}: {', '.join(v)}" for cell, v in sorted(earned.items())]
    add_report("\n".join(lines))
    assert not earned, "test cells that give points for doing nothing:\n" + "\n".join(lines[1:])
