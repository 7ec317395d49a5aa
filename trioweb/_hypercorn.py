"""What trioweb knows of hypercorn, in one place (and what each piece relies on).

Hypercorn 0.18's Trio worker, as measured on this project's machine:

* ``receive`` is the bound ``receive`` method of a Trio memory channel
  (``hypercorn.trio.task_group.TaskGroup.spawn_app``). What it has queued,
  usually the whole request body, can be taken with the channel's
  ``receive_nowait()`` without a checkpoint: :func:`receive_nowait_of`.
* It queues ``http.disconnect`` after every complete response too, not only
  when the client leaves (``HTTPStream.handle(StreamClosed)``): ``_http_state``
  treats one after the final body message as the normal end.
* ``send()`` never raises once the client is gone, and on HTTP/2 it can wait
  forever for flow control from a client that left: :func:`watch_from_start`
  makes such requests watched before their first send, so a disconnect can
  cancel it.
* A memory channel's ``receive()`` never returns a queued message in a
  cancelled scope (hypercorn issue 210): the watcher has no scope to cancel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ._outcome import DisconnectReason

ReceiveNowait = Callable[[], dict[str, Any]]


def receive_nowait_of(receive: Callable[..., Any]) -> ReceiveNowait | None:
    """The non-blocking twin of hypercorn's ``receive``, when it has one."""
    nowait: ReceiveNowait | None = getattr(
        getattr(receive, "__self__", None), "receive_nowait", None
    )
    return nowait


#: The HTTP versions whose sends may hang on a gone client (flow control).
MULTIPLEXED = frozenset({"2", "3"})


def watch_from_start(scope: dict[str, Any]) -> bool:
    """Whether sends may hang on a gone client (HTTP/2 and 3 flow control)."""
    return scope.get("http_version", "1.1") in MULTIPLEXED


#: The ASGI scope extension through which the connection layer under the app
#: (trioweb's own serving, or the test client) tells what an ``http.disconnect``
#: meant, and lets the app abandon the connection. Hypercorn itself says neither.
CONNECTION_EXTENSION = "trioweb.connection"


class Connection(Protocol):
    """What ``scope["extensions"]["trioweb.connection"]`` offers."""

    def disconnect_reason(self) -> DisconnectReason:
        """Why the client is gone: a reset stream, a dead peer, or it left."""
        ...

    def abort(self) -> None:
        """Close the connection now, whatever is being sent (a shielded write fails).

        For an HTTP/2 request, the extension is its stream: only the stream is reset.
        """
        ...


def connection_of(scope: dict[str, Any]) -> Connection | None:
    """The connection layer's handle for this request, where there is one."""
    extensions = scope.get("extensions")
    return extensions.get(CONNECTION_EXTENSION) if extensions else None


def disconnect_reason(scope: dict[str, Any]) -> DisconnectReason:
    """What an ``http.disconnect`` for this request means."""
    connection = connection_of(scope)
    return (
        DisconnectReason.CLIENT_DISCONNECTED
        if connection is None
        else connection.disconnect_reason()
    )
