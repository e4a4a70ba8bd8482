"""A student's session in a real browser: the student kit in JupyterLab, driven by Playwright.

The kit is built and unzipped into a temporary folder; JupyterLab runs on it with the kit's
Jupyter settings (``jupyter/``, what ``pip install ./jupyter`` installs) and the kit's
``grader`` package first on the path. Debian's chromium then:

1. opens every release notebook, waits for its kernel, and checks that it is not marked
   modified (a notebook that changes on open makes every student's file differ);
2. checks nbgrader's instructor pages are gone and the Validate button is there;
3. runs all cells of a solved notebook 01 (no error output in the saved file) and presses
   Validate: "Success";
4. presses Validate on notebook 01 with one known bug: the dialog names the failing test with
   the message ``dlcheck`` prints for it.

Screenshots go to ``artifacts/`` (git-ignored). Needs ``apt-get install -y chromium``.
"""

from __future__ import annotations

import json
import time
import urllib.request
import zipfile

import nbformat
import pytest

from grader import selfcheck
from grader.course import student_kit as kit
from grader.course.release import available_assignments, release_notebook, source_notebook
from grader.course.submissions import fill, load_mutants, mutate, reference_answers

from .browser import browser_page, jupyterlab, require_browser, screenshot
from .conftest import ROOT

SOLVED = "01_linear_regression"
BUG = "grad_missing_factor_2"
DIALOG_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def kit_dir(tmp_path_factory):
    require_browser()
    root = tmp_path_factory.mktemp("student")
    zipfile.ZipFile(kit.build_student_kit(ROOT, root / "kit.zip")).extractall(root / "kit")
    kit_root = root / "kit" / kit.KIT_FOLDER
    release = nbformat.read(release_notebook(ROOT, SOLVED), as_version=4)
    answers = reference_answers(nbformat.read(source_notebook(ROOT, SOLVED), as_version=4))
    (bug,) = [m for m in load_mutants(ROOT / "solutions" / f"{SOLVED}.mutants.toml")
              if m.name == BUG]
    for folder, nb in (("solved", fill(release, answers)), ("buggy", fill(release, mutate(
            answers, bug)))):
        (kit_root / folder).mkdir()
        nbformat.write(nb, kit_root / folder / f"{SOLVED}.ipynb")
    return kit_root


KERNEL_IDLE = """() => {
    const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const k = w && w.sessionContext && w.sessionContext.session
              && w.sessionContext.session.kernel;
    return !!k && k.connectionStatus === 'connected' && k.status === 'idle';
}"""
_T0 = [time.monotonic()]


def _step(text: str) -> None:
    print(f"[{time.monotonic() - _T0[0]:6.1f} s] {text}", flush=True)


def _app(page, url: str, path: str) -> None:
    """Load JupyterLab on notebook ``path`` and wait until its kernel is idle."""
    page.goto(f"{url}/lab/tree/{path}?reset")
    page.wait_for_selector(".jp-Notebook", timeout=60_000)
    page.wait_for_function(KERNEL_IDLE, timeout=60_000)
    _step(f"opened {path}, kernel idle")


def _open(page, path: str) -> None:
    """Open notebook ``path`` in the running JupyterLab and wait until its kernel is idle."""
    page.evaluate("p => window.jupyterapp.commands.execute('docmanager:open', {path: p})"
                  ".then(() => null)", path)
    page.wait_for_function(f"() => window.jupyterapp.shell.currentWidget.context.path === "
                           f"'{path}'", timeout=60_000)
    page.wait_for_function(KERNEL_IDLE, timeout=60_000)
    _step(f"opened {path}, kernel idle")


def _shut_down_kernels(url: str) -> None:
    with urllib.request.urlopen(f"{url}/api/kernels", timeout=10) as response:
        kernels = json.load(response)
    for k in kernels:
        request = urllib.request.Request(f"{url}/api/kernels/{k['id']}", method="DELETE")
        urllib.request.urlopen(request, timeout=30).close()


def _command(page, command: str) -> None:
    page.evaluate(f"() => window.jupyterapp.commands.execute('{command}')")


def _metadata_changes(page, path) -> dict:
    """``{key: (in the file, in JupyterLab)}`` of the notebook metadata JupyterLab changed."""
    live = page.evaluate("() => window.jupyterapp.shell.currentWidget.context.model.metadata")
    saved = dict(nbformat.read(path, as_version=4).metadata)
    return {k: (saved.get(k), live.get(k)) for k in set(saved) | set(live)
            if saved.get(k) != live.get(k)}


def _is_dirty(page) -> bool:
    """Whether the notebook in front is marked modified."""
    return page.evaluate("() => window.jupyterapp.shell.currentWidget.context.model.dirty")


def _current(page) -> str:
    """CSS selector of the notebook panel in front."""
    return "#" + page.evaluate("() => window.jupyterapp.shell.currentWidget.id")


def _validate(page) -> str:
    page.click(f"{_current(page)} .validate-button")
    dialog = page.wait_for_selector(".jp-Dialog-content", timeout=DIALOG_TIMEOUT_MS)
    page.wait_for_function(
        "() => !/Validating|Saving/.test(document.querySelector('.jp-Dialog-content').innerText)",
        timeout=DIALOG_TIMEOUT_MS)
    return dialog.inner_text()


def _run_all(page, timeout: float = 120) -> None:
    """Run all cells of the notebook in front; return when the kernel is idle and none waits."""
    _command(page, "notebook:run-all-cells")
    busy = f"""() => [...document.querySelectorAll('{_current(page)} .jp-InputPrompt')]
        .some(p => p.textContent.includes('*'))"""
    deadline, quiet = time.monotonic() + timeout, 0
    while time.monotonic() < deadline and quiet < 2:
        page.wait_for_timeout(500)
        quiet = quiet + 1 if page.evaluate(KERNEL_IDLE) and not page.evaluate(busy) else 0
    if quiet < 2:
        raise TimeoutError(f"run all cells did not finish in {timeout} s")


def _close_all(page, url: str) -> None:
    """Close every open notebook without saving (no dialog) and shut their kernels down."""
    page.evaluate("""() => { for (const w of [...window.jupyterapp.shell.widgets('main')]) {
        if (w.context) { w.context.model.dirty = false; } w.dispose(); } }""")
    _shut_down_kernels(url)


def test_student_session_in_jupyterlab(kit_dir, tmp_path):
    start = _T0[0] = time.monotonic()
    env = {"JUPYTER_CONFIG_PATH": str(kit_dir / "jupyter"), "PYTHONPATH": str(kit_dir)}
    with jupyterlab(kit_dir, tmp_path, env) as url, browser_page() as page:
        page.set_default_timeout(60_000)
        modified = {}
        for i, a in enumerate(available_assignments(ROOT)):
            path = f"notebooks/{a}/{a}.ipynb"
            _app(page, url, path) if i == 0 else _open(page, path)
            page.wait_for_timeout(1000)  # metadata updates land right after the kernel starts
            screenshot(page, f"open-{a}")
            if _is_dirty(page):
                modified[a] = _metadata_changes(page, kit_dir / path)
        _step(f"marked modified on open: {modified}")
        _close_all(page, url)

        _open(page, f"solved/{SOLVED}.ipynb")
        assert page.locator(f"{_current(page)} .validate-button").count() == 1, "no Validate"
        menus = page.locator(".lm-MenuBar-itemLabel").all_inner_texts()
        commands = page.evaluate("() => window.jupyterapp.commands.listCommands()")
        instructor = [c for c in commands if "formgrader" in c or "create-assignment" in c]
        assert "Nbgrader" not in menus and not instructor, (menus, instructor)

        _run_all(page)
        _step("ran all cells")
        _command(page, "docmanager:save")
        page.wait_for_timeout(1000)
        screenshot(page, "run-all-solved")
        saved = nbformat.read(kit_dir / "solved" / f"{SOLVED}.ipynb", as_version=4)
        errors = [o.get("ename") for c in saved.cells if c.cell_type == "code"
                  for o in c.outputs if o.output_type == "error"]
        assert not errors, f"run all cells of the solved notebook: errors {errors}"
        text = _validate(page)
        _step("validated the solved notebook")
        screenshot(page, "validate-solved")
        assert "Success! Your notebook passes all the tests." in text, text[:2000]
        page.keyboard.press("Escape")

        _step("dlcheck on the buggy notebook")
        expected = [r for r in selfcheck.check(kit_dir / "buggy" / f"{SOLVED}.ipynb")
                    if not r.passed]
        _open(page, f"buggy/{SOLVED}.ipynb")
        text = _validate(page)
        _step("validated the buggy notebook")
        screenshot(page, "validate-buggy")
    assert expected, f"mutant {BUG} fails no visible test"
    assert text.count("The following cell failed") == len(expected), text[:2000]
    for r in expected:
        first = r.message.splitlines()[0]
        shown = "Partial credit" if first.startswith("the test cell's last line") else first
        assert shown in text, f"{r.grade_id}: {shown!r} not in the Validate dialog"
    assert not modified, f"marked modified on open (metadata file vs JupyterLab): {modified}"
    _step(f"the session took {time.monotonic() - start:.0f} s")  # a time, not a gate
