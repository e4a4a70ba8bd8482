"""The student kit: what students receive, and nothing of the instructor's.

``python -m grader student-kit`` writes ``dist/student-kit.zip``:

* ``notebooks/``: the release (no solution, no hidden test), checked in sync with ``solutions/``;
* ``grader/``: only the modules the notebooks and the self-check import (:data:`STUDENT_MODULES`),
  checked to import nothing else of ``grader``;
* ``pyproject.toml``, ``README.md`` and ``jupyter/`` from ``grader/kit_files/``: the student's
  dependencies (no Dask, no instructor engine) and a JupyterLab with nbgrader's Validate button
  but without its instructor pages (Formgrader, Create Assignment, courses, exchange).

Entries get ordinary modes (0644 files, 0755 directories) and a fixed date, so the zip is the
same for the same inputs.
"""

from __future__ import annotations

import ast
import zipfile
from pathlib import Path

from grader.settings import RELEASE_DIR

#: The student side of ``grader``: what notebooks import, and the self-check.
STUDENT_MODULES = ("__init__.py", "checks.py", "gradcheck.py", "datasets.py", "diagnose.py",
                   "selfcheck.py")
KIT_FILES = Path(__file__).resolve().parent / "kit_files"
FILE_MODE, DIR_MODE = 0o644, 0o755
DATE = (2026, 1, 1, 0, 0, 0)


def student_modules(root: str | Path) -> list[Path]:
    """The allow-listed modules present in ``<root>/grader``, in allow-list order."""
    package = Path(root) / "grader"
    return [package / name for name in STUDENT_MODULES if (package / name).is_file()]


#: Functions of ``selfcheck`` that only the instructor runs (``--mutants``, in the checkout).
INSTRUCTOR_ONLY = {"selfcheck.py": {"agreement", "_main_mutants"}}


def grader_imports(path: Path) -> set[str]:
    """Top-level ``grader.*`` modules that ``path`` imports, lazily too, outside the
    instructor-only functions of :data:`INSTRUCTOR_ONLY`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = INSTRUCTOR_ONLY.get(path.name, set())
    tree.body = [n for n in tree.body if not (isinstance(n, ast.FunctionDef) and n.name in skip)]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        found |= {n.split(".")[1] for n in names if n.startswith("grader.")}
    return found


def instructor_imports(root: str | Path) -> list[str]:
    """``module -> grader.x`` for every import a student module makes outside the allow-list."""
    allowed = {Path(n).stem for n in STUDENT_MODULES}
    return [f"{path.name} -> grader.{m}" for path in student_modules(root)
            for m in sorted(grader_imports(path) - allowed)]


def kit_entries(root: str | Path) -> dict[str, Path]:
    """``{path in the zip: file on disk}`` of everything the kit holds."""
    root = Path(root).resolve()
    entries = {}
    for path in sorted((root / RELEASE_DIR).rglob("*")):
        if path.is_file() and not {"__pycache__", ".ipynb_checkpoints"} & set(path.parts):
            entries[path.relative_to(root).as_posix()] = path
    for path in student_modules(root):
        entries[f"grader/{path.name}"] = path
    for path in sorted(KIT_FILES.rglob("*")):
        if path.is_file():
            entries[path.relative_to(KIT_FILES).as_posix()] = path
    data_readme = root / "data" / "README.md"
    if data_readme.is_file():
        entries["data/README.md"] = data_readme
    return entries


def _info(name: str, mode: int, is_dir: bool = False) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, DATE)
    info.create_system = 3  # Unix: unzip applies the modes below
    info.external_attr = ((0o040000 if is_dir else 0o100000) | mode) << 16 | (0x10 * is_dir)
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def write_zip(entries: dict[str, Path], dest: Path) -> Path:
    """Write ``entries`` to ``dest`` with its directories, normal modes and a fixed date."""
    dirs = sorted({str(Path(n).parent) for n in entries} - {"."})
    dirs = sorted({p for d in dirs for p in [d, *map(str, Path(d).parents)]} - {"."})
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w") as zf:
        for d in dirs:
            zf.writestr(_info(d + "/", DIR_MODE, is_dir=True), b"")
        for name in sorted(entries):
            zf.writestr(_info(name, FILE_MODE), entries[name].read_bytes())
    return dest


def build_student_kit(root: str | Path, dest: str | Path) -> Path:
    """Zip the student kit of course ``root`` into ``dest``; refuse a stale or leaky one."""
    from grader.release import release_differences

    root, dest = Path(root).resolve(), Path(dest).resolve()
    problems = release_differences(root)
    if problems:
        raise RuntimeError("release out of sync, run `python -m grader release` first:\n"
                           + "\n".join(problems))
    leaks = instructor_imports(root)
    if leaks:
        raise RuntimeError("student modules import the instructor's: " + ", ".join(leaks))
    return write_zip(kit_entries(root), dest)
