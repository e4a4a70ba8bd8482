"""Whose code raised an error in a test that builds on earlier exercises (:func:`uses`).

The frames of the notebook's code an error went through (not Python's, NumPy's or the
grader's) say which of the student's functions or classes raised it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from grader.diagnose import fail, student_words


def _library_dirs() -> tuple[str, ...]:
    import os
    import sys
    import sysconfig

    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(__file__)}
    dirs |= {v for k, v in sysconfig.get_paths().items() if k in (
        "stdlib", "platstdlib", "purelib", "platlib")}
    return tuple(os.path.join(os.path.abspath(d), "") for d in dirs if d)


def _notebook_frames(exc: BaseException) -> list[tuple[str, int]]:
    """``[(qualified name, line)]`` of the notebook code ``exc`` went through, outermost first:
    this process's frames (not Python's, NumPy's or the grader's), then those the judge's peer
    reported (``exc.notebook_frames``: the student's process, when the test runs in the judge)."""
    libs = _library_dirs()
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if not code.co_filename.startswith(libs) and not code.co_filename.startswith(
                ("<frozen", "<grader", "<setup")):
            frames.append((getattr(code, "co_qualname", code.co_name), tb.tb_lineno))
        tb = tb.tb_next
    frames += [tuple(f) for f in getattr(exc, "notebook_frames", None) or []]
    return frames


def _student_frames(exc: BaseException) -> list[tuple[str, int]]:
    """The frames of the student's own functions and classes (a test's helpers start with
    ``_``; a cell's top level and lambdas are ``<...>``)."""
    return [(name, line) for name, line in _notebook_frames(exc)
            if name and not name.startswith(("_", "<"))]


def _error_text(exc: BaseException) -> str:
    text = str(exc) if not isinstance(exc, NotImplementedError) else ""
    kind = getattr(exc, "name", None) if type(exc).__name__ == "StudentError" else None
    kind = kind or type(exc).__name__
    if kind == "StudentError":
        kind = "an error"
    if type(exc).__name__ == "StudentError":
        text = getattr(exc, "message", "") or ""
    return student_words(f"{kind}: {text}" if text else kind)


@contextmanager
def uses(*names: str) -> Iterator[None]:
    """For a test of code that builds on earlier exercises: an error (anything but a failed
    check, an ``AssertionError``) becomes a failed check that says whose code raised it.

    Raised inside one of ``names`` (its innermost frame of the student's code is a method of
    that class or that function): ``this test uses Sequential, Linear: make Linear's own tests
    pass first (the error was: ValueError: matmul ..., in Linear.forward, line 12)``. Raised in
    the student's code under test itself (say ``train_epoch`` is still the stub): said as that
    function's own error (``train_epoch is not written yet: it raises NotImplementedError
    (line 9)``), never blamed on the earlier exercises.
    """
    __tracebackhide__ = True
    try:
        yield
    except AssertionError:
        raise
    except Exception as exc:  # noqa: BLE001 - any error of the student's code is reported
        fail(AssertionError(_uses_message(exc, names)))


def _uses_message(exc: BaseException, names: tuple[str, ...]) -> str:
    frames = _student_frames(exc)
    error = _error_text(exc)
    if not frames:  # raised by the test's own code, on something the student's code returned
        return f"this test could not use what your code returned (the error was: {error})"
    where, line = frames[-1]
    owner = where.split(".")[0]
    at = f"in {where.replace('.<locals>', '')}, line {line}"
    if owner in names:
        return (f"this test uses {', '.join(names)}: make {owner}'s own tests pass first "
                f"(the error was: {error}, {at})")
    if isinstance(exc, NotImplementedError):
        who = "it still" if where == owner else f"{where.replace('.<locals>', '')}"
        return (f"{owner} is not written yet: {who} raises NotImplementedError "
                f"(line {line}); replace the stub with your code")
    return f"{owner} raised {error} ({at})"
