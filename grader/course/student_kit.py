"""The student kit: what students receive, and nothing of the instructor's.

``python -m grader student-kit`` writes ``dist/student-kit.zip``:

* ``notebooks/``: the release (no solution, no hidden test), checked in sync with ``solutions/``;
* ``grader/``: the student folder whole (what notebooks import, and the self-check), without
  ``course/`` and ``engine/``, checked to import nothing of either;
* ``pyproject.toml``, ``README.md`` and ``jupyter/`` from ``grader/course/student_kit_files/``: the
  student's dependencies (no Dask, no instructor engine) and a JupyterLab with nbgrader's Validate
  button but without its instructor pages (Formgrader, Create Assignment, courses, exchange).

Everything sits in one folder, :data:`KIT_FOLDER`, so unzipping makes one folder. Entries get
ordinary modes (0644 files, 0755 directories) and their real dates: a file committed unchanged
carries its last commit's date (so the zip is the same for the same commit), any other its
modification time; a folder the date of its newest file.
"""

from __future__ import annotations

import ast
import subprocess
import time
import zipfile
from pathlib import Path

from grader.engine.configuration import RELEASE_DIR

#: What of ``grader/`` is not the student's: the instructor's tools, the grading engine, and
#: ``__main__.py`` (``python -m grader`` is the instructor's command line).
NOT_STUDENT = {"course", "engine", "__main__.py", "__pycache__"}
KIT_FILES = Path(__file__).resolve().parent / "student_kit_files"
FILE_MODE, DIR_MODE = 0o644, 0o755
KIT_FOLDER = "student-kit"  # the one folder the zip unpacks into


def student_files(root: str | Path) -> list[Path]:
    """The student folder ``<root>/grader``, whole: every file under it but :data:`NOT_STUDENT`."""
    package = Path(root) / "grader"
    return sorted(p for p in package.rglob("*") if p.is_file()
                  and not NOT_STUDENT & set(p.relative_to(package).parts) and p.suffix != ".pyc")


def grader_imports(path: Path) -> set[str]:
    """``grader.*`` modules that ``path`` imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "grader":
            names = [f"grader.{a.name}" for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {n for n in names if n.startswith("grader.")}
    return found


def instructor_imports(root: str | Path) -> list[str]:
    """``file -> grader.x`` for every import of the instructor's (``course``, ``engine``) that
    a file of the student folder makes."""
    package = Path(root) / "grader"
    return [f"{path.relative_to(package).as_posix()} -> {name}"
            for path in student_files(root) if path.suffix == ".py"
            for name in sorted(grader_imports(path))
            if name.split(".")[1] in NOT_STUDENT]


def kit_entries(root: str | Path) -> dict[str, Path]:
    """``{path in the zip: file on disk}`` of everything the kit holds."""
    root = Path(root).resolve()
    entries = {}
    for path in sorted((root / RELEASE_DIR).rglob("*")):
        if path.is_file() and not {"__pycache__", ".ipynb_checkpoints"} & set(path.parts):
            entries[path.relative_to(root).as_posix()] = path
    for path in student_files(root):
        entries[path.relative_to(root).as_posix()] = path
    for path in sorted(KIT_FILES.rglob("*")):
        if path.is_file():
            entries[path.relative_to(KIT_FILES).as_posix()] = path
    data_readme = root / "data" / "README.md"
    if data_readme.is_file():
        entries["data/README.md"] = data_readme
    return entries


def _git(top: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(top), *args], capture_output=True, text=True,
                          check=True).stdout


def file_dates(paths: list[Path]) -> dict[Path, float]:
    """Each file's real date (epoch): its last commit's when it is committed and unchanged in
    its git checkout, else its modification time."""
    dates = {p: p.stat().st_mtime for p in paths}
    by_top: dict[Path, list[Path]] = {}
    for p in paths:
        try:
            top = Path(_git(p.parent, "rev-parse", "--show-toplevel").strip())
        except (OSError, subprocess.CalledProcessError):
            continue
        by_top.setdefault(top, []).append(p)
    for top, mine in by_top.items():
        rel = {p.resolve().relative_to(top.resolve()).as_posix(): p for p in mine}
        dirty = {line[3:] for line in _git(top, "status", "--porcelain", "--no-renames",
                                           "--", *rel).splitlines()}
        committed, when = {}, None
        for line in _git(top, "log", "--format=>%ct", "--name-only", "--no-renames",
                         "--", *rel).splitlines():
            if line.startswith(">"):
                when = float(line[1:])
            elif line in rel and line not in committed and line not in dirty:
                committed[line] = when
        dates.update({rel[name]: t for name, t in committed.items()})
    return dates


def _info(name: str, mode: int, date: float, is_dir: bool = False) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, time.localtime(max(date, 315532800))[:6])  # zip: ≥ 1980
    info.create_system = 3  # Unix: unzip applies the modes below
    info.external_attr = ((0o040000 if is_dir else 0o100000) | mode) << 16 | (0x10 * is_dir)
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def write_zip(entries: dict[str, Path], dest: Path) -> Path:
    """Write ``entries`` to ``dest`` under :data:`KIT_FOLDER`, with its directories, normal
    modes and real dates (a directory's: its newest file's)."""
    dates = file_dates(list(entries.values()))
    named = {f"{KIT_FOLDER}/{n}": dates[p] for n, p in entries.items()}
    dirs: dict[str, float] = {}
    for name, date in named.items():
        for parent in Path(name).parents:
            if str(parent) != ".":
                dirs[str(parent)] = max(dirs.get(str(parent), 0.0), date)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w") as zf:
        for d in sorted(dirs):
            zf.writestr(_info(d + "/", DIR_MODE, dirs[d], is_dir=True), b"")
        for name in sorted(entries):
            zf.writestr(_info(f"{KIT_FOLDER}/{name}", FILE_MODE, dates[entries[name]]),
                        entries[name].read_bytes())
    return dest


def build_student_kit(root: str | Path, dest: str | Path) -> Path:
    """Zip the student kit of course ``root`` into ``dest``; refuse a stale or leaky one."""
    from grader.course.release import release_differences

    root, dest = Path(root).resolve(), Path(dest).resolve()
    problems = release_differences(root)
    if problems:
        raise RuntimeError("release out of sync, run `python -m grader release` first:\n"
                           + "\n".join(problems))
    leaks = instructor_imports(root)
    if leaks:
        raise RuntimeError("student modules import the instructor's: " + ", ".join(leaks))
    return write_zip(kit_entries(root), dest)
