"""run() in this process: the signals it obeys, and its exit status."""

from __future__ import annotations

import os
import signal

import pytest

from trioweb import App
from trioweb._supervise import run


def signalling_app(*signums: signal.Signals) -> App:
    """An app that, once started, sends this process the given signals (run() receives them)."""
    app = App()

    @app.on_startup
    async def start() -> None:
        for signum in signums:
            os.kill(os.getpid(), signum)  # this test's own process

    return app


def test_one_signal_shuts_down_gracefully_and_run_returns() -> None:
    run(signalling_app(signal.SIGTERM), "127.0.0.1", 0)


def test_a_second_signal_stops_at_once_with_status_1() -> None:
    with pytest.raises(SystemExit) as caught:
        run(signalling_app(signal.SIGTERM, signal.SIGINT), "127.0.0.1", 0)
    assert caught.value.code == 1


def test_a_failed_startup_exits_1() -> None:
    app = App()

    @app.on_startup
    async def start() -> None:
        raise RuntimeError("no database")

    with pytest.raises(SystemExit) as caught:
        run(app, "127.0.0.1", 0)
    assert caught.value.code == 1


def test_a_port_in_use_exits_with_one_line() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(SystemExit, match="Address already in use"):
            run(App(), "127.0.0.1", taken.getsockname()[1])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"workers": 2}, "need the app as 'MODULE:ATTR'"),
        ({"reload": True}, "need the app as 'MODULE:ATTR'"),
    ],
)
def test_workers_and_reload_need_an_import_string(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run(App(), "127.0.0.1", 0, **options)  # type: ignore[arg-type]  # values of mixed types


def test_workers_and_reload_together_are_refused() -> None:
    with pytest.raises(ValueError, match="not both"):
        run("tests.serve_app:app", "127.0.0.1", 0, workers=2, reload=True)


def test_an_import_string_is_loaded_for_one_process() -> None:
    from tests import serve_app

    serve_app.app.on_startup(signalling_app(signal.SIGTERM)._on_startup[0])
    try:
        run("tests.serve_app:app", "127.0.0.1", 0)
    finally:
        serve_app.app._on_startup.pop()
