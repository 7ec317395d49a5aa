"""The upload example: the limit, stopping an upload with cancel_io(), over the wire too."""

from __future__ import annotations

import hashlib

import pytest
import trio
import trio.testing

from examples.conftest import LogWatch
from examples.upload import Uploads, create_app
from trioweb import App, Server
from trioweb.testing import TestClient

LIMIT = 1024 * 1024


@pytest.fixture
def uploads() -> Uploads:
    return Uploads()


@pytest.fixture
def app(uploads: Uploads) -> App:
    return create_app(uploads, limit=LIMIT)


async def test_an_upload_is_stored(client: TestClient) -> None:
    data = bytes(range(256)) * 4096  # exactly the limit
    r = await client.post("/uploads/photo.jpg", content=data)
    assert r.status_code == 200
    assert r.json() == {
        "name": "photo.jpg",
        "size": LIMIT,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert (await client.get("/uploads/photo.jpg")).json()["state"] == "stored"


async def test_an_upload_in_pieces_reports_its_state(client: TestClient) -> None:
    async with client.stream("POST", "/uploads/big.bin", upload=True) as call:
        for _ in range(4):
            await call.send_body(b"x" * 65536)
            await trio.testing.wait_all_tasks_blocked()
            assert (await client.get("/uploads/big.bin")).json()["state"] == "receiving"
        await call.send_body(b"", final=True)
        response = await call.read()
    assert response.json()["size"] == 4 * 65536


async def test_past_the_limit_is_413_and_nothing_is_stored(
    client: TestClient, uploads: Uploads
) -> None:
    r = await client.post("/uploads/huge.bin", content=b"x" * (LIMIT + 1))
    assert r.status_code == 413
    assert uploads.stored == {}
    assert uploads.receiving == {}


async def test_cancel_io_stops_an_upload_and_its_handler_still_answers(
    client: TestClient, uploads: Uploads
) -> None:
    async with client.stream("POST", "/uploads/big.bin", upload=True) as call:
        await call.send_body(b"x" * 65536)  # more is to come, but it never does
        await trio.testing.wait_all_tasks_blocked()
        r = await client.post("/uploads/big.bin/cancel")
        assert r.json() == {"name": "big.bin", "stopping": True}
        response = await call.read()
    assert response.status_code == 409
    assert response.json() == {"detail": "the upload of big.bin was stopped"}
    assert not call.handler_cancelled  # not a disconnect: the handler ran to its end
    assert uploads.receiving == {}
    assert (await client.get("/uploads/big.bin")).status_code == 404


async def test_cancel_without_an_upload_is_404(client: TestClient) -> None:
    assert (await client.post("/uploads/nothing/cancel")).status_code == 404


async def test_the_same_name_twice_at_once_is_409(client: TestClient) -> None:
    async with client.stream("POST", "/uploads/a.bin", upload=True) as first:
        await first.send_body(b"x")
        await trio.testing.wait_all_tasks_blocked()
        assert (await client.post("/uploads/a.bin", content=b"y")).status_code == 409
        await first.send_body(b"", final=True)
        assert (await first.read()).json()["size"] == 1


async def test_a_client_that_leaves_mid_upload_leaves_nothing(
    client: TestClient, uploads: Uploads
) -> None:
    async with client.stream("POST", "/uploads/gone.bin", upload=True) as call:
        await call.send_body(b"x" * 1000)
        await trio.testing.wait_all_tasks_blocked()
        await call.disconnect()
    assert call.handler_cancelled
    assert uploads.receiving == {}
    assert uploads.stored == {}


async def _post_head(port: int, name: str, length: int) -> trio.SocketStream:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(
        f"POST /uploads/{name} HTTP/1.1\r\nhost: x\r\ncontent-length: {length}\r\n\r\n".encode()
    )
    return stream


async def _read_response(stream: trio.SocketStream) -> bytes:
    response = b""
    with trio.fail_after(10):
        while b"\r\n\r\n" not in response or not response.rstrip().endswith((b"}", b"stopped")):
            chunk = await stream.receive_some(65536)
            if not chunk:
                break
            response += chunk
    return response


async def test_over_the_wire_a_large_upload_and_a_stopped_one(
    live_server: Server, uploads: Uploads, logs: LogWatch
) -> None:
    data = b"y" * LIMIT
    async with await _post_head(live_server.port, "whole.bin", len(data)) as stream:
        await stream.send_all(data)
        response = await _read_response(stream)
    assert response.startswith(b"HTTP/1.1 200")
    assert hashlib.sha256(data).hexdigest().encode() in response

    async with await _post_head(live_server.port, "stopped.bin", LIMIT) as stream:
        await stream.send_all(b"y" * 1000)
        await logs.wait_for("receiving stopped.bin")
        async with await trio.open_tcp_stream("127.0.0.1", live_server.port) as other:
            await other.send_all(
                b"POST /uploads/stopped.bin/cancel HTTP/1.1\r\nhost: x\r\n"
                b"content-length: 0\r\nconnection: close\r\n\r\n"
            )
            assert (await _read_response(other)).startswith(b"HTTP/1.1 200")
        response = await _read_response(stream)
    assert response.startswith(b"HTTP/1.1 409")
    assert response.endswith(b'{"detail":"the upload of stopped.bin was stopped"}')
