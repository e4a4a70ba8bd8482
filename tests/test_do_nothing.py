"""Points only for correct work (issue 20): "do-nothing" answers fail every graded test cell.

A test cell that checks a side property (no mutation, a shape, no loops, a call order) must
also check the value, or an answer that does nothing earns its points. For every assignment
the gate fills the release notebook with the reference answers in which every function and
every method of every code answer cell is replaced by one of four do-nothing bodies:

* ``identity``: returns its first input (``None`` when it takes none);
* ``zeros``: returns zeros of the expected shape: the reference answer runs on copies of the
  inputs (nothing the caller holds changes) and every number and array of its result becomes
  zeros; where that fails (a callback, a layer's cache it never stored), zeros of its first
  input's shape, else ``0.0``; a class's ``__init__`` keeps the reference's state with every
  number and array zeroed, and never raises (checking its arguments is work);
* ``constant``: returns ``1.0``;
* ``anything``: returns an object that answers every call and every attribute (itself), and
  every instance of an answer's class answers every attribute too.

Elsewhere a class's ``__init__`` stores nothing (it cannot return anything). Each variant is one
submission, graded like a student's with the project's class grader (judge and sandbox
included), in the session's shared class (``gates_class``, tests/conftest.py); every autograded
test cell must score 0 on every variant. Cells that don't are listed with the variants that earn
points there.
"""

from __future__ import annotations

import ast

import nbformat
import numpy as np
import pytest

from grader.course.release import release_notebook, source_notebook
from grader.course.submissions import (
    autograded_test_points,
    fill,
    reference_answers,
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


ZEROS = '''
import copy as _copy

import numpy as _np


def _zeros_like_value(v):
    """Zeros of the shape of every number and array in ``v``; anything else unchanged."""
    if isinstance(v, _np.ndarray):
        return _np.zeros(v.shape)
    if isinstance(v, bool | _np.bool_):
        return False
    if isinstance(v, int | float | _np.number):
        return 0.0
    if isinstance(v, tuple | list):
        return type(v)(_zeros_like_value(x) for x in v)
    if isinstance(v, dict):
        return {k: _zeros_like_value(x) for k, x in v.items()}
    return v


def _zeros_of_first(args):
    try:
        return _np.zeros(_np.shape(args[0])) if args and _np.ndim(args[0]) else 0.0
    except Exception:
        return 0.0


def _zeros_call(ref, owner, args, kwargs):
    """Zeros shaped like what the reference would return, computed on copies (no effect on
    the caller's objects); zeros of the first input's shape where that cannot be known."""
    try:
        copied_args, copied_kwargs = _copy.deepcopy((args, kwargs))
        if owner is not None:
            ref = getattr(_copy.deepcopy(owner), ref)
        out = ref(*copied_args, **copied_kwargs)
    except Exception:
        return _zeros_of_first(args)
    zeros = _zeros_like_value(out)
    return zeros if zeros is not out else None


def _zero_state(obj):
    for k, v in list(vars(obj).items()):
        setattr(obj, k, _zeros_like_value(v))


'''


def _first_input(fn: ast.FunctionDef, method: bool) -> str | None:
    params = [a.arg for a in fn.args.posonlyargs + fn.args.args]
    if method and params:
        params = params[1:]
    return params[0] if params else None


def _body(variant: str, first: str | None) -> list[ast.stmt]:
    if variant == "identity":
        code = f"return {first or 'None'}"
    elif variant == "zeros":
        code = f"return _zeros_of_first(({first},))" if first else "return 0.0"
    elif variant == "constant":
        code = "return 1.0"
    elif variant == "anything":
        code = "return _Anything()"
    else:
        raise ValueError(variant)
    return ast.parse(code).body


def _zeros_wrapper(fn: ast.FunctionDef, method: bool) -> list[ast.stmt]:
    """``fn`` kept as ``_ref_<name>``, and ``<name>`` returning zeros shaped like its result
    (``__init__``: the reference's state, every number and array zeroed)."""
    ref = f"_ref_{fn.name}"
    if method and fn.name == "__init__":
        code = (f"def __init__(self, *args, **kwargs):\n    try:\n"
                f"        self.{ref}(*args, **kwargs)\n    except Exception:\n        pass\n"
                "    _zero_state(self)\n")
    elif method:
        code = (f"def {fn.name}(self, *args, **kwargs):\n"
                f"    return _zeros_call({ref!r}, self, args, kwargs)\n")
    else:
        code = (f"def {fn.name}(*args, **kwargs):\n"
                f"    return _zeros_call({ref}, None, args, kwargs)\n")
    fn.name = ref
    return [fn, ast.parse(code).body[0]]


def _nothing_in(fn: ast.FunctionDef, variant: str, method: bool) -> list[ast.stmt]:
    if variant == "zeros" and not fn.decorator_list:
        return _zeros_wrapper(fn, method)
    if method and fn.name == "__init__":
        fn.body = [ast.Pass()]
    else:
        static = any(isinstance(d, ast.Name) and d.id == "staticmethod"
                     for d in fn.decorator_list)
        fn.body = _body(variant, _first_input(fn, method and not static))
    return [fn]


def do_nothing(source: str, variant: str) -> str:
    """``source`` (a code answer) with every function and method doing nothing."""
    tree = ast.parse(source)
    body: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            body += _nothing_in(node, variant, method=False)
            continue
        if isinstance(node, ast.ClassDef):
            items: list[ast.stmt] = []
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    items += _nothing_in(item, variant, method=True)
                else:
                    items.append(item)
            node.body = items
            if variant == "anything":
                node.body.append(ast.parse(
                    "def __getattr__(self, name):\n"
                    "    if name.startswith('__'):\n"
                    "        raise AttributeError(name)\n"
                    "    return _Anything()\n").body[0])
        body.append(node)
    tree.body = body
    head = "import numpy as np\n" + {"anything": ANYTHING, "zeros": ZEROS}.get(variant, "")
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
        if n < 0:
            raise ValueError("n < 0")
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


def matmul(a, b):
    a[0, 0] = 5.0  # would change the caller's array: the zeros variant runs it on a copy
    return a @ b


def pair(x):
    return x * 2, 3
'''


@pytest.mark.parametrize("variant", VARIANTS)
def test_do_nothing_answers_do_nothing(variant):
    ns: dict = {}
    exec(compile(do_nothing(SAMPLE, variant), "<answer>", "exec"), ns)
    x = np.array([-1.0, 2.0])
    layer = ns["Layer"](2)
    outs = [ns["relu"](x), ns["no_args"](), layer.forward(x), layer.train(),
            ns["Layer"].helper(x, x), ns["matmul"](np.ones((3, 2)), np.ones((2, 4))),
            ns["pair"](x)]
    if variant == "identity":
        assert outs[0] is x and outs[1] is None and outs[2] is x and outs[3] is None
    elif variant == "zeros":  # zeros shaped like the reference's results, state zeroed
        assert np.array_equal(outs[0], np.zeros(2)) and outs[1] == 0.0
        assert np.array_equal(outs[2], np.zeros(2)) and outs[3] is None
        assert np.array_equal(outs[5], np.zeros((3, 4)))
        assert outs[6][1] == 0.0 and np.array_equal(outs[6][0], np.zeros(2))
        assert np.array_equal(layer.W, np.zeros(2)) and not hasattr(layer, "x")
        assert np.array_equal(x, [-1.0, 2.0])  # the caller's arrays untouched
        ns["Layer"](-1)  # validating the arguments is work: the do-nothing one does not
    elif variant == "constant":
        assert outs == [1.0] * 7
    else:
        assert all(type(o).__name__ == "_Anything" for o in outs)
        assert type(layer.W.anything().else_).__name__ == "_Anything"
    if variant in ("identity", "constant"):
        assert not hasattr(layer, "W")  # __init__ stores nothing


# ----------------------------------------------------------------------------- the gate


def gate_submissions(assignment: str) -> dict:
    """What this gate hands in to the session's shared class (tests/conftest.py): one
    submission per variant, ``nothing-<variant>``."""
    source_nb = nbformat.read(source_notebook(ROOT, assignment), as_version=4)
    release_nb = nbformat.read(release_notebook(ROOT, assignment), as_version=4)
    answers = reference_answers(source_nb)
    return {f"nothing-{v}": fill(release_nb, do_nothing_answers(answers, v)) for v in VARIANTS}


@pytest.fixture(scope="module", params=ASSIGNMENTS)
def graded(request, gates_class):
    """``(assignment, points, {variant: GradeResult})``: every variant graded once."""
    assignment = request.param
    source_nb = nbformat.read(source_notebook(ROOT, assignment), as_version=4)
    by_variant = {v: gates_class.results[assignment, f"nothing-{v}"] for v in VARIANTS}
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
