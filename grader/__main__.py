"""``python -m grader``: the instructor's command line (:mod:`grader.course.cli`).

The one module of this folder that belongs to the instructor: the student kit leaves it out.
"""

import sys

from grader.course.cli import main

sys.exit(main())
