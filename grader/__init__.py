"""Deep-learning course kit.

This folder is the student's library (what notebooks import, and the self-check ``dlcheck``):
:mod:`grader.checks` (over :mod:`grader.compare` and :mod:`grader.blame`),
:mod:`grader.gradcheck` (over :mod:`grader.finite_differences` and
:mod:`grader.gradient_relations`), :mod:`grader.diagnose`, :mod:`grader.datasets`,
:mod:`grader.selfcheck`.
The instructor's tools live in :mod:`grader.course` (the ``dlgrader`` command,
:mod:`grader.course.cli`), the sandboxed grading engine in :mod:`grader.engine`.
Imports run one way: course → engine → student library.
"""

__version__ = "0.1.0"
