"""Intake: read one student's submitted assignment and make it safe to execute.

Malformed JSON, a wrong or missing notebook name and extra files are reported; grade cells the
student deleted, duplicated, retyped or stripped of metadata are repaired (and flagged); then
nbgrader's own sanitising preprocessors run (clear outputs, restore test cells from the
gradebook, ...). Nothing here executes student code.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from grader.engine.repairs import repair_grade_cells

MAX_EXTRA_BYTES = 20 * 1024 * 1024
#: nbgrader's own files in a collected submission (its exchange's bookkeeping, not the
#: student's work): never copied into the job, carried to ``autograded/`` and ``feedback/``
NBGRADER_FILES = ("timestamp.txt", "submission_secret.txt")
FORMAT_VERSION = 2  # bump to invalidate every fingerprint


class GradingError(Exception):
    """A submission that cannot be graded; the message says why, for the instructor."""


@dataclass
class Prepared:
    student: str
    assignment: str
    notebooks: dict[str, NotebookNode]  # notebook id -> sanitized notebook
    resources: dict[str, dict]
    extra_files: dict[str, bytes]
    fingerprint: str
    flags: list[str]
    missing: list[str]  # notebook ids not submitted (scored 0, as nbgrader does)
    seconds: float = 0.0  # time the coordinator took to prepare it


def sha256(*chunks: bytes) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(hashlib.sha256(c).digest())
    return h.hexdigest()


def _choose(sub: Path, notebook_ids: list[str], flags: list[str]) -> tuple[dict, list[str]]:
    ipynbs = sorted(p for p in sub.glob("*.ipynb") if not p.name.startswith("."))
    expected = {f"{nb}.ipynb" for nb in notebook_ids}
    present = {p.name: p for p in ipynbs}
    chosen = {nb: present[f"{nb}.ipynb"] for nb in notebook_ids if f"{nb}.ipynb" in present}
    missing = [nb for nb in notebook_ids if nb not in chosen]
    strays = [p for p in ipynbs if p.name not in expected]
    if len(missing) == 1 and len(strays) == 1:
        chosen[missing[0]] = strays[0]
        flags.append(f"notebook named {strays[0].name}, expected {missing[0]}.ipynb: "
                     "graded as that notebook")
        missing, strays = [], []
    if not chosen:
        found = ", ".join(p.name for p in ipynbs) or "nothing"
        raise GradingError(
            f"no notebook to grade in {sub}: expected {', '.join(sorted(expected))}, "
            f"found {found}")
    if missing:
        flags.append(f"missing notebook(s) {', '.join(missing)}: scored 0")
    for p in strays:
        flags.append(f"extra notebook {p.name} ignored")
    return chosen, missing


def _extra_files(sub: Path, source_dir: Path, ignore: list[str], flags: list[str]) -> dict:
    extra: dict[str, bytes] = {}
    total = 0
    for path in sorted(sub.rglob("*")):
        rel = path.relative_to(sub).as_posix()
        if not path.is_file() or path.suffix == ".ipynb" or rel in NBGRADER_FILES:
            continue
        if any(part.startswith(".") for part in path.relative_to(sub).parts):
            continue
        size = path.stat().st_size
        if total + size > MAX_EXTRA_BYTES:
            flags.append(f"extra file {rel} ({size} bytes) left out: over the size limit")
            continue
        extra[rel] = path.read_bytes()
        total += size
    if extra:
        flags.append(f"extra files copied alongside: {', '.join(sorted(extra))}")
    extra.update(source_files(source_dir, ignore))  # instructor's data files win, as in nbgrader
    return extra


def source_files(source_dir: Path, ignore: list[str]) -> dict[str, bytes]:
    """The instructor's data files of an assignment (every file but its notebooks)."""
    files = {}
    for path in sorted(source_dir.rglob("*")):
        rel = path.relative_to(source_dir)
        if path.is_file() and path.suffix != ".ipynb" and not any(
                fnmatch.fnmatch(part, pat) for part in rel.parts for pat in ignore):
            files[rel.as_posix()] = path.read_bytes()
    return files


def parse(raw: bytes, name: str) -> NotebookNode:
    try:
        return nbformat.reads(raw.decode("utf-8"), as_version=4)
    except UnicodeDecodeError as exc:
        raise GradingError(f"{name} is not UTF-8 text: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - nbformat raises several kinds for bad JSON
        raise GradingError(f"{name} is not a readable notebook: {exc}".splitlines()[0]) from None


def sanitize(grader, student: str, assignment: str, nb_id: str, nb: NotebookNode):
    """Repair, then nbgrader's sanitising preprocessors; return ``(nb, resources, flags)``."""
    from nbgrader.converters import Autograde

    flags = []
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError:
        nb = nbformat.from_dict(nb)
        flags.append("notebook did not validate against nbformat; repaired")
    for cell in nb.cells:  # outputs never matter and may be huge
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    flags += repair_grade_cells(nb, grader.release_notebook(assignment, nb_id))
    res = {
        "unique_key": nb_id,
        "output_files_dir": f"{nb_id}_files",
        "nbgrader": {"student": student, "assignment": assignment, "notebook": nb_id,
                     "db_url": grader.coursedir.db_url},
    }
    steps = grader.config.Autograde.get("sanitize_preprocessors") or \
        Autograde.class_traits()["sanitize_preprocessors"].default()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            nb, res = grader.apply(steps, nb, res)
        except Exception as exc:  # noqa: BLE001
            raise GradingError(f"{nb_id}: nbgrader could not sanitize it: {exc}") from None
    return nb, res, flags


def prepare(grader, student: str, assignment: str, notebook_ids: list[str]) -> Prepared:
    """Everything the workers and the commit need for one student's assignment."""
    cd = grader.coursedir
    sub = grader.path(cd.submitted_directory, student, assignment)
    flags: list[str] = []
    chosen, missing = _choose(sub, notebook_ids, flags)
    source_dir = Path(cd.format_path(cd.source_directory, ".", assignment))
    extra = _extra_files(sub, source_dir, list(cd.ignore), flags)
    raw = {nb: chosen[nb].read_bytes() for nb in chosen}
    source_bytes = [(source_dir / f"{nb}.ipynb").read_bytes() for nb in notebook_ids
                    if (source_dir / f"{nb}.ipynb").is_file()]
    fingerprint = sha256(str(FORMAT_VERSION).encode(), json.dumps(sorted(chosen)).encode(),
                         *[raw[nb] for nb in sorted(raw)], *[extra[k] for k in sorted(extra)],
                         *source_bytes)
    notebooks, resources = {}, {}
    for nb_id in chosen:
        nb = parse(raw[nb_id], chosen[nb_id].name)
        nb, res, nb_flags = sanitize(grader, student, assignment, nb_id, nb)
        flags += [f"{nb_id}: {f}" for f in nb_flags]
        notebooks[nb_id], resources[nb_id] = nb, res
    return Prepared(student, assignment, notebooks, resources, extra, fingerprint, flags, missing)
