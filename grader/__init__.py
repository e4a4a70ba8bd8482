"""Deep-learning course kit: student-facing checks, datasets, and the instructor's grading tools.

Student-facing: :mod:`grader.checks`, :mod:`grader.gradcheck`, :mod:`grader.datasets`.
Instructor-facing: :mod:`grader.release`, :mod:`grader.autograde`, :mod:`grader.reports`,
:mod:`grader.demo` (and the ``dlgrader`` command, :mod:`grader.cli`).
"""

__version__ = "0.1.0"
