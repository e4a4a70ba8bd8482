"""nbgrader configuration for this course directory.

``solutions/`` is nbgrader's source directory and ``notebooks/`` its release directory; all
settings live in :mod:`grader.engine.configuration` so the command line and the ``grader``
package grade the same way. Requires the package to be installed (``pip install -e .``).
"""

from grader.engine.configuration import configure

c = get_config()  # noqa: F821  (provided by traitlets when nbgrader loads this file)
configure(c)
