"""The coordinator's event loop for one grading run: launch, wait, check, retry, record.

Read top to bottom: :meth:`Run.loop` keeps the workers busy with notebooks of prepared
submissions, and with each assignment's canaries (:meth:`Run.begin`: unless cached, they run as
ordinary jobs alongside the first students); each finished job goes through
:meth:`Run.finished` — a job that raised or whose process reported a machinery failure is
retried (:meth:`Run.machinery`), a worker's isolation probe and environment are checked before
anything it produced is used (:meth:`Run.vouched`), a student process that died is run once
more, and a submission whose notebooks are all back is recorded once the canaries of every
environment its notebooks ran in passed (:meth:`Run.ready`). Every wait has a deadline: a job
that outlives it counts as a machinery failure and the pool is replaced.
"""

from __future__ import annotations

import concurrent.futures as cf
import time

from grader.engine import environment
from grader.engine import gradebook_writer as record
from grader.engine.canary import FAILED, PASSED, PENDING, UNKNOWN, CanaryFailure
from grader.engine.gradebook_writer import Outcome
from grader.engine.intake import Prepared
from grader.engine.interrupt import Guard, Interrupted

STUDENT_FAULTS = ("died", "timeout", "output")


class Run:
    def __init__(self, grader, assignments: list[str]):
        from tqdm.auto import tqdm

        self.g = grader
        self.assignments = assignments
        self.backend = grader.backend
        self.outcomes: list[Outcome] = []
        self.todo: dict[tuple, Prepared] = {}  # (student, assignment, notebook) -> prepared
        self.results: dict[tuple, dict] = {}
        self.remaining: dict[int, int] = {}  # id(prepared) -> notebooks still out
        self.attempts: dict[tuple, int] = {}
        self.died_once: set[tuple] = set()
        self.started: dict[tuple, float] = {}
        self.futures: dict = {}  # future -> key
        self.launched: dict = {}  # future -> launch time
        self.refused: set = set()
        self.canary_jobs: dict[tuple, tuple] = {}  # ("canary", a, key) -> (job, env, worker)
        self.waiting: dict[int, tuple] = {}  # id(prepared) -> (prepared, key): canaries pending
        self.begun: set[str] = set()
        limits = grader.limits
        # a job may first run the isolation probe on a fresh worker
        self.deadline = 2 * limits.notebook_timeout + 120
        self.total = sum(len(grader.submissions(a)) for a in assignments)
        self.bar = tqdm(total=self.total, desc="grading", unit="nb", disable=not grader.progress)
        self.reported = 0
        self.guard = Guard()

    # -- the loop ------------------------------------------------------------
    def loop(self, preps) -> None:
        cap = 2 * self.backend.workers
        exhausted = False
        while self.futures or not exhausted:
            while not exhausted and len(self.futures) < cap:
                prep = next(preps, None)
                if prep is None:
                    exhausted = True
                    break
                self.begin(prep.assignment)
                self.remaining[id(prep)] = len(prep.notebooks)
                for nb in prep.notebooks:
                    key = (prep.student, prep.assignment, nb)
                    self.todo[key] = prep
                    self.launch(key)
            self._tick()
            if not self.futures:
                continue
            if self.refused & self.futures.keys():
                done = self.refused & self.futures.keys()
                self.refused.clear()
            else:
                done, _ = self.backend.wait(set(self.futures))
            for fut in done:
                key = self.futures.pop(fut, None)
                self.launched.pop(fut, None)
                if key is not None:  # else: already relaunched after a broken pool
                    self.finished(key, fut)
            self._check_deadlines()
        for prep, _ in list(self.waiting.values()):  # no verdict ever came: never recorded
            self.fail(prep, "the canaries of its environment never reported; previous grade kept")

    def begin(self, assignment: str) -> None:
        """Vouch for this machine's environment: cached, or canaries launched now (first in
        the queue, alongside the students). Dask workers are vouched for one environment at
        a time, as they report (:meth:`vouched`)."""
        if assignment in self.begun:
            return
        self.begun.add(assignment)
        if not self.backend.pins:
            env = environment.describe()
            for job in self.g.canaries.start(assignment, env):
                self.launch_canary(assignment, job, env, None)

    def launch_canary(self, assignment: str, job, env: dict, worker: str | None) -> None:
        key = ("canary", assignment, job.key, environment.key(env))
        self.canary_jobs[key] = (job, env, worker)
        self.launch(key)

    def launch(self, key: tuple) -> None:
        self.attempts[key] = self.attempts.get(key, 0) + 1
        self.started.setdefault(key, time.perf_counter())
        try:
            if key in self.canary_jobs:
                job, _, worker = self.canary_jobs[key]
                fut = self.backend.submit(job, worker=worker) if worker else \
                    self.backend.submit(job)
            else:
                fut = self.backend.submit(self.g.job(self.todo[key], key[2]))
        except Exception as exc:  # noqa: BLE001 - handled like a failed run: retried
            fut = cf.Future()
            fut.set_exception(exc)
            self.refused.add(fut)
        self.futures[fut] = key
        self.launched[fut] = time.perf_counter()

    def _relaunch_all(self) -> None:
        stale = list(self.futures.values())
        self.futures.clear()
        self.launched.clear()
        for key in stale:
            self.launch(key)

    def _check_deadlines(self) -> None:
        now = time.perf_counter()
        late = [f for f, t in self.launched.items() if now - t > self.deadline]
        if not late:
            return
        keys = [self.futures.pop(f) for f in late]
        for f in late:
            self.launched.pop(f, None)
        self.backend.reset()  # a hung worker: every job on the pool is lost
        self._relaunch_all()
        for key in keys:
            self.machinery(key, f"no answer from the worker within {self.deadline:g} s")

    # -- one finished job ----------------------------------------------------
    def finished(self, key: tuple, fut) -> None:
        if key in self.canary_jobs:
            self.canary_finished(key, fut)
            return
        prep = self.todo[key]
        if self.remaining.get(id(prep), 0) < 0:
            return  # the submission already failed
        try:
            res = fut.result()
        except Exception as exc:  # noqa: BLE001 - the machinery failed, not the student
            self.machinery(key, f"{type(exc).__name__}: {exc}",
                           broken=isinstance(exc, cf.process.BrokenProcessPool))
            return
        if not self.vouched(key, res):
            return
        if res["status"] == "machinery":
            self.machinery(key, res["detail"])
            return
        if res["status"] in STUDENT_FAULTS and res["status"] != "timeout" \
                and key not in self.died_once:
            self.died_once.add(key)  # once more, to rule out a flaky machine
            self.launch(key)
            return
        self.results[key] = res
        self.remaining[id(prep)] -= 1
        if self.remaining[id(prep)] == 0:
            self.ready(prep, key)

    def vouched(self, key: tuple, res: dict) -> bool:
        """Whether ``res`` may be used: its worker's isolation probe held and the canaries of
        its environment passed or are running. A worker that fails is excluded and the job
        relaunched (False); where none would be left, :class:`CanaryFailure` stops the run."""
        try:
            self.g.canaries.check_worker(res["worker"], res.get("canaries", {}))
            res["env_key"] = self.environment_state(key[1], res)
        except CanaryFailure:
            if self.backend.exclude(res["worker"]):
                self.attempts[key] -= 1
                self.launch(key)
                return False
            raise
        return True

    def environment_state(self, assignment: str, res: dict) -> str:
        """The key of the environment ``res`` ran in, once its canaries passed or are running
        (Dask: launched now, on that worker); raises :class:`CanaryFailure` otherwise."""
        env = res.get("environment")
        if not isinstance(env, dict) or not env:
            raise CanaryFailure(f"worker {res['worker']} did not report its environment")
        env_key = environment.key(env)
        canaries = self.g.canaries
        if canaries.state(assignment, env_key) == UNKNOWN:
            if not self.backend.pins:
                raise CanaryFailure(
                    f"worker {res['worker']}'s own probe disagrees with the environment its "
                    f"canaries ran in (it differs in: "
                    f"{environment.differs(env, environment.describe()) or 'nothing named'}); "
                    "nothing it graded is recorded")
            for job in canaries.start(assignment, env):
                self.launch_canary(assignment, job, env, res["worker"])
        if canaries.state(assignment, env_key) == FAILED:
            raise canaries.failure(f"worker {res['worker']}", assignment,
                                   canaries.problems(assignment, env_key))
        return env_key

    def canary_finished(self, key: tuple, fut) -> None:
        """A canary run came back: once all of its environment's are in, the verdict."""
        job, env, _ = self.canary_jobs[key]
        try:
            res = fut.result()
        except Exception as exc:  # noqa: BLE001 - retried like any job
            self.machinery(key, f"{type(exc).__name__}: {exc}",
                           broken=isinstance(exc, cf.process.BrokenProcessPool))
            return
        from grader.engine.worker import canary_summary

        self.g.canaries.seconds += res.get("total_seconds", 0.0)
        self.g.canaries.check_worker(res["worker"], res.get("canaries", {}))
        if res.get("environment") != env:
            raise CanaryFailure(
                f"worker {res['worker']} ran a canary for an environment that is not its own "
                f"(it differs in: {environment.differs(res.get('environment') or {}, env)}); "
                "nothing is recorded")
        problems = self.g.canaries.record(key[1], env, job.key, canary_summary(res))
        if problems and self.backend.pins and self.backend.exclude(res["worker"]):
            self._redo(environment.key(env))  # on the workers left; that environment's fail
            return
        if problems:
            raise self.g.canaries.failure(f"environment {environment.key(env)[:12]} (worker "
                                          f"{res['worker']})", key[1], problems)
        if problems is not None:  # passed: what waited on it is recorded now
            for prep, last in list(self.waiting.values()):
                self.ready(prep, last)

    def _redo(self, env_key: str) -> None:
        """Run again, elsewhere, every kept result of an environment whose canaries failed."""
        for key, res in list(self.results.items()):
            if res["env_key"] == env_key:
                prep = self.todo[key]
                del self.results[key]
                self.remaining[id(prep)] += 1
                self.waiting.pop(id(prep), None)
                self.attempts[key] -= 1
                self.launch(key)

    def ready(self, prep: Prepared, key: tuple) -> None:
        """Every notebook of ``prep`` is back: record it once every environment they ran in
        passed its canaries; wait while some are still running."""
        states = {self.g.canaries.state(prep.assignment, res["env_key"])
                  for res in (self.results[(prep.student, prep.assignment, nb)]
                              for nb in prep.notebooks)}
        if states == {PASSED}:
            self.waiting.pop(id(prep), None)
            self.commit(prep, key)
        elif PENDING in states:
            self.waiting[id(prep)] = (prep, key)
        else:  # unreachable: a failed environment stops the run before its results are kept
            raise CanaryFailure(f"{prep.student}/{prep.assignment}: no passed canary vouches "
                                "for where it ran; nothing is recorded")

    def machinery(self, key: tuple, why: str, *, broken: bool = False) -> None:
        if self.attempts[key] <= self.g.retries:
            if broken:  # a worker died: the pool and everything queued on it is gone
                self.backend.reset()
                self._relaunch_all()
            self.launch(key)
            return
        if key in self.canary_jobs:
            raise CanaryFailure(f"the canary {key[2]} could not run after "
                                f"{self.attempts[key]} attempts: {why}")
        self.fail(self.todo[key], f"machinery failure after {self.attempts[key]} attempts: "
                                  f"{why}; previous grade kept")

    def commit(self, prep: Prepared, key: tuple) -> None:
        per_nb = {nb: self.results[(prep.student, prep.assignment, nb)]
                  for nb in prep.notebooks}
        try:
            with self.guard.critical():  # a Ctrl-C waits until the grade is recorded whole
                out = record.commit(self.g, prep, per_nb)
        except Exception as exc:  # noqa: BLE001
            out = Outcome(prep.student, prep.assignment, "failed",
                          reason=f"could not record the grade: {exc!r}; previous grade kept")
        out.seconds = time.perf_counter() - self.started[key]
        for nb in prep.notebooks:  # kept no longer than needed
            self.results.pop((prep.student, prep.assignment, nb), None)
        self.done(out)

    def fail(self, prep: Prepared, reason: str) -> None:
        if self.remaining.get(id(prep), 0) >= 0:
            self.remaining[id(prep)] = -1
            self.done(Outcome(prep.student, prep.assignment, "failed", reason=reason))

    def done(self, out: Outcome) -> None:
        self.outcomes.append(out)
        self.bar.update(1)
        self.reported += 1

    def _tick(self) -> None:
        if len(self.outcomes) > self.reported:  # reported without running anything
            self.bar.update(len(self.outcomes) - self.reported)
            self.reported = len(self.outcomes)

    # -- the end -------------------------------------------------------------
    def abort(self, reason: str) -> None:
        """Stop: nothing more is recorded; every submission not yet graded is failed."""
        for fut in list(self.futures):
            fut.cancel()
        self.backend.reset()
        seen = set()
        self.waiting.clear()
        for prep in self.todo.values():
            if id(prep) not in seen:
                seen.add(id(prep))
                self.fail(prep, reason)
        graded = {(o.student, o.assignment) for o in self.outcomes}
        for assignment in self.assignments:
            for student in self.g.submissions(assignment):
                if (student, assignment) not in graded:
                    self.outcomes.append(Outcome(student, assignment, "failed", reason=reason))

    def interrupted(self) -> Interrupted:
        """Ctrl-C: stop every worker (nothing of theirs is left) and say how far it got."""
        self.guard.ignore()
        self.backend.terminate()
        graded = sum(1 for o in self.outcomes if o.ok)
        return Interrupted(graded, self.total)

    def close(self) -> None:
        self.bar.close()
