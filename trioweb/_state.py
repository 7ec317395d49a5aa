"""``State``: the attribute namespaces ``app.state`` and ``request.state``."""

from __future__ import annotations

import types
from typing import Any, final


@final
class State(types.SimpleNamespace):
    """An attribute namespace: ``app.state.pool = pool`` in lifespan, read per request.

    ``app.state`` lives as long as the app (set it up in ``on_startup`` or the
    lifespan context); ``request.state`` is fresh for every request.
    """

    def __getattr__(self, name: str) -> Any:
        # Only reached for a missing attribute: say which namespace lacks it.
        raise AttributeError(f"state has no attribute {name!r} (set it first)")
