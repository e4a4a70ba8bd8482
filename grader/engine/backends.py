"""Where jobs run: inline, a local process pool, or a Dask cluster (one interface).

Every backend calls :func:`grader.engine.worker.execute_job`, whose notebook processes come from a
pristine zygote: student code never runs in the coordinator, a pool worker or a Dask worker
itself. ``reset`` forcibly replaces a pool that broke or hung; ``exclude`` keeps a worker that
failed its canaries from getting more jobs (Dask; a local pool stops the run instead).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import time

from grader.engine.job import Job
from grader.engine.worker import execute_job, preload, worker_ready


class InlineBackend:
    """No pool: the coordinator runs each job itself, one at a time (its own zygote)."""

    workers = 1
    pins = False  # jobs cannot be sent to a given worker

    def submit(self, job: Job, worker: str | None = None):
        fut = cf.Future()
        try:
            fut.set_result(execute_job(job))
        except Exception as exc:  # noqa: BLE001 - handed to the retry logic like any backend
            fut.set_exception(exc)
        return fut

    def wait(self, futures):
        return set(futures), set()

    def warm(self) -> None:
        pass

    def reset(self) -> None:
        pass

    def exclude(self, worker: str) -> bool:
        return False

    def terminate(self) -> None:
        from grader.engine.worker import shutdown

        shutdown()  # the job it ran was interrupted in this very process

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return "the coordinator's own zygote (no pool)"


class LocalBackend:
    """A pool of worker processes on this machine, each with its own zygote."""

    pins = False

    def __init__(self, workers: int):
        self.workers = workers
        self._pool = None

    def _ensure(self):
        if self._pool is None:
            ctx = multiprocessing.get_context("spawn")
            self._pool = cf.ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=preload)
        return self._pool

    def submit(self, job: Job, worker: str | None = None):
        return self._ensure().submit(execute_job, job)

    def warm(self) -> None:
        """Start every worker (its zygote, its environment probe) now, while the coordinator
        prepares the first submissions."""
        pool = self._ensure()
        for _ in range(self.workers):
            pool.submit(worker_ready)

    def wait(self, futures):
        done, pending = cf.wait(futures, timeout=1.0, return_when=cf.FIRST_COMPLETED)
        return done, pending

    def reset(self) -> None:
        """After a crash or a hang the pool is unusable: kill its processes, start afresh."""
        if self._pool is not None:
            for proc in list(getattr(self._pool, "_processes", {}).values()):
                try:
                    proc.kill()
                except (OSError, AttributeError):
                    pass
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None

    def exclude(self, worker: str) -> bool:
        return False  # every local worker is the same: the run stops instead

    def terminate(self, grace: float = 15.0) -> None:
        """Interrupted: SIGTERM every worker (it kills its notebook, removes its sandbox and
        exits), SIGKILL those still there after ``grace`` s (their zygotes die with them)."""
        if self._pool is None:
            return
        procs = list(getattr(self._pool, "_processes", {}).values())
        for proc in procs:
            with contextlib.suppress(OSError, AttributeError, ValueError):
                proc.terminate()
        deadline = time.monotonic() + grace
        for proc in procs:
            with contextlib.suppress(OSError, AttributeError, ValueError, AssertionError):
                proc.join(max(0.0, deadline - time.monotonic()))
                if proc.is_alive():
                    proc.kill()
                    proc.join(5)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def describe(self) -> str:
        return f"{self.workers} local worker process(es)"


class DaskBackend:
    """Workers of a Dask distributed cluster (``scheduler`` address or an existing Client)."""

    pins = True  # a job can go to one given worker (canaries, for that worker's environment)

    def __init__(self, scheduler):
        from distributed import Client

        self.client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
        self._own = not isinstance(scheduler, Client)
        self.excluded: set[str] = set()

    @property
    def workers(self) -> int:
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    def submit(self, job: Job, worker: str | None = None):
        if worker is not None:
            return self.client.submit(execute_job, job, pure=False, workers=[worker],
                                      allow_other_workers=False)
        allowed = None
        if self.excluded:
            allowed = [a for a in self.client.scheduler_info()["workers"]
                       if a not in self.excluded]
        return self.client.submit(execute_job, job, pure=False, workers=allowed,
                                  allow_other_workers=False)

    def wait(self, futures):
        from distributed import wait

        try:
            res = wait(list(futures), timeout=1.0, return_when="FIRST_COMPLETED")
        except TimeoutError:
            return set(), set(futures)
        return set(res.done), set(res.not_done)

    def warm(self) -> None:
        pass  # the workers are running already

    def reset(self) -> None:
        pass  # the scheduler replaces dead workers itself

    def exclude(self, worker: str) -> bool:
        """Give ``worker`` (its Dask address) no more jobs; False when none would be left."""
        self.excluded.add(worker)
        return bool(set(self.client.scheduler_info()["workers"]) - self.excluded)

    def terminate(self) -> None:
        self.close()  # the scheduler drops our tasks; a notebook running ends by its limits

    def close(self) -> None:
        if self._own:
            self.client.close()

    def describe(self) -> str:
        n = len(self.client.scheduler_info().get("workers", {}))
        return f"Dask cluster at {self.client.scheduler.address} ({n} workers)"


def make_backend(workers: int | None, scheduler):
    if scheduler is not None:
        return DaskBackend(scheduler)
    if workers == 0:
        return InlineBackend()
    return LocalBackend(workers or os.cpu_count() or 1)
