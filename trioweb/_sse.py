"""Server-Sent Events: the event value and its encoder. Pure."""

from __future__ import annotations

from typing import final

import attrs


@final
@attrs.frozen
class ServerSentEvent:
    """One Server-Sent Event.

    Attributes:
        data: The payload; line breaks become several ``data:`` lines.
        event: The event type (the browser's ``addEventListener`` name).
        id: The event id, which the browser sends back as ``Last-Event-ID``.
        retry: The reconnection delay the browser should use, in milliseconds.

    Raises:
        ValueError: ``event`` or ``id`` has a line break, or ``retry`` is negative.
    """

    data: str = ""
    event: str | None = None
    id: str | None = None
    retry: int | None = None

    def __attrs_post_init__(self) -> None:
        for name, value in (("event", self.event), ("id", self.id)):
            if value is not None and ("\n" in value or "\r" in value):
                raise ValueError(f"an SSE {name} cannot contain a line break: {value!r}")
        if self.retry is not None and (type(self.retry) is not int or self.retry < 0):
            raise ValueError(f"an SSE retry must be a non-negative int of ms: {self.retry!r}")


def encode_event(event: ServerSentEvent) -> bytes:
    """The wire form of ``event``, ending with the blank line that dispatches it."""
    lines = []
    if event.event is not None:
        lines.append(f"event: {event.event}")
    if event.id is not None:
        lines.append(f"id: {event.id}")
    if event.retry is not None:
        lines.append(f"retry: {event.retry}")
    # splitlines() would also split on \v, \f, \x1c..., which SSE does not.
    data = event.data.replace("\r\n", "\n").replace("\r", "\n")
    lines.extend(f"data: {line}" for line in data.split("\n"))
    return ("\n".join(lines) + "\n\n").encode()


def encode_comment(text: str = "") -> bytes:
    """A comment line, which clients ignore: used as keep-alive."""
    return b"".join(f": {line}\n".encode() for line in text.split("\n")) + b"\n"
