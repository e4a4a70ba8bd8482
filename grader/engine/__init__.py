"""The sandboxed grading engine (the trust zones of GRADING_INVARIANTS.md).

One submission's path: :mod:`~grader.engine.coordinator` → :mod:`~grader.engine.intake`
(read, :mod:`~grader.engine.repairs`, sanitise) → :mod:`~grader.engine.dispatch` →
:mod:`~grader.engine.backends` → :mod:`~grader.engine.worker` (a :mod:`~grader.engine.job`) →
:mod:`~grader.engine.fork_server` → :mod:`~grader.engine.notebook_process` or
:mod:`grader.engine.judge` (inside the :mod:`~grader.engine.sandbox`: modes, root_fs, limits,
confine) → back to ``dispatch`` →
:mod:`~grader.engine.canary` check → :mod:`~grader.engine.gradebook_writer`.

nbgrader is configured in :mod:`~grader.engine.configuration` (a leaf) and reached through
:mod:`~grader.engine.nbgrader_api`. The engine may use the student library (test cells call
``grader.checks``), never the instructor's tools in :mod:`grader.course`.
"""
