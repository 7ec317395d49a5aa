"""Instructions per request, counted by callgrind: repeatable whatever the load.

Run: ``python benchmarks/instructions.py`` (needs ``valgrind``). Each app and
route is driven in its own process under ``valgrind --tool=callgrind``:
``--warmup`` requests, then ``--count`` more between two calls of
``os.getppid()``, where callgrind dumps and zeroes its counters
(``--dump-before=getppid``). The second dump, divided by ``--count``, is what
one request costs, start-up and imports excluded. Wall time on a loaded
machine swings by tens of percent; this does not (to a few tenths of one).

The apps and routes are those of ``inprocess.py``; ``--baseline DIR`` measures
another trioweb package directory as one more app, as there.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

import inprocess

APPS = ("trioweb", "starlette", "fastapi")
BASELINE = "trioweb (baseline)"


def factory(name: str, baseline: Path | None) -> Any:
    if name == BASELINE:
        assert baseline is not None
        package = inprocess.load_baseline(baseline)
        return lambda: inprocess.trioweb_app(package)
    return inprocess.PEERS[name]


async def drive(
    app_name: str, route: str, warmup: int, requests: int, baseline: Path | None
) -> None:
    async with trio.open_nursery() as nursery:
        app = factory(app_name, baseline)()
        await inprocess.lifespan_startup(app, nursery)
        await inprocess.time_app(app, route, warmup)
        os.getppid()  # callgrind dumps here: start-up and warm-up
        await inprocess.time_app(app, route, requests)
        os.getppid()  # and here: the requests measured
        nursery.cancel_scope.cancel()


def count_instructions(
    app: str, route: str, warmup: int, requests: int, baseline: Path | None
) -> float:
    """Instructions per request of ``app`` on ``route``."""
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            "--dump-before=getppid",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--child",
            app,
            route,
            str(warmup),
            str(requests),
        ]
        if baseline is not None:
            command += ["--baseline", str(baseline)]
        env = dict(os.environ, PYTHONHASHSEED="0")
        subprocess.run(command, check=True, capture_output=True, env=env)
        # Dumps are numbered from 1: the second holds the measured requests.
        text = Path(f"{out}.2").read_text()
        match = re.search(r"^summary: (\d+)", text, re.MULTILINE)
        if match is None:
            raise RuntimeError("no summary line in callgrind's output")
        return int(match.group(1)) / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="requests measured")
    parser.add_argument("--warmup", type=int, default=300, help="requests before them")
    parser.add_argument("--baseline", type=Path, help="another trioweb package directory")
    parser.add_argument("--apps", default=",".join(APPS), help="comma-separated")
    parser.add_argument("--routes", default=",".join(inprocess.ROUTES), help="comma-separated")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        app, route, warmup, requests = args.child
        trio.run(drive, app, route, int(warmup), int(requests), args.baseline)
        return
    apps = args.apps.split(",")
    if args.baseline is not None and BASELINE not in apps:
        apps.append(BASELINE)
    labels = args.routes.split(",")
    results: dict[tuple[str, str], float] = {}
    for label in labels:
        for app in apps:
            route = inprocess.ROUTES[label]
            results[app, label] = count_instructions(
                app, route, args.warmup, args.count, args.baseline
            )
            print(f"{app:20} {label:40} {results[app, label]:9.0f} instructions/request")
    others = [app for app in apps if app != "starlette"]
    print()
    print("| route | " + " | ".join(apps) + " | " + " | ".join(f"{a}/starlette" for a in others))
    print("|---" * (1 + len(apps) + len(others)) + "|")
    for label in labels:
        cells = [f"{results[app, label]:.0f}" for app in apps]
        if "starlette" in apps:
            base = results["starlette", label]
            cells += [f"{results[app, label] / base:.3f}" for app in others]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
