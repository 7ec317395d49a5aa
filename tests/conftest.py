"""Shared fixtures: the integration tests serve each module's ``app`` fixture."""

from __future__ import annotations

import pytest

from trioweb import Server


@pytest.fixture
def server(live_server: Server) -> Server:
    """The module's app on a real hypercorn (trioweb's own live_server fixture)."""
    return live_server
