"""FileResponse, and the pure decisions about it: preconditions (304/412), Range (206/416)."""

from __future__ import annotations

import datetime
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

    Sends ``Content-Length``, ``ETag`` and ``Last-Modified``, and answers
    conditional requests as RFC 9110 says: a matching ``If-None-Match``, or
    (without one) an ``If-Modified-Since`` at or after ``Last-Modified``, with
    304; a failed ``If-Match`` or ``If-Unmodified-Since`` with 412; a single
    ``Range`` with 206 (416 if it lies past the end), unless ``If-Range``
    names a stale ETag or date, which gets the whole file (200). A missing
    file is a 404.

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


def _matches(header: str, tag: str, *, weak: bool) -> bool:
    """Whether an If-Match/If-None-Match list holds ``tag``: ``*`` always does;
    a weak comparison ignores ``W/``, a strong one never matches a weak tag."""
    if header.strip() == "*":
        return True
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate.startswith("W/"):
            if not weak:
                continue
            candidate = candidate[2:]
        if candidate == tag:
            return True
    return False


def _http_date(header: str | None) -> int | None:
    """An HTTP-date as a POSIX timestamp; None for none, or for one that is not a date
    (which RFC 9110 says to ignore)."""
    if not header:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:  # "-0000": still GMT, as every HTTP-date
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return int(parsed.timestamp())


def _if_range_holds(header: str | None, tag: str, modified: int) -> bool:
    # RFC 9110 13.1.5: an entity tag must match strongly, a date exactly.
    if header is None:
        return True
    header = header.strip()
    if header.startswith(('"', "W/")):
        return header == tag
    return _http_date(header) == modified


def plan_file(
    response: FileResponse, size: int, mtime_ns: int, request: Headers, method: str = "GET"
) -> FilePlan:
    """Decide status, headers and range for ``response`` (a file of ``size`` bytes).

    The preconditions are evaluated in RFC 9110's order (section 13.2.2):
    If-Match (else If-Unmodified-Since) may give 412; If-None-Match (else,
    for GET and HEAD, If-Modified-Since) gives 304 (412 for other methods);
    then a GET's Range is honoured if If-Range, when present, holds.

    Args:
        response: The file response.
        size: The file's size in bytes.
        mtime_ns: The file's modification time (``st_mtime_ns``).
        request: The request headers.
        method: The request method.
    """
    tag = etag(size, mtime_ns)
    modified = mtime_ns // 1_000_000_000  # Last-Modified has whole seconds
    base = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]
    base += [
        (b"etag", tag.encode()),
        (b"last-modified", email.utils.formatdate(modified, usegmt=True).encode()),
        (b"accept-ranges", b"bytes"),
    ]
    failed = FilePlan(412, [*base, (b"content-length", b"0")])
    if_match = request.get("if-match")
    if if_match is not None:
        if not _matches(if_match, tag, weak=False):
            return failed
    else:
        unmodified_since = _http_date(request.get("if-unmodified-since"))
        if unmodified_since is not None and modified > unmodified_since:
            return failed
    safe = method in ("GET", "HEAD")
    if_none_match = request.get("if-none-match")
    if if_none_match is not None:
        if _matches(if_none_match, tag, weak=True):
            return FilePlan(304, base) if safe else failed
    elif safe:
        modified_since = _http_date(request.get("if-modified-since"))
        if modified_since is not None and modified <= modified_since:
            return FilePlan(304, base)
    content_type = (b"content-type", response.media_type.encode("latin-1"))
    wanted = None
    # If-Range is ignored without a Range; Range is defined for GET only.
    if (
        method == "GET"
        and "range" in request
        and _if_range_holds(request.get("if-range"), tag, modified)
    ):
        wanted = parse_range(request["range"], size)
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
