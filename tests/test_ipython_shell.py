"""The grader's IPython shell draws each figure once: the PNG a cell shows is the same bytes as
with pyplot's own ``post_execute`` redraw, for one draw fewer."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import json, sys
    from grader.engine import ipython_shell as sh

    sh.preload()
    shell = sh.get_shell()
    import matplotlib.figure, matplotlib.pyplot as plt

    if sys.argv[1] == "with-pyplot-redraw":  # what a stock IPython kernel does
        shell.events.register("post_execute", plt._draw_all_if_interactive)
    draws = [0]
    plain_draw = matplotlib.figure.Figure.draw

    def counted(self, renderer):
        draws[0] += 1
        return plain_draw(self, renderer)

    matplotlib.figure.Figure.draw = counted

    class Limits:
        cell_timeout, max_output_chars, max_rich_chars = 60.0, 10_000, 10_000_000

    cells = ["%matplotlib inline\\nimport numpy as np\\nimport matplotlib.pyplot as plt",
             "fig, ax = plt.subplots()\\nax.plot(np.arange(5) ** 2)\\nax.set_title('squares')",
             "plt.figure()\\nplt.contourf(np.outer(np.arange(9), np.arange(9)))\\nplt.colorbar()"]
    pngs = []
    for source in cells:
        outputs = []
        assert not sh.run_cell(shell, source, outputs, Limits()), outputs
        pngs += [o["data"]["image/png"] for o in outputs if "image/png" in o.get("data", {})]
    print(json.dumps({"draws": draws[0], "pngs": pngs}))
""")


def _run(mode):
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def test_each_figure_is_drawn_once_less_and_its_png_is_unchanged():
    ours, stock = _run("ours"), _run("with-pyplot-redraw")
    assert len(ours["pngs"]) == 2, "each figure cell shows one PNG"
    assert ours["pngs"] == stock["pngs"]
    assert ours["draws"] == stock["draws"] - 2, (ours["draws"], stock["draws"])
