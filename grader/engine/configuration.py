"""The one place where this kit configures nbgrader.

``nbgrader_config.py`` at the course root calls :func:`configure`, and so does every
programmatic entry point (release, autograde, demo), so the ``nbgrader`` command line, the
formgrader and this package always grade the same way.

It sets the course layout (``solutions/`` is nbgrader's source directory, ``notebooks/`` its
release directory) and defuses the nbgrader 0.9.6 traps listed in COURSE_NOTES.md:

* any stderr output in a test cell scores 0 → :class:`IgnorePattern` drops stderr streams, so a
  warning printed by correct student code does not zero it (errors still fail the cell);
* a deleted test cell is silently missed → ``OverwriteCells.add_missing_cells``;
* feedback shows hidden-test source (#917) → :mod:`grader.engine.hidden_tests` strips it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from traitlets.config import Config

SOURCE_DIR = "solutions"
RELEASE_DIR = "notebooks"
COURSE_ID = "dl-course-kit"

#: Per-cell limit while autograding (seconds).
CELL_TIMEOUT = 120

#: stderr text matching this is dropped from graded outputs: any non-empty text.
STDERR_IGNORE_PATTERN = r"[\s\S]"


def configure(c: Config, root: str | Path | None = None) -> Config:
    """Apply the kit's nbgrader settings to ``c`` (a traitlets Config); return it.

    Also puts this interpreter's ``bin/`` on ``PATH`` (see :func:`ensure_environment_on_path`),
    so ``.venv/bin/nbgrader ...`` works without activating the environment.
    """
    ensure_environment_on_path()
    if root is not None:
        c.CourseDirectory.root = str(Path(root).resolve())
    c.CourseDirectory.course_id = COURSE_ID
    c.CourseDirectory.source_directory = SOURCE_DIR
    c.CourseDirectory.release_directory = RELEASE_DIR
    c.CourseDirectory.ignore = [
        ".ipynb_checkpoints",
        "*.pyc",
        "__pycache__",
        "feedback",
        "*.mutants.toml",
    ]
    c.IgnorePattern.enabled = True
    c.IgnorePattern.pattern = STDERR_IGNORE_PATTERN
    c.OverwriteCells.add_missing_cells = True
    c.Execute.timeout = CELL_TIMEOUT
    c.Execute.interrupt_on_timeout = True
    c.LimitOutput.max_lines = 200
    c.LimitOutput.max_traceback = 60
    c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
    from nbgrader.converters import Autograde
    from nbgrader.preprocessors import OverwriteCells

    from grader.engine.hidden_tests import (  # late: nbgrader is heavy
        HideHiddenTests,
        RestoreHiddenTests,
    )

    # nbgrader #1961: every untouched hidden-test cell warned "checksum has changed"
    c.Autograde.sanitize_preprocessors = [
        RestoreHiddenTests if pp is OverwriteCells else pp
        for pp in Autograde.class_traits()["sanitize_preprocessors"].default()]

    c.GenerateFeedback.preprocessors = [
        HideHiddenTests,
        "nbgrader.preprocessors.GetGrades",
        "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
    ]
    return c


def ensure_environment_on_path() -> None:
    """Put this interpreter's ``bin/`` first on ``PATH``.

    nbgrader runs the ``alembic`` executable and Jupyter starts kernels by the name ``python``,
    both looked up on ``PATH``: a virtual environment used without being activated would
    otherwise fail (alembic) or, worse, grade with some other Python.
    """
    bindir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if path.split(os.pathsep)[0] != bindir:
        os.environ["PATH"] = bindir + os.pathsep + path


COURSE_CONFIG = (
    '"""nbgrader configuration: every setting lives in grader.engine.configuration."""\n\n'
    "from grader.engine.configuration import configure\n\n"
    "configure(get_config())  # noqa: F821  (get_config is provided by traitlets)\n"
)


def write_course_config(root: str | Path) -> Path:
    """Make ``root`` an nbgrader course directory of this kit (writes nbgrader_config.py)."""
    path = Path(root) / "nbgrader_config.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(COURSE_CONFIG)
    return path


def make_config(root: str | Path) -> Config:
    """A fresh Config for the course directory ``root`` (and a PATH that finds its tools)."""
    return configure(Config(), root)
