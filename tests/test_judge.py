"""The judge (issue 10): test cells run in this process, student code in a forked child.

Each test forks a *student* process that runs ``STUDENT`` (student-like functions, classes
and exploits) and serves the judge over a socketpair; the test drives a :class:`Judge`.
Honest results are compared with the same code run in one process; every exploit must make
the test cell it attacks fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket

import numpy as np
import pytest

from grader.engine.judge import (
    Judge,
    ProtocolError,
    Refused,
    StudentError,
    decode,
    encode,
    judge_endpoint,
)
from grader.engine.judge.base import Limits
from grader.engine.judge.runner import serve_student, student_endpoint

SETUP = """
import numpy as np
%matplotlib inline
from grader.checks import assert_close, assert_inputs_unchanged, assert_no_loops
from grader.gradcheck import check_gradient, through_attribute
"""

STUDENT = '''
import builtins, json, os
import numpy as np
import grader.checks

DATA = np.arange(6.0).reshape(2, 3)
SETTINGS = {"lr": 0.1, "sizes": (3, 4)}


def predict(X, w, b):
    return X @ w + b


class Linear:
    def __init__(self, d, c, rng):
        self.W = rng.normal(size=(d, c)) * np.sqrt(2.0 / d)
        self.b = np.zeros(c)

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, dout):
        self.dW = self.x.T @ dout
        self.db = dout.sum(axis=0)
        return dout @ self.W.T


def numerical_gradient(f, x, h=1e-5):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        plus = f(x)
        x[i] = old - h
        minus = f(x)
        x[i] = old
        grad[i] = (plus - minus) / (2 * h)
    return grad


def shuffled(x, rng):
    rng.shuffle(x)
    return x


def relu(x):
    return np.maximum(x, 0.0)


def relu_inplace(x):
    x[x < 0] = 0.0
    return x


def sigmoid_naive(z):
    return 1.0 / (1.0 + np.exp(-z))


def double(x):
    return 2 * x


def apply_twice(f, x):
    return f(f(x))


def hinge_loss(O, y):
    total = 0.0
    for i in range(len(y)):
        total += np.maximum(0, O[i] - O[i, y[i]] + 1).sum() - 1
    return total / len(y)


def quits():
    raise SystemExit(3)


def table_size():
    return len(EP.table)


class AlwaysEqual:
    def __eq__(self, other):
        return True

    def __array__(self, dtype=None, copy=None):
        return np.full(3, 5.0)

    def __float__(self):
        return 5.0


def always_equal():
    return AlwaysEqual()


class Liar(np.ndarray):
    def __eq__(self, other):
        return np.ones(np.shape(other), bool)


def lying_array():
    return np.zeros(3).view(Liar)


def patched_predict(X, w, b):
    np.allclose = lambda *a, **k: True
    np.testing.assert_allclose = lambda *a, **k: None
    grader.checks.assert_close = lambda *a, **k: None
    builtins.abs = lambda x: 0
    return np.zeros(len(X))


def steal(cb):
    """Reach the callback's globals, around the proxy too, and set _stolen there."""
    tries = []
    for name in ("__globals__", "__code__", "__builtins__"):
        try:
            tries.append(getattr(cb, name))
        except Exception as exc:
            tries.append(type(exc).__name__)
        try:
            got = cb._dl_ep.request("getattr", cb._dl_h, name)
            got["_stolen"] = True
            tries.append("reached")
        except Exception as exc:
            tries.append(type(exc).__name__)
    return [t if isinstance(t, str) else "reached" for t in tries]


def walk(rng):
    """Walk a Generator's public attributes towards a module; patch numpy there if found."""
    out = []
    for path in (("bit_generator", "lock"), ("bit_generator", "capsule"),
                 ("bit_generator", "ctypes"), ("bit_generator", "seed_seq", "spawn")):
        obj = rng
        try:
            for name in path:
                obj = getattr(obj, name)
            out.append(type(obj).__name__)
        except Exception as exc:
            out.append(type(exc).__name__)
    return out


def sgd_slices(model, g):
    model.W[...] -= g  # the model's own array, changed in place


def decay_through_a_name(layer, lam):
    dW = layer.dW
    dW += 2 * lam * layer.W  # layer.dW itself, in one process
    layer.step(0.5)  # the layer's step must see the new dW


def stale_copy(model):
    old = model.W
    model.W = np.zeros(2)
    old[...] = 7.0  # no longer the model's array: the model keeps its zeros


def write_back(obj, token, value):
    obj.W  # the judge gives this array attribute token 1
    EP._send({"k": "w", "t": token}, EP._pack(value))


def _last_seq():
    return LAST["s"]


def garbage():
    os.write(EP._wfd, b"this is not a frame at all, just bytes" * 4)


def oversized():
    os.write(EP._wfd, b"DLJ1" + (10).to_bytes(4, "big") + (1 << 40).to_bytes(8, "big"))


def deeply_nested():
    deep = True
    for _ in range(100):
        deep = {"L": [deep]}
    EP._send({"k": "r", "s": _last_seq(), "v": {"T": [deep, {"D": []}]}, "a": []})


def bad_dtype():
    EP._send({"k": "r", "s": _last_seq(), "v": {"T": [{"A": 0}, {"D": []}]},
              "a": [["|O", [1], 0, 8, True]]})


def fake_ok_out_of_order():
    EP._send({"k": "r", "s": _last_seq() + 7, "v": {"T": [True, {"D": []}]}, "a": []})
    return False
'''


def _student_main(sock: socket.socket) -> None:
    ns: dict = {"__name__": "__student__", "LAST": {}}
    exec(STUDENT, ns)
    ep = student_endpoint(sock)
    serve = ep._serve

    def recording_serve(header, arrays, blob):  # the student may do anything in its process
        ns["LAST"] = header
        return serve(header, arrays, blob)

    ep._serve = recording_serve
    ns["EP"] = ep
    while True:
        serve_student(ep, ns)


@contextlib.contextmanager
def forked_judge(student_main, setup: str, cells: dict):
    """A judge talking over a socket pair to a forked "student" process running student_main."""
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the student process
        ours.close()
        try:
            student_main(theirs)
        finally:
            os._exit(0)
    theirs.close()
    try:
        yield Judge(judge_endpoint(ours), setup, cells)
    finally:
        ours.close()
        os.waitpid(pid, 0)


@pytest.fixture
def judge():
    with forked_judge(_student_main, SETUP, {"cell 3": STUDENT}) as j:
        yield j


def _local():
    ns: dict = {"__name__": "__local__"}
    exec(STUDENT, ns)
    return ns


# ----------------------------------------------------------------------------- honest work


def test_function_returning_an_array(judge):
    judge.run_test_cell("_X = np.array([[1.0, 2.0], [3.0, 4.0]])\n"
                        "_out = predict(_X, np.array([1.0, -1.0]), 0.5)\n"
                        "assert type(_out) is np.ndarray\n"
                        "assert_close(_out, np.array([-0.5, -0.5]), 'predict')\n")
    assert judge.ns["_out"].dtype == np.float64
    judge.run_test_cell("assert DATA.shape == (2, 3) and SETTINGS['sizes'] == (3, 4)")


def test_class_instance_attributes_and_generator(judge):
    judge.run_test_cell("_layer = Linear(3, 4, np.random.default_rng(0))\n"
                        "_layer.b = np.array([1.0, 2.0, 3.0, 4.0])\n"
                        "_x = np.ones((2, 3))\n"
                        "_out = _layer.forward(_x)\n")
    local = _local()["Linear"](3, 4, np.random.default_rng(0))
    assert np.array_equal(judge.ns["_layer"].W, local.W)
    assert np.array_equal(judge.ns["_layer"].b, [1.0, 2.0, 3.0, 4.0])
    assert np.array_equal(judge.ns["_out"], np.ones((2, 3)) @ local.W + [1.0, 2.0, 3.0, 4.0])
    with pytest.raises(AttributeError):
        judge.ns["_layer"]._private  # noqa: B018
    with pytest.raises(TypeError, match="where a value was expected"):
        bool(judge.ns["_layer"])


def test_callback_numerical_gradient_and_in_place_generator(judge):
    judge.run_test_cell("_x = np.array([1.0, -2.0, 0.5])\n"
                        "_g = numerical_gradient(lambda v: float(np.sum(v ** 3)), _x)\n"
                        "_s = shuffled(np.arange(10.0), np.random.default_rng(4))\n")
    local = _local()
    assert np.array_equal(judge.ns["_g"],
                          local["numerical_gradient"](lambda v: float(np.sum(v ** 3)),
                                                      np.array([1.0, -2.0, 0.5])))
    assert np.array_equal(judge.ns["_s"],
                          local["shuffled"](np.arange(10.0), np.random.default_rng(4)))
    assert np.array_equal(judge.ns["_x"], [1.0, -2.0, 0.5])  # restored by the student


def test_nested_callbacks(judge):
    judge.run_test_cell("_y = apply_twice(lambda v: double(v) + 1, np.array([1.0, 2.0]))\n"
                        "_z = apply_twice(lambda v: apply_twice(double, v), 3.0)\n")
    assert np.array_equal(judge.ns["_y"], [7.0, 11.0]) and judge.ns["_z"] == 48.0


def test_check_gradient_through_attribute_of_a_remote_layer(judge):
    cell = """
_rng = np.random.default_rng(1)
_layer = Linear(4, 3, _rng)
_x, _dout = _rng.normal(size=(5, 4)), _rng.normal(size=(5, 3))
_layer.forward(_x)
_dx = _layer.backward(_dout)
def _loss():
    return float(np.sum(_layer.forward(_x) * _dout))
_err = check_gradient(through_attribute(_layer, "W", _loss), _layer.W, _layer.dW)
_err2 = check_gradient(lambda z: float(np.sum(_layer.forward(z) * _dout)), _x, _dx)
"""
    judge.run_test_cell(cell)
    assert judge.ns["_err"] < 1e-7 and judge.ns["_err2"] < 1e-7
    with pytest.raises(AssertionError, match="dW"):  # a wrong gradient still fails
        judge.run_test_cell('_err = check_gradient(through_attribute(_layer, "W", _loss), '
                            '_layer.W, 2 * _layer.dW, name="dW")')


def test_inputs_unchanged_and_identity_across_the_boundary(judge):
    judge.run_test_cell("_x = np.array([-1.0, 2.0])\n"
                        "_out = assert_inputs_unchanged(relu, _x)\n"
                        "assert _out is not _x\n")
    with pytest.raises(AssertionError, match="modified its argument #1 in place"):
        judge.run_test_cell("_x = np.array([-1.0, 2.0])\n"
                            "_out = assert_inputs_unchanged(relu_inplace, _x)\n")
    judge.run_test_cell("_x = np.array([-1.0, 2.0])\n"
                        "assert relu_inplace(_x) is _x and _x[0] == 0.0\n")


IN_PLACE_CELL = """
class _Layer:
    def __init__(self):
        self.W, self.dW, self.seen = np.array([1.0, 2.0]), np.array([0.5, 0.5]), None

    def step(self, lr):
        self.seen = np.array(self.dW)


_l = _Layer()
sgd_slices(_l, np.array([1.0, 1.0]))
decay_through_a_name(_l, 0.25)
assert_close(_l.W, np.array([0.0, 1.0]), "W after sgd_slices")
assert_close(_l.seen, np.array([0.5, 1.0]), "dW seen by step")
assert_close(_l.dW, np.array([0.5, 1.0]), "dW after decay_through_a_name")
_m = _Layer()
stale_copy(_m)
assert_close(_m.W, np.zeros(2), "W after stale_copy")
"""


def test_in_place_changes_to_an_attribute_array_reach_the_test_object(judge):
    """Student code that changes a test object's array in place (``model.W[...] -= g``, or
    through a local name) changes the object, before the object's own method runs; a copy of
    an array the attribute no longer holds changes nothing: as in one process."""
    local = _local()
    exec(compile("from grader.checks import assert_close\n" + IN_PLACE_CELL, "<local>",
                 "exec"), local)  # the cell's meaning in one process
    judge.run_test_cell(IN_PLACE_CELL)
    assert np.array_equal(judge.ns["_l"].seen, local["_l"].seen)


@pytest.mark.parametrize("token, value", [("10**6", "np.ones(2)"), ("'1'", "np.ones(2)"),
                                          ("1", "5.0")])
def test_malformed_write_backs_fail_closed(judge, token, value):
    """An unknown token, a token that is not an int, a value that is not an array."""
    cell = ("class _O:\n    pass\n_o = _O()\n_o.W = np.zeros(2)\n"
            f"write_back(_o, {token}, {value})\n")
    with pytest.raises(ProtocolError):
        judge.run_test_cell(cell)
    with pytest.raises(ProtocolError):  # and nothing after it passes
        judge.run_test_cell("_v = 1")


def test_a_well_formed_write_back_is_applied(judge):
    """The control for the test above: the same frame with token 1 and an array goes through."""
    judge.run_test_cell("class _O:\n    pass\n_o = _O()\n_o.W = np.zeros(2)\n"
                        "write_back(_o, 1, np.ones(2))\nassert_close(_o.W, np.ones(2))\n")


def test_the_callers_errstate_holds_in_the_call(judge):
    judge.run_test_cell("_s = sigmoid_naive(np.array([-1000.0]))")  # a warning, no error
    with pytest.raises(FloatingPointError, match="overflow"):
        judge.run_test_cell("with np.errstate(over='raise'):\n"
                            "    _s = sigmoid_naive(np.array([-1000.0]))")
    judge.run_test_cell("assert np.geterr()['over'] == 'warn'\n"
                        "with np.errstate(over='raise'):\n"
                        "    _v = apply_twice(lambda v: np.exp(v), -1000.0)\n")


def test_names_missing_and_test_names_kept(judge):
    with pytest.raises(NameError):
        judge.run_test_cell("_v = not_defined_by_the_student(1)")
    judge.run_test_cell("_kept = 41")
    judge.run_test_cell("assert _kept + 1 == 42")


def test_assert_no_loops_reads_the_notebook_source(judge):
    with pytest.raises(AssertionError, match="hinge_loss must be vectorised"):
        judge.run_test_cell('assert_no_loops(hinge_loss, "hinge_loss")')
    judge.run_test_cell("assert_no_loops(relu)")


def test_handles_are_released(judge):
    judge.run_test_cell("_layer = Linear(2, 2, np.random.default_rng(0))\n"
                        "for _ in range(200):\n"
                        "    _layer.forward(np.ones((1, 2)))\n"
                        "_n = table_size()\n")
    assert judge.ns["_n"] < 10


# ----------------------------------------------------------------------------- exploits


@pytest.mark.parametrize("cell", [
    "assert always_equal() == 5.0",
    "assert_close(always_equal(), np.full(3, 5.0))",
    "assert_close(float(always_equal()), 5.0)",
    "assert_close(np.asarray(always_equal(), dtype=float), np.full(3, 5.0))",
    "assert_close(lying_array(), np.ones(3))",
    "assert (lying_array() == np.ones(3)).all()",
    "assert_close(patched_predict(np.ones((2, 2)), np.ones(2), 0.0), np.full(2, 2.0))",
    "patched_predict(np.ones((2, 2)), np.ones(2), 0.0)\nassert np.allclose(1.0, 2.0)",
    "patched_predict(np.ones((2, 2)), np.ones(2), 0.0)\nassert abs(-3) == 0",
])
def test_lying_values_and_patches_fail(judge, cell):
    with pytest.raises((AssertionError, TypeError, ValueError)):
        judge.run_test_cell(cell)


def test_callback_internals_are_refused(judge):
    with pytest.raises(NameError):
        judge.run_test_cell("_tries = steal(lambda: 0)\nassert _stolen")
    assert judge.ns["_tries"] == ["AttributeError"] * 6


def test_generator_walk_reaches_no_module(judge):
    judge.run_test_cell("_walk = walk(np.random.default_rng(0))")
    assert judge.ns["_walk"] == ["TypeError", "TypeError", "TypeError", "JudgeObject"]


@pytest.mark.parametrize("attack", ["garbage", "oversized", "deeply_nested", "bad_dtype",
                                    "fake_ok_out_of_order"])
def test_malformed_messages_fail_closed(judge, attack):
    with pytest.raises(ProtocolError):
        judge.run_test_cell(f"_ok = {attack}()\nassert _ok is None or _ok")
    with pytest.raises(ProtocolError):  # and nothing after it passes
        judge.run_test_cell("_v = 1")


def test_a_swallowed_protocol_error_still_fails(judge):
    with pytest.raises(ProtocolError):
        judge.run_test_cell("try:\n    garbage()\nexcept BaseException:\n    pass\n")


def test_exit_in_student_code_fails_the_cell_only(judge):
    with pytest.raises(StudentError, match="SystemExit"):
        judge.run_test_cell("quits()")
    judge.run_test_cell("assert double(2.0) == 4.0")


def test_interrupting_the_judge_while_serving_fails_closed(judge):
    with pytest.raises(KeyboardInterrupt):  # e.g. the judge's own time limit, in a callback
        judge.run_test_cell("def _stop(x):\n    raise KeyboardInterrupt\napply_twice(_stop, 1.0)")
    with pytest.raises(ProtocolError):
        judge.run_test_cell("_v = 1")


def test_judge_refuses_to_lend_modules_and_classes(judge):
    with pytest.raises(Refused):
        judge.run_test_cell("apply_twice(np, 1)")
    with pytest.raises(Refused):
        judge.run_test_cell("apply_twice(dict, 1)")
    with pytest.raises(Refused):
        judge.run_test_cell("apply_twice(abs, -1.0)")
    with pytest.raises(Refused):
        judge.run_test_cell("apply_twice(open, 1)")
    judge.run_test_cell("_r = apply_twice(np.abs, -1.0)")  # a NumPy function may cross


# ----------------------------------------------------------------------------- codec alone


def test_codec_round_trip_and_refusals():
    value = (None, True, 3, -2.5, float("inf"), "é", [np.arange(6).reshape(2, 3)],
             {"a": np.float32(1.5), 3: slice(1, None, 2)}, np.complex128(1 + 2j), 2j)
    back = decode(encode(value))
    assert back[:6] == value[:6] and back[7:] == value[7:]
    assert np.array_equal(back[6][0], value[6][0]) and back[6][0].flags.writeable
    with pytest.raises(Refused):
        encode(object())
    with pytest.raises(ProtocolError):
        encode(2**200)
    nested: list = []
    for _ in range(40):
        nested = [nested]
    with pytest.raises(ProtocolError):
        encode(nested)


@pytest.mark.parametrize("header,blob", [
    ({"v": {"A": 0}, "a": [["|O", [1], 0, 8, True]]}, b"\0" * 8),
    ({"v": {"A": 0}, "a": [["<f8", [2], 0, 8, True]]}, b"\0" * 8),
    ({"v": {"A": 0}, "a": [["<f8", [-1], 0, 8, True]]}, b"\0" * 8),
    ({"v": {"A": 3}, "a": []}, b""),
    ({"v": {"X": 1}}, b""),
    ({"v": {"N": ["<i1", 300]}}, b""),
    ({"v": {"H": [1, "x"]}}, b""),
    ({"v": [1, 2]}, b""),
    ({"v": 10**50}, b""),
])
def test_codec_rejects_malformed(header, blob):
    head = json.dumps(header).encode()
    with pytest.raises(ProtocolError):
        decode(len(head).to_bytes(8, "big") + head + blob)


def test_codec_limits():
    with pytest.raises(ProtocolError):
        encode(np.zeros(1000), limits=Limits(max_bytes=4000))
    with pytest.raises(ProtocolError):
        encode(list(range(100)), limits=Limits(max_items=50))
    deep = b"[" * 100000
    with pytest.raises(ProtocolError):
        decode(len(deep).to_bytes(8, "big") + deep)


# ----------------------------------------------------------------------------- big arguments


def test_round_trip_of_scalars_and_a_large_array(judge):
    """A scalar and a 1000x1000 float64 array cross to the student's function and back (what
    a call costs is measured by benchmarks/judge_rpc.py, not here)."""
    judge.run_test_cell("_x = np.ones((1000, 1000))")
    judge.run_test_cell("_s = double(1.5)")
    judge.run_test_cell("_r = double(_x)")
    assert judge.ns["_s"] == 3.0
    assert np.array_equal(judge.ns["_r"], 2 * np.ones((1000, 1000)))


def test_a_test_object_outside_its_cell_refuses_at_once():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ep = student_endpoint(ours)
        callback = ep._import(1, "function")  # as if the judge had lent it in a test cell
        with pytest.raises(RuntimeError, match="outside the test cell"):
            callback(1.0)
        with pytest.raises(AttributeError):
            callback.__globals__  # noqa: B018
