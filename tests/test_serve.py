"""serve(): contained connections, the shutdown seam, and the serving options."""

from __future__ import annotations

import logging
import socket
import ssl
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trustme

from trioweb import App, Request, Server, serve
from trioweb._listeners import Keepalive, ListenError, open_tcp_socket

from .conftest import Probe
from .wire import fetch, read_response, request_bytes


def plain_app(probe: Probe | None = None) -> App:
    app = App()

    @app.get("/plain")
    async def plain() -> str:
        return "plain"

    @app.get("/whoami")
    async def whoami(request: Request) -> dict[str, Any]:
        return {
            "client": request.client[0] if request.client else None,
            "url": str(request.url),
            "root_path": request.asgi_scope.get("root_path"),
        }

    @app.get("/hold")
    async def hold() -> str:
        assert probe is not None
        await probe.hold(60)
        return "held"

    return app


async def _garbage(port: int) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"GET /plain HTTP/1.0\r\n\r\nX")
        with trio.move_on_after(5):
            try:
                while await stream.receive_some(65536):
                    pass
            except trio.BrokenResourceError:
                pass


async def test_a_remote_client_cannot_crash_the_server(caplog: pytest.LogCaptureFixture) -> None:
    """2,000 requests followed by a stray byte, 50 at a time: the server serves on."""
    async with trio.open_nursery() as nursery:
        server: Server = await nursery.start(serve, plain_app(), "127.0.0.1", 0)
        with trio.fail_after(120):
            for _ in range(40):
                async with trio.open_nursery() as batch:
                    for _ in range(50):
                        batch.start_soon(_garbage, server.port)
        assert (await fetch(server.port, "GET", "/plain")).body == b"plain"
        server.shutdown()
    # Nothing at ERROR: a client's garbage is not the server's failure.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    for record in caplog.records:
        if record.levelno == logging.WARNING:
            assert "connection from 127.0.0.1:" in record.getMessage()


async def test_a_failing_connection_is_logged_with_its_peer_and_closed(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trioweb import _connection

    async def fails(self: Any) -> None:
        raise trio.BusyResourceError("planted")

    monkeypatch.setattr(_connection.TCPServer, "run", fails)
    async with trio.open_nursery() as nursery:
        server: Server = await nursery.start(serve, plain_app(), "127.0.0.1", 0)
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        local = stream.socket.getsockname()
        with trio.fail_after(5):
            assert await stream.receive_some(10) == b""  # closed by the server
        await stream.aclose()
        monkeypatch.undo()
        assert (await fetch(server.port, "GET", "/plain")).body == b"plain"
        server.shutdown()
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.getMessage() == (
        f"connection from 127.0.0.1:{local[1]} failed and was closed: BusyResourceError('planted')"
    )


async def test_shutdown_started_is_called_once_when_the_server_stops_accepting(
    probe: Probe,
) -> None:
    app = plain_app(probe)
    calls: list[bool] = []
    called = trio.Event()

    def shutdown_started() -> None:
        calls.append(True)
        called.set()

    app.shutdown_started = shutdown_started  # type: ignore[method-assign]  # a spy on the seam
    async with trio.open_nursery() as nursery:
        server: Server = await nursery.start(
            partial(serve, app, "127.0.0.1", 0, graceful_timeout=0.5)
        )
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        await stream.send_all(request_bytes("GET", "/hold"))
        with trio.fail_after(5):
            await probe.entered.wait()
        assert calls == []
        server.shutdown()
        with trio.fail_after(5):
            await called.wait()
        with pytest.raises(OSError, match="all attempts to connect"):
            await trio.open_tcp_stream("127.0.0.1", server.port)
        response = await read_response(stream)
        await stream.aclose()
    assert calls == [True]
    assert not response.complete
    assert probe.record == ["handler cancelled"]  # graceful_timeout ran out


async def test_served_over_a_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "app.sock")
    async with trio.open_nursery() as nursery:
        server: Server = await nursery.start(partial(serve, plain_app(), "127.0.0.1", 0, uds=path))
        assert (server.host, server.port) == (path, 0)
        assert server.url.startswith("http+unix://")
        stream = await trio.open_unix_socket(path)
        async with stream:
            await stream.send_all(request_bytes("GET", "/whoami"))
            response = await read_response(stream)
        server.shutdown()
    assert response.status == 200
    assert b'"client":null' in response.body


async def test_root_path_reaches_the_scope() -> None:
    async with trio.open_nursery() as nursery:
        server: Server = await nursery.start(
            partial(serve, plain_app(), "127.0.0.1", 0, root_path="/mounted/")
        )
        response = await fetch(server.port, "GET", "/whoami")
        server.shutdown()
    assert b'"root_path":"/mounted"' in response.body


async def _whoami_from(port: int, source: str, headers: list[tuple[str, str]]) -> bytes:
    sock = trio.socket.socket()
    await sock.bind((source, 0))
    await sock.connect(("127.0.0.1", port))
    stream = trio.SocketStream(sock)
    async with stream:
        await stream.send_all(request_bytes("GET", "/whoami", headers))
        return (await read_response(stream)).body


async def test_proxy_headers_are_believed_from_allowed_addresses_only() -> None:
    forwarded = [
        ("x-forwarded-for", "203.0.113.7"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "example.org"),
    ]
    async with trio.open_nursery() as nursery:
        server: Server = await nursery.start(
            partial(
                serve,
                plain_app(),
                "127.0.0.1",
                0,
                proxy_headers=True,
                forwarded_allow_ips="127.0.0.1",
            )
        )
        trusted = await _whoami_from(server.port, "127.0.0.1", forwarded)
        untrusted = await _whoami_from(server.port, "127.0.0.2", forwarded)
        server.shutdown()
    assert b'"client":"203.0.113.7"' in trusted
    assert b'"url":"https://example.org/whoami"' in trusted
    assert b'"client":"127.0.0.2"' in untrusted
    assert b'"url":"http://127.0.0.1/whoami"' in untrusted


async def test_without_proxy_headers_the_peer_is_the_client() -> None:
    async with trio.open_nursery() as nursery:
        server: Server = await nursery.start(serve, plain_app(), "127.0.0.1", 0)
        body = await _whoami_from(server.port, "127.0.0.1", [("x-forwarded-for", "203.0.113.7")])
        server.shutdown()
    assert b'"client":"127.0.0.1"' in body


@pytest.mark.parametrize(("limit", "status"), [(16 * 1024, 431), (64 * 1024, 200)])
async def test_h11_max_incomplete_size_limits_the_request_head(limit: int, status: int) -> None:
    head = request_bytes("GET", "/plain", [("x-big", "a" * 20_000)])
    async with trio.open_nursery() as nursery:
        server: Server = await nursery.start(
            partial(serve, plain_app(), "127.0.0.1", 0, h11_max_incomplete_size=limit)
        )
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        async with stream:
            # 20 kB of head that is not finished yet: past the limit, the server answers now.
            await stream.send_all(head[:-4])
            if status == 200:
                await stream.send_all(head[-4:])
            response = await read_response(stream)
        server.shutdown()
    assert response.status == status


# ---- TLS ----


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, str, str]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    directory = tmp_path_factory.mktemp("tls")
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    return ca, str(certfile), str(keyfile)


async def test_http2_over_tls_by_alpn(certificate: tuple[trustme.CA, str, str]) -> None:
    ca, certfile, keyfile = certificate
    context = ssl.create_default_context()
    ca.configure_trust(context)
    async with trio.open_nursery() as nursery:
        server: Server = await nursery.start(
            partial(serve, plain_app(), "127.0.0.1", 0, certfile=certfile, keyfile=keyfile)
        )
        assert server.url.startswith("https://")
        async with httpx.AsyncClient(http2=True, verify=context) as client:
            response = await client.get(f"{server.url}/whoami")
        server.shutdown()
    assert response.http_version == "HTTP/2"
    assert response.json()["url"].startswith("https://")


async def test_a_disconnect_over_tls_cancels_the_handler(
    certificate: tuple[trustme.CA, str, str], probe: Probe
) -> None:
    ca, certfile, keyfile = certificate
    context = ssl.create_default_context()
    ca.configure_trust(context)
    context.set_alpn_protocols(["http/1.1"])
    async with trio.open_nursery() as nursery:
        server: Server = await nursery.start(
            partial(serve, plain_app(probe), "127.0.0.1", 0, certfile=certfile, keyfile=keyfile)
        )
        tcp = await trio.open_tcp_stream("127.0.0.1", server.port)
        stream = trio.SSLStream(tcp, context, server_hostname="127.0.0.1")
        await stream.send_all(request_bytes("GET", "/hold"))
        with trio.fail_after(5):
            await probe.entered.wait()
        await tcp.aclose()  # gone, without a TLS close_notify
        with trio.fail_after(5):
            await probe.done.wait()
        server.shutdown()
    assert probe.record == ["handler cancelled"]


# ---- listening sockets ----


async def test_an_accepted_socket_inherits_dead_peer_detection() -> None:
    listener = open_tcp_socket("127.0.0.1", 0, dead_peer_timeout=3)
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    listener.setblocking(True)
    accepted, _ = listener.accept()
    try:
        tcp = socket.IPPROTO_TCP
        assert accepted.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        expected = Keepalive.for_timeout(3)
        assert (
            accepted.getsockopt(tcp, socket.TCP_KEEPIDLE),
            accepted.getsockopt(tcp, socket.TCP_KEEPINTVL),
            accepted.getsockopt(tcp, socket.TCP_KEEPCNT),
            accepted.getsockopt(tcp, socket.TCP_USER_TIMEOUT),
        ) == (expected.idle, expected.interval, expected.count, 3000)
        assert (expected.idle, expected.interval) == (1, 1)
        assert accepted.getsockopt(tcp, socket.TCP_NODELAY) == 1
    finally:
        for sock in (accepted, client, listener):
            sock.close()


def test_dead_peer_detection_can_be_switched_off() -> None:
    listener = open_tcp_socket("127.0.0.1", 0, dead_peer_timeout=None)
    try:
        assert listener.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
        assert listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 0
    finally:
        listener.close()


@pytest.mark.parametrize(
    ("timeout", "settings"),
    [(2, (1, 1, 3, 2000)), (3, (1, 1, 3, 3000)), (20, (11, 3, 3, 20000)), (60, (30, 10, 3, 60000))],
)
def test_keepalive_settings_put_the_last_probe_on_the_timeout(
    timeout: float, settings: tuple[int, int, int, int]
) -> None:
    keepalive = Keepalive.for_timeout(timeout)
    assert (keepalive.idle, keepalive.interval, keepalive.count, keepalive.user_timeout) == settings
    if timeout >= 4:  # below, the idle time cannot shrink further; TCP_USER_TIMEOUT cuts it
        assert keepalive.idle + keepalive.count * keepalive.interval == timeout


def test_a_dead_peer_timeout_below_two_seconds_is_refused() -> None:
    with pytest.raises(ValueError, match=">= 2 seconds"):
        Keepalive.for_timeout(1)


def test_a_missing_option_is_skipped_and_said_once_at_debug(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from trioweb import _listeners

    _listeners._say_missing.cache_clear()
    monkeypatch.delattr(socket, "TCP_USER_TIMEOUT")
    caplog.set_level(logging.DEBUG, "trioweb")
    for _ in range(2):
        open_tcp_socket("127.0.0.1", 0).close()
    said = [r for r in caplog.records if "TCP_USER_TIMEOUT" in r.getMessage()]
    assert [r.levelno for r in said] == [logging.DEBUG]
    _listeners._say_missing.cache_clear()


def test_a_port_in_use_is_one_clear_error() -> None:
    first = open_tcp_socket("127.0.0.1", 0)
    port = first.getsockname()[1]
    try:
        with pytest.raises(ListenError) as caught:
            open_tcp_socket("127.0.0.1", port)
        assert caught.value.strerror == (
            f"cannot listen on 127.0.0.1:{port}: Address already in use "
            "(another server is listening there)"
        )
    finally:
        first.close()


# ---- bounded shutdown ----


async def test_a_client_that_never_reads_cannot_hold_the_shutdown_open() -> None:
    app = App()
    sent = trio.Event()

    @app.get("/big")
    async def big() -> Any:
        from trioweb import StreamingResponse

        async def body() -> Any:
            chunk = b"x" * (1 << 20)
            sent.set()
            for _ in range(1024):
                yield chunk

        return StreamingResponse(body())

    server_done = trio.Event()

    async def serve_then_say(*, task_status: trio.TaskStatus[Server]) -> None:
        await serve(app, "127.0.0.1", 0, graceful_timeout=0.5, task_status=task_status)
        server_done.set()

    async with trio.open_nursery() as nursery:
        server: Server = await nursery.start(serve_then_say)
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        stream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        await stream.send_all(request_bytes("GET", "/big"))
        with trio.fail_after(5):
            await sent.wait()
        # The server's writes fill the buffers, then block, shielded, in send_all.
        await trio.testing.wait_all_tasks_blocked()
        started = trio.current_time()
        server.shutdown()
        with trio.fail_after(5):  # without the reset, hypercorn's shielded write never ends
            await server_done.wait()
    with trio.fail_after(5):
        # The server reset the stalled connection: reading ends in an error or EOF.
        with pytest.raises(trio.BrokenResourceError):  # noqa: PT012  # drain until the reset
            while await stream.receive_some(1 << 20):
                pass
    elapsed = trio.current_time() - started
    await stream.aclose()
    assert elapsed < 0.5 + 1.5
