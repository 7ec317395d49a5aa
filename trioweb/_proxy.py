"""Proxy headers (X-Forwarded-For/-Proto/-Host), believed from trusted proxies only.

Guards against: hypercorn's ``ProxyFixMiddleware`` rewrites ``client``,
``scheme`` and ``Host`` from the headers of *any* peer, so behind nginx a
client that connects directly could claim any address. Here the rewrite is
applied only when the connection comes from an address in
``forwarded_allow_ips`` (addresses or networks; ``"*"`` trusts every peer).
A Unix-socket peer is local and always trusted. The parsing itself is
hypercorn's (the last ``trusted_hops`` values, legacy X-Forwarded-* headers).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any, final

from hypercorn.middleware import ProxyFixMiddleware

from ._exchange import Receive, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(allowed: Iterable[str]) -> list[Network] | None:
    """The networks in ``allowed``; None for ``"*"`` (everyone).

    Raises:
        ValueError: An entry is not an address or network.
    """
    networks: list[Network] = []
    for entry in allowed:
        entry = entry.strip()
        if entry == "*":
            return None
        if entry:
            networks.append(ipaddress.ip_network(entry, strict=False))
    return networks


@final
class TrustedProxyHeaders:
    """ASGI middleware: ``ProxyFixMiddleware`` for connections from trusted proxies."""

    def __init__(self, app: Any, *, forwarded_allow_ips: Iterable[str], trusted_hops: int = 1):
        self.app = app
        self.fixed = ProxyFixMiddleware(app, mode="legacy", trusted_hops=trusted_hops)
        self.networks = parse_networks(forwarded_allow_ips)

    def _trusted(self, client: Any) -> bool:
        if not client:
            return True  # a Unix socket peer: on this machine
        if self.networks is None:
            return True
        try:
            address = ipaddress.ip_address(client[0])
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and self._trusted(scope.get("client")):
            await self.fixed(scope, receive, send)  # type: ignore[arg-type]  # hypercorn's types
        else:
            await self.app(scope, receive, send)
