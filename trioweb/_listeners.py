"""Listening sockets, made by trioweb rather than hypercorn, with dead-peer detection on.

Guards against: hypercorn gives its sockets only TCP_NODELAY and SO_REUSEADDR. A
client that vanishes without a FIN or RST (a laptop lid closed, a NAT entry
dropped, a cable pulled) then leaves its connection open for ever, and the idle
request, SSE stream or WebSocket it held is never cancelled.

Here the listening socket gets TCP keepalive (idle, interval, count) and
TCP_USER_TIMEOUT. Linux copies them to every socket it accepts, so each
connection is armed: the kernel probes a silent peer, and aborts a connection
whose probes or data go unacknowledged for ``dead_peer_timeout`` seconds. The
read then fails, hypercorn queues ``http.disconnect``, and trioweb cancels the
request. An option the platform lacks is skipped, and said once at DEBUG.

This module only makes sockets; it never awaits.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import socket
import stat
from typing import final

import attrs

logger = logging.getLogger("trioweb")

DEFAULT_DEAD_PEER_TIMEOUT = 20.0
DEFAULT_BACKLOG = 1024


@final
@attrs.frozen
class Keepalive:
    """The kernel settings that make ``timeout`` seconds of silence a dead peer.

    Attributes:
        idle: Seconds of silence before the first probe (TCP_KEEPIDLE).
        interval: Seconds between probes (TCP_KEEPINTVL).
        count: Unanswered probes that end the connection (TCP_KEEPCNT), where
            TCP_USER_TIMEOUT is missing; with it, Linux ends the connection at
            the first probe after ``user_timeout`` without an acknowledgement.
        user_timeout: Milliseconds that sent data or probes may stay
            unacknowledged (TCP_USER_TIMEOUT).
    """

    idle: int
    interval: int
    count: int
    user_timeout: int

    @classmethod
    def for_timeout(cls, timeout: float) -> Keepalive:
        """Settings under which a peer silent for ``timeout`` seconds is dropped.

        Raises:
            ValueError: ``timeout`` is below 2 seconds (the kernel counts whole seconds).
        """
        if timeout < 2:
            raise ValueError(f"dead_peer_timeout must be >= 2 seconds (or None), not {timeout}")
        # The kernel checks at each probe: the last of three lands on the timeout,
        # so the abort comes at ``timeout``, not up to an interval after it.
        whole = int(timeout)
        interval = max(1, whole // 6)
        idle = max(1, whole - 3 * interval)
        return cls(idle, interval, 3, int(timeout * 1000))


def _options(keepalive: Keepalive) -> list[tuple[str, int, str, int]]:
    """(label, level, option name, value) for each setting."""
    return [
        ("SO_KEEPALIVE", socket.SOL_SOCKET, "SO_KEEPALIVE", 1),
        ("TCP_KEEPIDLE", socket.IPPROTO_TCP, "TCP_KEEPIDLE", keepalive.idle),
        ("TCP_KEEPINTVL", socket.IPPROTO_TCP, "TCP_KEEPINTVL", keepalive.interval),
        ("TCP_KEEPCNT", socket.IPPROTO_TCP, "TCP_KEEPCNT", keepalive.count),
        ("TCP_USER_TIMEOUT", socket.IPPROTO_TCP, "TCP_USER_TIMEOUT", keepalive.user_timeout),
    ]


@functools.cache
def _say_missing(option: str, reason: str) -> None:
    # Cached: said once per process, not per socket.
    logger.debug("dead-peer detection: %s is not available here (%s); skipped", option, reason)


def set_keepalive(sock: socket.socket, keepalive: Keepalive) -> None:
    """Arm ``sock`` with ``keepalive``, skipping what the platform lacks."""
    for label, level, name, value in _options(keepalive):
        option = getattr(socket, name, None)
        if option is None:
            _say_missing(label, "no such socket option")
            continue
        try:
            sock.setsockopt(level, option, value)
        except OSError as error:
            _say_missing(label, error.strerror or str(error))


class ListenError(OSError):
    """A socket could not be bound; the message says where and why, in one line."""


def open_tcp_socket(
    host: str,
    port: int,
    *,
    dead_peer_timeout: float | None = DEFAULT_DEAD_PEER_TIMEOUT,
    backlog: int = DEFAULT_BACKLOG,
) -> socket.socket:
    """A listening, non-blocking, inheritable TCP socket on ``host``:``port``.

    Raises:
        ListenError: The address is in use, not local, or cannot be resolved.
    """
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as error:
        raise ListenError(error.errno, f"cannot listen on {where}: {error.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if dead_peer_timeout is not None:
            set_keepalive(sock, Keepalive.for_timeout(dead_peer_timeout))
        sock.bind(address)
        sock.listen(backlog)
    except OSError as error:
        sock.close()
        reason = os.strerror(error.errno) if error.errno else str(error)
        if error.errno == errno.EADDRINUSE:
            reason += " (another server is listening there)"
        raise ListenError(error.errno, f"cannot listen on {where}: {reason}") from None
    sock.setblocking(False)
    sock.set_inheritable(True)
    return sock


def open_unix_socket(path: str, *, backlog: int = DEFAULT_BACKLOG) -> socket.socket:
    """A listening Unix socket at ``path`` (a stale socket file there is replaced).

    Raises:
        ListenError: The path cannot be bound (not a socket, no permission).
    """
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.remove(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(backlog)
    except OSError as error:
        sock.close()
        raise ListenError(error.errno, f"cannot listen on unix:{path}: {error.strerror}") from None
    sock.setblocking(False)
    sock.set_inheritable(True)
    return sock


def describe(sock: socket.socket) -> tuple[str, int]:
    """(host, or path for a Unix socket; port, 0 for a Unix socket) of a listening socket."""
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return str(name), 0
    return str(name[0]), int(name[1])
