"""The canaries' memory across runs: passed canary runs, kept per course, never trusted blindly.

An entry holds what one canary run produced (:func:`grader.engine.worker.canary_summary`) under
the full description of what it depended on (its *material*: the environment of
:mod:`grader.engine.environment`, the sanitized notebook, the assignment's data files, the
limits, the sandbox flag, the judge, the protected paths). Its file name is the hash of that
material, so anything that changed is a miss and the canary runs again.

It lives in ``<course>/.dlgrader/canaries/``: inside the course, which the sandbox never shows
to student code (not even read-only; the isolation probe proves it each run), and outside every
folder nbgrader copies to students. Only passed runs are stored. On reading, an entry must parse,
describe exactly the material asked for and carry a valid HMAC (a per-course secret, 0600, next
to the entries): a corrupt, truncated, edited or foreign entry is a miss. What a valid entry
holds is still only *evidence*: the coordinator scores it again with the current code before
trusting it (:meth:`grader.engine.canary.Canaries.start`), and runs the canary afresh if it
does not pass.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path

CACHE_DIR = ".dlgrader/canaries"
FORMAT = 1


def _canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


class CanaryCache:
    """Passed canary runs of one course, by the material they depended on."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def _secret(self, create: bool) -> bytes | None:
        path = self.folder / "secret"
        try:
            data = path.read_bytes()
            if len(data) == 32:
                return data
        except OSError:
            pass
        if not create:
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        data = os.urandom(32)
        tmp = path.with_name(f".secret-{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
        return data

    def path(self, material: dict) -> Path:
        name = hashlib.sha256(_canonical({"format": FORMAT, **material})).hexdigest()
        return self.folder / f"{name}.json"

    @staticmethod
    def _mac(secret: bytes, material: dict, result: dict) -> str:
        return hmac.new(secret, _canonical([FORMAT, material, result]), "sha256").hexdigest()

    def load(self, material: dict) -> dict | None:
        """The result stored for exactly ``material``; None when absent or not genuine."""
        secret = self._secret(create=False)
        if secret is None:
            return None
        try:
            entry = json.loads(self.path(material).read_text())
            if entry.get("format") != FORMAT or entry.get("material") != material:
                return None
            result = entry["result"]
            if not isinstance(result, dict) or not hmac.compare_digest(
                    str(entry.get("mac", "")), self._mac(secret, material, result)):
                return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        return result

    def store(self, material: dict, result: dict) -> None:
        """Keep a passed canary run (atomically: a reader sees the old entry or the new)."""
        result = json.loads(json.dumps(result))  # as it will read back (string keys)
        secret = self._secret(create=True)
        path = self.path(material)
        entry = {"format": FORMAT, "material": material, "result": result,
                 "mac": self._mac(secret, material, result)}
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(entry))
        os.replace(tmp, path)
