"""Messages in the student's words, where test cells really run: in the judge (issue 20).

A student's function, class or object reaches the judge as a ``Remote``; its errors come back
over a pipe. Whatever the student returned or raised, the message must say it in the student's
terms (a generator, a list, an object of class X; ``train_epoch`` is still the stub) and never
name the judge's machinery (``Remote``, ``request``, ``StudentError``, ``rpc.py``).
"""

from __future__ import annotations

import pytest

from grader.diagnose import causes_in
from grader.engine.judge.runner import serve_student, student_endpoint

from .test_judge import forked_judge

SETUP = """
import numpy as np
from grader.checks import assert_close, assert_shape, assert_scalar, uses
from grader.gradcheck import check_gradient
"""

# The student's notebook: compiled as a notebook cell (not a file of the installation).
NOTEBOOK = """
import numpy as np


def squares(x):
    return (v * v for v in x)


def as_list(x):
    return [1.0, 2.0]


class Thing:
    pass


def thing(x):
    return Thing()


class Linear:
    def __init__(self, W):
        self.W = W

    def forward(self, x):
        return x @ self.W


class Sequential:
    def __init__(self, *modules):
        self.modules = list(modules)

    def forward(self, x):
        for m in self.modules:
            x = m.forward(x)
        return x


def train_epoch(net, X):
    # YOUR CODE HERE
    raise NotImplementedError()


def train_epoch_done(net, X):
    return float(np.sum(net.forward(X)))


class Oops(Exception):
    pass


def raises_own():
    raise Oops("my own error")


def loss_sum(x):
    return float(np.sum(x))


def catches(callback):
    try:
        callback()
    except Exception as exc:
        return [list(f) for f in getattr(exc, "notebook_frames", [])] + ["caught"]
"""

def _line(text: str, after: str = "") -> int:
    """The line of the notebook cell holding ``text`` (the first after ``after``)."""
    lines = NOTEBOOK.split("\n")
    start = next(k for k, line in enumerate(lines) if after in line)
    return next(k for k in range(start, len(lines)) if text in lines[k]) + 1


FORBIDDEN = ("Remote", "request", "StudentError", "rpc.py", "_dl_", "<student")


def _student(sock) -> None:
    ns: dict = {"__name__": "__main__"}
    exec(compile(NOTEBOOK, "<cell 2>", "exec"), ns)
    ep = student_endpoint(sock)
    while True:
        serve_student(ep, ns)


@pytest.fixture
def judge():
    with forked_judge(_student, SETUP, {"cell 2": NOTEBOOK}) as j:
        yield j


def _fails(judge, source: str) -> str:
    """The message of the test cell ``source``, which must fail; checked for internal names."""
    with pytest.raises(BaseException) as info:
        judge.run_test_cell(source)
    msg = str(info.value)
    for word in FORBIDDEN:
        assert word not in msg, (word, msg)
    return msg


def test_a_wrong_type_says_what_the_student_returned(judge):
    msg = _fails(judge, "assert_shape(squares(np.ones(2)), (2, 2), 'out')")
    assert msg == "out should be a numpy array of shape (2, 2), got a generator"
    msg = _fails(judge, "assert_close(thing(1), np.ones((2, 2)), 'out')")
    assert msg == "out should be a numpy array of shape (2, 2), got an object of class Thing"
    msg = _fails(judge, "assert_close(thing(1), 1.5, 'loss')")
    assert msg == "loss should be a number, got an object of class Thing"
    msg = _fails(judge, "assert_shape(as_list(1), (2,), 'out')")
    assert msg == "out should be a numpy array of shape (2,), got a list"
    msg = _fails(judge, "_e = check_gradient(loss_sum, np.ones(3), squares(np.ones(3)))")
    assert msg == "gradient: the gradient should be a numeric array, got a generator"


def test_a_stub_under_uses_is_its_own_not_the_earlier_exercises(judge):
    cell = ("_net = Sequential(Linear(np.ones((3, 2))))\n"
            "with uses('Sequential', 'Linear'):\n"
            "    _loss = {fn}(_net, np.ones((4, 3)))\n")
    msg = _fails(judge, cell.format(fn="train_epoch"))
    assert msg == ("train_epoch is not written yet: it still raises NotImplementedError "
                   f"(line {_line('raise NotImplementedError')}); replace the stub with your code")
    judge.run_test_cell(cell.format(fn="train_epoch_done"))  # written: passes
    # a real bug inside Linear, reached through Sequential: Linear is named, with its line
    bad = ("_net = Sequential(Linear(np.ones((5, 2))))\n"
           "with uses('Sequential', 'Linear'):\n"
           "    _loss = train_epoch_done(_net, np.ones((4, 3)))\n")
    msg = _fails(judge, bad)
    assert msg.startswith("this test uses Sequential, Linear: make Linear's own tests pass first")
    assert msg.endswith(f"in Linear.forward, line {_line('return x @ self.W')})")


def test_errors_of_the_test_on_a_student_value_are_in_student_words(judge):
    msg = _fails(judge, "with uses('thing'):\n    _n = len(thing(1))\n")
    assert msg == ("this test could not use what your code returned (the error was: TypeError: "
                   "the value returned by your code has no len() (it is not a list or an array))")
    # the student's own exception class crosses by name
    msg = _fails(judge, "with uses('Linear'):\n    raises_own()\n")
    line = _line("raise Oops")
    assert msg == f"raises_own raised Oops: my own error (in raises_own, line {line})"
    # bool() of a student object where a value was expected
    msg = _fails(judge, "assert thing(1)\n")
    assert msg.startswith("your code returned an object of class Thing where a value")


def test_the_judges_error_output_has_no_machinery():
    from grader.engine.judge.base import make_error
    from grader.engine.judge.processes import _student_error

    def cell():
        exec(compile("raise make_error('Oops', 'my own error', [['raises_own', 48]])",
                     "<test cell>", "exec"), {"make_error": make_error})

    with pytest.raises(Exception) as info:
        cell()
    out = _student_error(info.value)
    assert out["ename"] == "Oops" and out["evalue"] == "my own error"
    assert out["traceback"][-1] == "Oops: my own error"
    assert all("grader" not in line and "StudentError" not in line for line in out["traceback"])
    with pytest.raises(TypeError) as info:
        len(type("Remote", (), {})())
    assert "Remote" not in _student_error(info.value)["evalue"]


def test_probe2_names_a_cause_in_the_judge(judge):
    cell = ("_x1, _x2 = np.array([1.0, 2.0]), np.array([3.0, -1.0])\n"
            "assert_close(as_list(0), 2 * _x1 - 1, 'out', bugs={'doubled': 2 * (2 * _x1 - 1)},\n"
            "             probe2=(as_list(0), 2 * _x2 - 1, {'doubled': [1.0, 2.0]}))\n")
    msg = _fails(judge, cell)
    assert causes_in(msg) == []  # [1, 2] is not 2 * [1, 3] on the first probe
    cell = ("assert_close(as_list(0), np.array([0.5, 1.0]), 'out', bugs={'doubled': [1.0, 2.0]},\n"
            "             probe2=(as_list(0), np.array([0.5, 1.0]), {'doubled': [1.0, 2.0]}))\n")
    msg = _fails(judge, cell)
    assert causes_in(msg) == ["doubled"] and msg.startswith("out should be a numpy array")
    msg = _fails(judge, cell.replace("probe2=(as_list(0)", "probe2=(np.array([0.5, 1.0])"))
    assert causes_in(msg) == []  # right on the second probe: no cause
    msg = _fails(judge, "assert_close(as_list(0), np.array([0.5, 1.0]), 'out',\n"
                        "             bugs={'doubled': [1.0, 2.0]})\n")
    assert causes_in(msg) == []  # one probe: none


def test_the_judge_tells_the_student_nothing_of_where_its_code_raised(judge):
    # a hidden test's helper that raises inside the student's code: the student's process gets
    # the error, never the names or lines of the test's helpers
    judge.run_test_cell("def _hidden_helper():\n    raise ValueError('no')\n"
                        "_seen = catches(_hidden_helper)\n")
    assert judge.ns["_seen"] == ["caught"]
