"""``Depends``: the marker of a parameter whose value a dependency computes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, final

import attrs


@final
@attrs.frozen
class Depends:
    """Marks a parameter as the value of a dependency: ``Annotated[Conn, Depends(connection)]``.

    ``dependency`` is an async function, an async generator function (setup,
    ``yield`` the value, teardown), an async context manager factory (an
    ``@asynccontextmanager`` function or a class), or a sync function that
    cannot block (what it returns is the value, never entered). It takes
    parameters as a handler does; HTTP and WebSocket routes both take them.
    See :mod:`trioweb._depends` for when setup and teardown run.

    Args:
        dependency: What computes the value.
        cache: Run once per request however often the graph uses it (the
            default); False runs it at every use.
        teardown_timeout: Seconds its teardown may take, shielded from
            cancellation; None for the app's ``teardown_timeout``.
        scope: ``"request"`` (the default), or ``"app"``: set up once at startup,
            inside the lifespan, and torn down at shutdown in reverse order,
            after ``app.nursery`` has drained. It takes no parameter but the App.
    """

    dependency: Callable[..., Any]
    cache: bool = True
    teardown_timeout: float | None = None
    scope: str = "request"

    def __attrs_post_init__(self) -> None:
        if not callable(self.dependency):
            raise TypeError(f"Depends() needs a callable, not {self.dependency!r}")
        if self.scope not in ("request", "app"):
            raise ValueError(f"Depends(scope=...) is 'request' or 'app', not {self.scope!r}")
        if self.teardown_timeout is not None and not self.teardown_timeout > 0:
            raise ValueError("teardown_timeout must be a positive number of seconds")
