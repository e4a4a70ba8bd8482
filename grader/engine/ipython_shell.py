"""The IPython shell a notebook's cells run in, and how one cell's outcome is recorded.

Built once in the zygote (:func:`preload`, heavy imports included) and inherited by every
notebook's process. **A cell that raised is a failed cell, whatever else breaks**: whether it
raised is taken from IPython's execution result (the exception object); when IPython's own
traceback formatting failed or was bypassed, an ``error`` output is built from that object.
Outputs are capped per cell: streams by characters, rich output by size.
"""

from __future__ import annotations

import importlib
import io
import os
import signal
import sys
import traceback

PRELOAD = (
    "numpy",
    "matplotlib",
    "matplotlib.pyplot",
    "matplotlib_inline.backend_inline",
    "sklearn.datasets",
    "sklearn.linear_model",
    "sklearn.model_selection",
    "tqdm.auto",
    "IPython.core.interactiveshell",
    "IPython.core.ultratb",
    "IPython.core.logger",
    "stack_data",
    "executing",
    "pygments.lexers.python",
    "grader.checks",
    "grader.gradcheck",
    "grader.datasets",
)
_shell = None


class CellTimeout(BaseException):
    """Raised inside a cell that outlives the per-cell limit (not an Exception: not caught
    by a student's ``except Exception``)."""


def get_shell():
    """The zygote's shell (built now when this process has none)."""
    global _shell
    if _shell is None:
        _shell = make_shell()
    return _shell


def preload() -> None:
    """Import the heavy libraries and build the shell (in the zygote, before any job)."""
    global _shell
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass
    if _shell is None:
        _shell = make_shell()
        # format one traceback now: IPython's first one costs ~0.2 s, paid here once, not per
        # notebook (and what it imports lazily is then loaded before any sandbox)
        run_cell(_shell, "raise ValueError('warm-up')", [], _WarmLimits())
        _shell.execution_count = 1


class _WarmLimits:
    cell_timeout, max_output_chars, max_rich_chars = 60.0, 10_000, 10_000


class Capture(io.TextIOBase):
    """sys.stdout / sys.stderr of a cell: stream outputs, cut at ``limit`` characters."""

    def __init__(self, name: str, sink: list, limit: int):
        self.name, self.sink, self.limit, self.size, self.cut = name, sink, limit, 0, False

    def writable(self) -> bool:
        return True

    def write(self, text) -> int:
        text = text if isinstance(text, str) else str(text)
        room = self.limit - self.size
        if room > 0:
            piece = text[:room]
            self.size += len(piece)
            if self.sink and self.sink[-1].get("name") == self.name:
                self.sink[-1]["text"] += piece
            else:
                self.sink.append({"output_type": "stream", "name": self.name, "text": piece})
        if len(text) > max(room, 0) and not self.cut:
            self.cut = True
            self.sink.append({"output_type": "stream", "name": self.name,
                              "text": f"\n[output cut at {self.limit} characters]\n"})
        return len(text)

    def flush(self) -> None:
        pass


def safe_str(obj, limit: int = 2000) -> str:
    try:
        text = str(obj)
    except BaseException:  # noqa: BLE001 - a student's __str__ may raise anything
        text = f"<{type(obj).__name__} whose str() raised>"
    return text[:limit]


def error_output(exc: BaseException) -> dict:
    """An ``error`` output built from the exception object alone (no IPython formatter)."""
    ename = getattr(type(exc), "__name__", "Exception")
    evalue = safe_str(exc)
    try:
        tb = traceback.format_exception(type(exc), exc, exc.__traceback__, limit=20)
        lines = "".join(tb).splitlines()[-40:]
    except BaseException:  # noqa: BLE001
        lines = [f"{ename}: {evalue}"]
    return {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": lines}


def make_shell():
    """The IPython shell every cell runs in: outputs go to ``shell._dl_outputs`` (the current
    cell's list), rich ones within ``shell._dl_rich_budget``; no history, no colours."""
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False  # no history database, open or inherited
    config.HistoryManager.hist_file = ":memory:"
    shell = _shell_class().instance(config=config, colors="nocolor", history_length=0,
                                    cache_size=0)
    shell.display_pub = _publisher_class()(shell=shell)
    shell.displayhook = _result_hook_class()(shell=shell, cache_size=0)
    shell.display_trap.hook = shell.displayhook
    shell._dl_outputs = []
    shell._dl_rich_budget = [0]
    _no_redundant_draw(shell)
    return shell


def _no_redundant_draw(shell) -> None:
    """Draw each figure once per cell, not twice.

    pyplot hooks ``draw_all`` onto IPython's ``post_execute`` (registered with the first
    figure or ``%matplotlib inline``), and it runs before the inline backend's
    ``flush_figures``, which draws every figure again to make its PNG and closes it: the first
    draw is thrown away (a third to a half of a figure's cost). Installing pyplot's hook now and
    taking it off leaves pyplot believing it is installed, so it is not added again; the PNGs
    are the same bytes (``tests/test_ipython_shell.py``).
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        return
    plt.install_repl_displayhook()
    for callback in list(shell.events.callbacks["post_execute"]):
        if getattr(callback, "__module__", "") == "matplotlib.pyplot":
            shell.events.unregister("post_execute", callback)


def _shell_class():
    """The shell: an exception becomes an ``error`` output; no GUI event loop."""
    from IPython.core.interactiveshell import InteractiveShell

    class Shell(InteractiveShell):
        _dl_outputs: list = []

        def enable_gui(self, gui=None):  # inline figures need no event loop
            pass

        def _showtraceback(self, etype, evalue, stb):
            self._dl_outputs.append({
                "output_type": "error",
                "ename": getattr(etype, "__name__", safe_str(etype)),
                "evalue": safe_str(evalue),
                "traceback": [safe_str(line, 20000) for line in stb],
            })

    return Shell


def _publisher_class():
    """What ``display()`` shows becomes ``display_data``, cut at the cell's rich budget."""
    from IPython.core.displaypub import DisplayPublisher

    class Publisher(DisplayPublisher):
        def publish(self, data, metadata=None, source=None, *, transient=None, update=False,
                    **kwargs):
            outputs = self.shell._dl_outputs
            size = sum(len(v) if isinstance(v, str | bytes) else len(repr(v))
                       for v in dict(data).values())
            budget = self.shell._dl_rich_budget
            if size > budget[0]:
                if budget[0] >= 0:
                    outputs.append({"output_type": "stream", "name": "stdout",
                                    "text": "[rich output cut: over the per-cell limit]\n"})
                budget[0] = -1
                return
            budget[0] -= size
            outputs.append(
                {"output_type": "display_data", "data": dict(data), "metadata": metadata or {}})

        def clear_output(self, wait=False):
            self.shell._dl_outputs.clear()

    return Publisher


def _result_hook_class():
    """A cell's last value becomes ``execute_result``, cut at the cell's rich budget."""
    from IPython.core.displayhook import DisplayHook

    class Hook(DisplayHook):
        def write_output_prompt(self):
            pass

        def write_format_data(self, format_dict, md_dict=None):
            size = sum(len(v) if isinstance(v, str) else 1000 for v in format_dict.values())
            if size > self.shell._dl_rich_budget[0]:
                self.shell._dl_outputs.append({"output_type": "stream", "name": "stdout",
                                               "text": "[result cut: over the per-cell limit]\n"})
                return
            self.shell._dl_rich_budget[0] -= size
            self.shell._dl_outputs.append({
                "output_type": "execute_result",
                "execution_count": self.shell.execution_count,
                "data": dict(format_dict),
                "metadata": md_dict or {},
            })

        def finish_displayhook(self):
            pass

    return Hook


def run_cell(shell, source: str, outputs: list, limits) -> bool:
    """Run one cell, outputs into ``outputs``; True when it raised (decided from the result)."""
    shell._dl_outputs = outputs
    shell._dl_rich_budget = [limits.max_rich_chars]
    sys.stdout = Capture("stdout", outputs, limits.max_output_chars)
    sys.stderr = Capture("stderr", outputs, limits.max_output_chars)
    exc = None
    signal.setitimer(signal.ITIMER_REAL, limits.cell_timeout)
    try:
        result = shell.run_cell(source, store_history=True)
        exc = result.error_before_exec or result.error_in_exec
    except BaseException as raised:  # noqa: BLE001 - CellTimeout outside the cell's code, ...
        exc = raised
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    if exc is not None and not any(o.get("output_type") == "error" for o in outputs):
        outputs.append(error_output(exc))
    return exc is not None


def on_alarm(limits):
    def handler(signum, frame):
        raise CellTimeout(f"cell exceeded its time limit of {limits.cell_timeout:g} s")

    return handler
