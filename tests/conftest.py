"""Shared fixtures: the integration tests serve each module's ``app`` fixture."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from trioweb import Server


class Probe:
    """What handlers report to the test, so it knows where they are without sleeping."""

    def __init__(self) -> None:
        self.record: list[str] = []
        self.errors: list[str] = []
        self.objects: list[Any] = []  # tokens, sockets: kept to check after the request
        self.entered = trio.Event()
        self.done = trio.Event()

    async def child(self) -> None:
        """A task started in the request's nursery: waits until cancelled, and says so."""
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            self.record.append("child cancelled")
            raise

    async def hold(self, seconds: float) -> None:
        """What a slow handler does: say it got here, wait, note a cancellation, say it is done."""
        self.entered.set()
        try:
            await trio.sleep(seconds)
        except trio.Cancelled:
            self.record.append("handler cancelled")
            raise
        finally:
            self.done.set()


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
def server(live_server: Server) -> Server:
    """The module's app on a real hypercorn (trioweb's own live_server fixture)."""
    return live_server
