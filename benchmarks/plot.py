"""Draw docs/_static/performance.png from benchmarks/results.json.

Run: ``.venv/bin/pip install -q -e '.[bench]' && .venv/bin/python benchmarks/plot.py``

The data file holds the numbers README.md reports; after a new run of
``inprocess.py`` and ``wire.py``, update both, then run this and commit the PNG.
"""

from __future__ import annotations

import json
from pathlib import Path

# matplotlib is in the bench extra; CI's mypy runs with the test extra only, without it.
import matplotlib  # type: ignore[import-not-found,unused-ignore]
import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]
from matplotlib.axes import Axes  # type: ignore[import-not-found,unused-ignore]

HERE = Path(__file__).resolve().parent
DATA = HERE / "results.json"
OUT = HERE.parent / "docs" / "_static" / "performance.png"


def bars(axes: Axes, table: dict[str, object], title: str, ylabel: str) -> None:
    apps: list[str] = table["apps"]  # type: ignore[assignment] # the data file's shape
    rows: dict[str, list[float]] = table["rows"]  # type: ignore[assignment]
    width = 0.8 / len(apps)
    for index, app in enumerate(apps):
        xs = [n + (index - (len(apps) - 1) / 2) * width for n in range(len(rows))]
        values = [row[index] for row in rows.values()]
        drawn = axes.bar(xs, values, width, label=app)
        axes.bar_label(drawn, fmt="%g", fontsize=7, padding=1)
    axes.set_xticks(range(len(rows)), list(rows), fontsize=8)
    axes.set_title(title, fontsize=10)
    axes.set_ylabel(ylabel, fontsize=8)
    axes.legend(fontsize=7, loc="upper left", ncols=2)
    axes.margins(y=0.2)


def main() -> None:
    matplotlib.use("Agg")  # no display: write a file
    data = json.loads(DATA.read_text())
    figure, (throughput, latency) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    bars(
        throughput,
        data["wire_throughput_vs_bare"],
        "Requests/s over the wire, relative to the bare ASGI callable",
        "x bare ASGI (higher is better)",
    )
    throughput.set_ylim(0, 1.3)
    bars(
        latency,
        data["disconnect_to_cancelled_ms"],
        "From the client's close() to trio.Cancelled in the handler",
        "milliseconds (lower is better)",
    )
    figure.savefig(OUT, dpi=110)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
