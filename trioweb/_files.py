"""FileResponse, and the pure decisions about it: ETag, 304, Range (206/416)."""

from __future__ import annotations

import email.utils
import mimetypes
import os
import re
from collections.abc import Mapping
from typing import final

import attrs

from ._datastructures import Headers

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


@final
class FileResponse:
    """A file from disk, read with Trio's async file I/O as it is sent.

    Sends ``Content-Length``, ``ETag`` and ``Last-Modified``; answers a
    matching ``If-None-Match`` with 304 and a single ``Range`` with 206 (or 416
    if it lies past the end). A missing file is a 404.

    Args:
        path: The file.
        media_type: The ``content-type`` (guessed from the name by default).
        filename: Offer the file as a download under this name.
        headers: Extra headers.
        chunk_size: Bytes read and sent at a time.
    """

    __slots__ = ("chunk_size", "headers", "media_type", "path", "status")

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        media_type: str | None = None,
        filename: str | None = None,
        headers: Mapping[str, str] | None = None,
        chunk_size: int = 64 * 1024,
    ) -> None:
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        self.path = os.fspath(path)
        self.media_type = (
            media_type or mimetypes.guess_type(self.path)[0] or "application/octet-stream"
        )
        self.headers = dict(headers or {})
        if filename is not None:
            quoted = filename.replace("\\", "\\\\").replace('"', '\\"')
            self.headers.setdefault("content-disposition", f'attachment; filename="{quoted}"')
        self.chunk_size = chunk_size
        self.status = 200


@attrs.frozen
class FilePlan:
    """What to send for a file, given the request: status, headers, byte range."""

    status: int
    headers: list[tuple[bytes, bytes]]
    start: int = 0
    length: int = 0


def etag(size: int, mtime_ns: int) -> str:
    return f'"{mtime_ns:x}-{size:x}"'


def parse_range(header: str, size: int) -> tuple[int, int] | bool | None:
    """A single byte range as (start, end inclusive); None to ignore; False if unsatisfiable."""
    found = _RANGE.fullmatch(header.strip())
    if found is None:
        return None  # malformed or several ranges: serve the whole file
    first, last = found.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        suffix = int(last)
        if suffix == 0:
            return False
        return max(size - suffix, 0), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        return False
    return start, end


def plan_file(response: FileResponse, size: int, mtime_ns: int, request: Headers) -> FilePlan:
    """Decide status, headers and range for ``response`` (a file of ``size`` bytes)."""
    tag = etag(size, mtime_ns)
    base = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]
    base += [
        (b"etag", tag.encode()),
        (b"last-modified", email.utils.formatdate(mtime_ns / 1e9, usegmt=True).encode()),
        (b"accept-ranges", b"bytes"),
    ]
    if_none_match = request.get("if-none-match")
    if if_none_match is not None and (
        if_none_match.strip() == "*" or tag in [t.strip() for t in if_none_match.split(",")]
    ):
        return FilePlan(304, base)
    content_type = (b"content-type", response.media_type.encode("latin-1"))
    wanted = parse_range(request["range"], size) if "range" in request else None
    if wanted is False:
        return FilePlan(
            416, [*base, (b"content-range", f"bytes */{size}".encode()), (b"content-length", b"0")]
        )
    if isinstance(wanted, tuple):
        start, end = wanted
        return FilePlan(
            206,
            [
                *base,
                content_type,
                (b"content-range", f"bytes {start}-{end}/{size}".encode()),
                (b"content-length", str(end - start + 1).encode()),
            ],
            start,
            end - start + 1,
        )
    return FilePlan(200, [*base, content_type, (b"content-length", str(size).encode())], 0, size)
