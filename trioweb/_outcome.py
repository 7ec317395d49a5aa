"""How a request ended, and why it was abandoned: values shared by every exchange (pure)."""

from __future__ import annotations

import enum
from typing import final


class Outcome(enum.Enum):
    """How a request ended (logged, and reported to the test client).

    Only :attr:`COMPLETED` is a normal end. The exchange sets the first
    outcome that happens and keeps it: a client that leaves after its request
    timed out does not turn the timeout into a disconnect.
    """

    COMPLETED = "completed"
    DISCONNECTED = "disconnected"  # abandoned: the token's reason says why
    TIMED_OUT = "timed out"
    ABORTED = "aborted"
    TOO_LARGE = "body too large"
    TOO_SLOW = "client too slow"  # the body came too slowly: answered 408
    FAILED = "failed"
    SHUTDOWN = "cancelled by shutdown"  # the server's graceful period ended first


@final
class DisconnectReason(enum.Enum):
    """Why a request was abandoned: what ``DisconnectToken.reason`` says once it is set.

    The first reason stays: a server that shuts down after the client left
    does not turn the disconnect into a shutdown. Every INFO line about an
    abandoned request names it (``GET /x cancelled: client too slow after
    3.01s``).

    What the server can and cannot tell apart:

    * A client that closes its socket (FIN or RST) is :attr:`CLIENT_DISCONNECTED`
      at once. One whose network went dark sends nothing at all: it is seen
      only when the dead-peer timeout (TCP keepalive and ``TCP_USER_TIMEOUT``)
      ends the connection, and is then :attr:`CONNECTION_TIMED_OUT`. Where the
      peer of a timed-out connection still acknowledged the kernel's probes
      lately (``TCP_INFO``, Linux only) it was alive but kept its receive
      window shut: :attr:`CLIENT_TOO_SLOW`.
    * A write that blocks is :attr:`CLIENT_TOO_SLOW` when the minimum response
      rate cuts it, whether the client stopped reading, reads slowly, or
      vanished with the socket buffers full: whichever bound runs out first
      (the minimum rate, by default after 5 s, or the dead-peer timeout) names
      it. An upload below the minimum request rate is :attr:`CLIENT_TOO_SLOW`
      too (answered 408).
    * Over HTTP/2, a stream that ends while its connection stays open was
      reset (``RST_STREAM``): :attr:`STREAM_RESET`; when the whole connection
      closes, each of its streams is :attr:`CLIENT_DISCONNECTED`. HTTP/1.1 has
      no stream reset: a reset connection is :attr:`CLIENT_DISCONNECTED`.
    * A WebSocket client's close frame arrives as 1006 (hypercorn issue 127),
      like a dropped connection, and over HTTP/2 like a reset stream: all are
      :attr:`CLIENT_DISCONNECTED`, and a WebSocket is never
      :attr:`STREAM_RESET`. A dead peer or a cut write is told as for HTTP.
    * :attr:`SERVER_SHUTDOWN`: an HTTP request still running when the graceful
      period ends (also one whose write was stuck until its socket was reset
      then), and an open WebSocket when the shutdown begins (it gets 1001).
    * :attr:`ABORTED`: the app called ``request.abort()`` or ``websocket.abort()``.
    * Behind a proxy, the server sees only the proxy's connection: what the
      proxy does when its client leaves (nginx closes: :attr:`CLIENT_DISCONNECTED`).

    What sets no token at all: a response that was complete (a disconnect
    while the final body message is in the server's hands counts as
    complete over HTTP/1.1), a route's ``timeout`` (answered 504), a body or
    WebSocket message over its limit (413, or close 1009), ``cancel_io()``.
    A timeout stays the request's outcome, and its log line says "timed
    out", if the client leaves after it or its write is found stuck at the
    deadline; the token is then set all the same, since the client is gone,
    with the reason it went (:attr:`CLIENT_TOO_SLOW` for a write the
    deadline cut).

    ``trioweb.testing`` can cause every reason an app can observe:
    ``disconnect(reason=...)`` on a call or a WebSocket session,
    ``TestClient.shutdown()``, and the app's own ``abort()``.
    """

    CLIENT_DISCONNECTED = "client disconnected"
    STREAM_RESET = "stream reset"
    CLIENT_TOO_SLOW = "client too slow"
    CONNECTION_TIMED_OUT = "connection timed out"
    SERVER_SHUTDOWN = "server shutting down"
    ABORTED = "aborted by the app"
