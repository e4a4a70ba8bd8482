"""Ctrl-C during a grade run: never cut a commit in half, stop every worker, say where it stopped.

While a :class:`Guard` is active (in the main thread), SIGINT raises ``KeyboardInterrupt`` as
usual, except inside :meth:`Guard.critical` (recording one submission's grade: gradebook,
``autograded/``, ledger), where it waits until the section ends. The coordinator then stops
the workers (:meth:`grader.engine.backends.LocalBackend.terminate`: each kills its notebook and
removes its sandbox) and raises :class:`Interrupted`, which the command line prints as one line
(exit 130). What was recorded stays; the next run resumes from there.
"""

from __future__ import annotations

import contextlib
import signal
import threading


class Interrupted(Exception):
    """The run was interrupted; ``graded`` of ``total`` submissions are recorded."""

    def __init__(self, graded: int, total: int):
        self.graded, self.total = graded, total
        super().__init__(f"interrupted: {graded} of {total} graded; "
                         "run the same command again to continue")


class Guard:
    """SIGINT handling for one grade run (a no-op outside the main thread)."""

    def __init__(self):
        self.depth = 0
        self.pending = False
        self.previous = None

    def __enter__(self) -> Guard:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            self.previous = None

    def _handler(self, signum, frame) -> None:  # noqa: ARG002
        if self.depth:
            self.pending = True
        else:
            raise KeyboardInterrupt

    def ignore(self) -> None:
        """From now on (cleaning up after an interrupt) a second Ctrl-C changes nothing."""
        if self.previous is not None:
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    @contextlib.contextmanager
    def critical(self):
        """A section a Ctrl-C must not cut: the interrupt is raised once it is over."""
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if not self.depth and self.pending:
                self.pending = False
                raise KeyboardInterrupt
