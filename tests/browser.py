"""Shared helpers for browser tests: Debian's chromium driven by Playwright, a JupyterLab server.

Playwright's own browser download does not work here, so this launches the ``chromium``
package (``apt-get install -y chromium``) through ``executable_path``, with ``--no-sandbox``
when running as root (chromium refuses to start as root otherwise). When chromium or the
``playwright`` package is missing the test is skipped with a message that says what to install.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
CHROMIUM_NAMES = ("chromium", "chromium-browser")


def chromium_path() -> str | None:
    """The Debian chromium binary, or None."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def require_browser() -> str:
    """chromium's path; skips the test (saying what to install) when it cannot run."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("browser test needs Playwright: pip install -e '.[test]' (never "
                    "`playwright install`: it uses Debian's chromium)")
    path = chromium_path()
    if path is None:
        pytest.skip("browser test needs Debian's chromium: apt-get install -y chromium")
    return path


@contextlib.contextmanager
def browser_page(viewport=(1400, 1000)) -> Iterator:
    """A Playwright page in headless Debian chromium."""
    from playwright.sync_api import sync_playwright

    path = require_browser()
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, headless=True, args=args)
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            yield page
        finally:
            browser.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def jupyterlab(root: Path, home: Path, env: dict[str, str] | None = None,
               timeout: float = 60) -> Iterator[str]:
    """Run JupyterLab on ``root`` (127.0.0.1, a free port, no token); yield its base URL.

    ``home`` becomes HOME and holds the server's runtime, settings and workspace files, so
    nothing of the user's own Jupyter state is read or changed.
    """
    port = free_port()
    news = home / "settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True, exist_ok=True)
    (news / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    env = {**os.environ, "HOME": str(home), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
           "JUPYTER_CONFIG_DIR": str(home / ".jupyter"), **(env or {})}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
           f"--port={port}", "--ServerApp.token=", "--ServerApp.password=",
           "--ServerApp.disable_check_xsrf=True", f"--ServerApp.root_dir={root}",
           f"--LabApp.workspaces_dir={home / 'workspaces'}",
           f"--LabApp.user_settings_dir={home / 'settings'}",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.expose_app_in_browser=True"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(home / "jupyterlab.log", "wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(url + "/api/status", proc, timeout, home / "jupyterlab.log")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _wait_for(url: str, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"JupyterLab did not answer {url} in {timeout} s:\n"
                       f"{log.read_text()[-3000:]}")


def screenshot(page, name: str) -> Path:
    """Save a screenshot under ``artifacts/`` (git-ignored; CI keeps it)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path
