"""Lint: ruff over the package, the tests and the notebooks' code (config in pyproject.toml)."""

import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT


def test_ruff_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is not installed (pip install -e '.[test]')"
    targets = ["grader", "tests", "solutions", "notebooks", "benchmarks", "nbgrader_config.py"]
    targets = [t for t in targets if (ROOT / t).exists()]
    proc = subprocess.run([ruff, "check", *targets], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
