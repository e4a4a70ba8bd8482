"""What mode ``bwrap`` costs per notebook against ``userns`` (and root, where this runs as
root): the same small judged and unjudged jobs through :func:`run_notebook`, each mode forced
with ``DLGRADE_SANDBOX`` in a fresh process, all in this one run.

    python benchmarks/bwrap_cost.py [repeats]

Prints the median seconds per job in each mode and the ratio to ``userns``. Bwrap starts a
fresh interpreter per sandboxed process (it cannot fork the pre-warmed zygote into its
namespaces); userns and root fork the zygote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = r"""
import json, statistics, sys, time
from grader.engine import sandbox
from grader.engine.job import Job, Limits
from grader.engine.worker import run_notebook
mode = sandbox.mode()
out = {"mode": mode}
for judge in (False, True):
    run_notebook(Job("warm", {0: "x = 1"}, judge=judge))  # the zygote started, not counted
    times = []
    for i in range(int(sys.argv[1])):
        t = time.perf_counter()
        r = run_notebook(Job(f"t{i}", {0: "import numpy as np\nx = np.ones(3).sum()",
                                       1: "print(x)"}, limits=Limits(notebook_timeout=60),
                             judge=judge))
        assert r.status == "ok" and r.sandbox.get("mode") == mode, (r.status, r.detail)
        times.append(time.perf_counter() - t)
    out["judged" if judge else "unjudged"] = statistics.median(times)
print("RESULT", json.dumps(out))
"""


def measure(mode: str, repeats: int) -> dict | None:
    env = dict(os.environ, DLGRADE_SANDBOX=mode)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(repeats)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
    if not line:
        print(f"{mode}: did not run ({proc.stderr.strip()[-300:]})")
        return None
    return json.loads(line[0].split(" ", 1)[1])


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    modes = (["root"] if os.geteuid() == 0 else []) + ["userns", "bwrap"]
    found = {m: measure(m, repeats) for m in modes}
    base = found.get("userns")
    print(f"median seconds per job ({repeats} each), ratio to userns:")
    for m, r in found.items():
        if r is None or r["mode"] != m:
            print(f"  {m:7s} not available here ({r and r['mode']})")
            continue
        ratio = "" if base is None else "  ".join(
            f"{k} x{r[k] / base[k]:.2f}" for k in ("unjudged", "judged"))
        print(f"  {m:7s} unjudged {r['unjudged']:.2f} s  judged {r['judged']:.2f} s   {ratio}")


if __name__ == "__main__":
    main()
