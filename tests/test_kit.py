"""The student kit holds what students need and nothing of the instructor's."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import nbformat
import pytest

from grader.course import student_kit as kit
from grader.course.release import available_assignments

from .conftest import ROOT


@pytest.fixture(scope="module")
def kit_zip(tmp_path_factory) -> Path:
    return kit.build_student_kit(ROOT, tmp_path_factory.mktemp("kit") / "student-kit.zip")


@pytest.fixture(scope="module")
def unzipped(kit_zip, tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("unzipped")
    zipfile.ZipFile(kit_zip).extractall(dest)
    return dest / kit.KIT_FOLDER


def _names(kit_zip: Path) -> set[str]:
    """The kit's files, relative to its one folder."""
    prefix = kit.KIT_FOLDER + "/"
    return {n.removeprefix(prefix) for n in zipfile.ZipFile(kit_zip).namelist()
            if not n.endswith("/")}


def test_kit_unpacks_into_one_folder(kit_zip, unzipped):
    assert [p.name for p in unzipped.parent.iterdir()] == [kit.KIT_FOLDER]
    assert all(n.startswith(kit.KIT_FOLDER + "/") for n in zipfile.ZipFile(kit_zip).namelist())


def test_kit_carries_real_file_dates(kit_zip, tmp_path):
    """A committed file carries its last commit's date; one changed since, its own mtime."""
    import shutil
    import time

    def date(info) -> float:
        return time.mktime((*info.date_time, 0, 0, -1))

    infos = {i.filename: i for i in zipfile.ZipFile(kit_zip).infolist()}
    rel = "grader/checks.py"
    committed = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%ct", "--", rel],
                               capture_output=True, text=True, check=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", rel],
                           capture_output=True, text=True, check=True).stdout.strip()
    if committed and not dirty:
        assert abs(date(infos[f"{kit.KIT_FOLDER}/{rel}"]) - float(committed)) <= 2
    assert len({i.date_time for i in infos.values()}) > 1  # not one fixed date for all
    copy = tmp_path / "course"  # not a git checkout: modification times
    shutil.copytree(ROOT / "notebooks", copy / "notebooks")
    shutil.copytree(ROOT / "grader", copy / "grader", ignore=shutil.ignore_patterns("__pycache__"))
    when = time.mktime((2024, 3, 5, 10, 20, 30, 0, 0, -1))
    os.utime(copy / rel, (when, when))
    entries = kit.kit_entries(copy)
    info = zipfile.ZipFile(kit.write_zip(entries, tmp_path / "k.zip")).getinfo(
        f"{kit.KIT_FOLDER}/{rel}")
    assert info.date_time == (2024, 3, 5, 10, 20, 30)


def test_kit_holds_release_student_modules_and_kit_files_only(kit_zip):
    names = _names(kit_zip)
    for a in available_assignments(ROOT):
        assert f"notebooks/{a}/{a}.ipynb" in names
    package = ROOT / "grader"
    student = {p.relative_to(ROOT).as_posix() for p in package.rglob("*.py")
               if not {"course", "engine"} & set(p.relative_to(package).parts)}
    kit_modules = {n for n in names if n.startswith("grader/")}
    assert kit_modules == student - {"grader/__main__.py"}  # the student folder, whole
    assert {"grader/__init__.py", "grader/checks.py", "grader/compare.py", "grader/blame.py",
            "grader/gradcheck.py", "grader/finite_differences.py", "grader/gradient_relations.py",
            "grader/datasets.py", "grader/selfcheck.py"} <= kit_modules
    assert not [n for n in kit_modules if n.startswith(("grader/course/", "grader/engine/"))]
    assert {"README.md", "pyproject.toml", "jupyter/pyproject.toml",
            "jupyter/labconfig/page_config.json"} <= names
    assert not [n for n in names if n.startswith("solutions/") or "mutants" in n
                or "__pycache__" in n or n.startswith("tests/")]


def test_entries_have_normal_modes_and_the_zip_is_reproducible(kit_zip, tmp_path):
    for info in zipfile.ZipFile(kit_zip).infolist():
        mode = info.external_attr >> 16
        expected = 0o040755 if info.is_dir() else 0o100644
        assert mode == expected, f"{info.filename}: {oct(mode)}"
    again = kit.build_student_kit(ROOT, tmp_path / "again.zip")
    assert again.read_bytes() == kit_zip.read_bytes()


def test_student_modules_import_no_instructor_module():
    assert kit.instructor_imports(ROOT) == []
    init = ast.parse((ROOT / "grader" / "__init__.py").read_text())
    assert not [n for n in ast.walk(init) if isinstance(n, ast.Import | ast.ImportFrom)]


def test_instructor_import_check_catches_a_leak(tmp_path):
    (tmp_path / "grader").mkdir()
    (tmp_path / "grader" / "checks.py").write_text(
        "def f():\n    from grader.engine.coordinator import ClassGrader\n    return ClassGrader\n")
    (tmp_path / "grader" / "selfcheck.py").write_text(
        "import grader.checks\n\ndef agreement():\n    from grader import course\n")
    (tmp_path / "grader" / "engine").mkdir()  # not the student's: not read
    (tmp_path / "grader" / "engine" / "x.py").write_text("import grader.course.cli\n")
    assert kit.instructor_imports(tmp_path) == ["checks.py -> grader.engine.coordinator",
                                                "selfcheck.py -> grader.course"]


def test_kit_modules_import_with_nothing_but_the_kit(unzipped):
    code = ("import sys, grader; assert grader.__file__.startswith(sys.argv[1]), grader.__file__\n"
            "import grader.checks, grader.gradcheck, grader.datasets, grader.selfcheck\n")
    out = subprocess.run([sys.executable, "-c", code, str(unzipped)], cwd=unzipped,
                         capture_output=True, text=True, env={"PYTHONPATH": str(unzipped)})
    assert out.returncode == 0, out.stderr


def _kit_pyproject(unzipped) -> dict:
    return tomllib.loads((unzipped / "pyproject.toml").read_text())


def _dist_name(requirement: str) -> str:
    for sep in "<>=!~[; ":
        requirement = requirement.split(sep)[0]
    return requirement.lower()


def test_kit_depends_on_what_notebooks_import_and_no_instructor_stack(unzipped):
    deps = {_dist_name(r) for r in _kit_pyproject(unzipped)["project"]["dependencies"]}
    assert not deps & {"dask", "distributed", "threadpoolctl"}
    from IPython.core.inputtransformer2 import TransformerManager

    providers = importlib.metadata.packages_distributions()
    missing = set()
    for path in (unzipped / "notebooks").glob("*/*.ipynb"):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code":
                continue
            for node in ast.walk(ast.parse(TransformerManager().transform_cell(cell.source))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                         [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
                for top in {n.split(".")[0] for n in names} - {"grader"}:
                    if top in sys.stdlib_module_names:
                        continue
                    if not {d.lower() for d in providers.get(top, [])} & deps:
                        missing.add(top)
    assert not missing, f"notebooks import {sorted(missing)}, which the kit does not install"


def test_kit_jupyter_settings_keep_validate_and_hide_instructor_pages(unzipped):
    page = json.loads((unzipped / "jupyter/labconfig/page_config.json").read_text())
    disabled = {k for k, v in page["disabledExtensions"].items() if v}
    assert "@jupyter/nbgrader:formgrader" in disabled
    assert "@jupyter/nbgrader:create-assignment" in disabled
    assert "@jupyter/nbgrader:validate-assignment" not in disabled
    settings = tomllib.loads((unzipped / "jupyter/pyproject.toml").read_text())
    installed = [f for files in settings["tool"]["setuptools"]["data-files"].values()
                 for f in files]
    assert all((unzipped / "jupyter" / f).is_file() for f in installed)
    assert "labconfig/page_config.json" in installed
