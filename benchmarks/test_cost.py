"""What the test run costs, group by group, and the least time it can take on this machine.

    python benchmarks/test_cost.py                       # every group (as long as a serial run)
    python benchmarks/test_cost.py test_demo as-a-user   # some groups
    python benchmarks/test_cost.py --list                # the groups and their files

The tests run on one pytest-xdist worker per core, a whole group at a time
(``tests/conftest.py``). This runs each group alone, serially (``-n0``), on a machine that
should otherwise be quiet, and prints its wall time and the CPU the whole machine spent meanwhile
(busy core-seconds from ``/proc/stat``: the grader's sandboxed processes included, which no
``rusage`` of pytest sees). The sum over the groups divided by the cores is the least time the
whole run can take here, however the groups are scheduled; the fresh-clone CI adds the install.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTEST = [sys.executable, "-m", "pytest", "-n0", "-q", "-p", "no:cacheprovider"]


class _Groups:
    """A pytest plugin that records each test's xdist group (what the conftest gave it)."""

    def __init__(self):
        self.files: dict[str, list[str]] = {}

    def pytest_collection_finish(self, session):
        for item in session.items:
            path = item.nodeid.split("::")[0]
            marker = item.get_closest_marker("xdist_group")
            group = marker.args[0] if marker else path
            if group.endswith(".ipynb"):  # a notebook executed by nbval
                group = f"nbval {Path(group).stem}"
            files = self.files.setdefault(group, [])
            if path not in files:
                files.append(path)


def groups() -> dict[str, list[str]]:
    """``{group: [its files]}``, in the order pytest collects them."""
    import pytest

    plugin, said = _Groups(), io.StringIO()
    with contextlib.redirect_stdout(said):
        code = pytest.main(["--collect-only", "-q", "-n0", "-p", "no:cacheprovider",
                            "--rootdir", str(ROOT)], plugins=[plugin])
    if code != 0:
        raise SystemExit(f"collecting the tests failed (exit {code}):\n{said.getvalue()[-3000:]}")
    return plugin.files


def busy_seconds() -> float:
    """Core-seconds the machine has spent busy since boot (user, nice, system, irq, steal)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def measure(files: list[str]) -> tuple[float, float, int]:
    """``(wall s, busy core-s, exit code)`` of one group run alone."""
    busy, start = busy_seconds(), time.perf_counter()
    done = subprocess.run(PYTEST + files, cwd=ROOT, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - start, busy_seconds() - busy
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-2000:], file=sys.stderr)
    return wall, cpu, done.returncode


def main(argv: list[str]) -> int:
    os.chdir(ROOT)
    found = groups()
    if "--list" in argv:
        for name, files in found.items():
            print(f"{name:28s} {' '.join(files)}")
        return 0
    unknown = [g for g in argv if g not in found]
    if unknown:
        print(f"no group {', '.join(unknown)}; the groups: {', '.join(found)}", file=sys.stderr)
        return 2
    cores = os.cpu_count() or 1
    rows, failed = [], False
    for name in argv or list(found):
        wall, cpu, code = measure(found[name])
        failed |= code != 0
        rows.append((name, wall, cpu))
        print(f"{name:28s} {wall:7.1f} s wall {cpu:8.1f} core-s"
              f"{'' if code == 0 else f'   FAILED (exit {code})'}", flush=True)
    total = sum(cpu for _, _, cpu in rows)
    longest = max(rows, key=lambda r: r[1])
    print(f"{'all':28s} {sum(w for _, w, _ in rows):7.1f} s wall {total:8.1f} core-s")
    print(f"least time on {cores} cores: {total / cores:.0f} s (core-s / cores); longest group "
          f"{longest[0]} {longest[1]:.0f} s alone")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
