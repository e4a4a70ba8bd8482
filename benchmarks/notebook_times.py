"""Execute every solution notebook (hidden tests included) in a fresh kernel and print its time.

    python benchmarks/notebook_times.py                  # all assignments
    python benchmarks/notebook_times.py 03_mlp_backprop  # some

Targets (issues 2-5, on 2 cores): 01 under 10 s, 02 under 30 s, 03 and 04 under 60 s. The time
includes the kernel's start. Lines the notebooks print with their key figures (accuracies,
the critical learning rate, the dropout table) are echoed below each time.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader.course.release import available_assignments, source_notebook  # noqa: E402

KEYWORDS = ("accuracy", "critical", "speed-up", "gap", "plain", "dropout", "loss at")


def main(argv: list[str]) -> int:
    for assignment in argv or available_assignments(ROOT):
        nb = nbformat.read(source_notebook(ROOT, assignment), as_version=4)
        client = NotebookClient(nb, timeout=600, kernel_name="python3",
                                resources={"metadata": {"path": str(ROOT)}})
        start = time.perf_counter()
        client.execute()
        print(f"{assignment}: {time.perf_counter() - start:.1f} s")
        for cell in nb.cells:
            for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
                for line in out.get("text", "").splitlines() if out.get("name") == "stdout" else []:
                    if any(k in line.lower() for k in KEYWORDS):
                        print(f"    {line.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
