"""``TestResponse``: a complete response as :class:`~trioweb.testing.TestClient` received it."""

from __future__ import annotations

import json as jsonlib
from typing import Any, final

from .._datastructures import Headers


@final
class TestResponse:
    """A complete response, as the test client received it.

    Attributes:
        status_code: The HTTP status.
        headers: The headers as the HTTP/1.1 wire shows them (h11's framing included).
        content: The body (empty for HEAD, 204 and 304, as on the wire).
        report: trioweb's ``trioweb.outcome`` report for the call, filled when the
            app's call returns (:attr:`outcome`, :attr:`handler_cancelled`).
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        status_code: int,
        headers: Headers,
        content: bytes,
        report: dict[str, object] | None = None,
    ) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content
        self.report = report if report is not None else {}

    @property
    def text(self) -> str:
        return self.content.decode()

    def json(self) -> Any:
        return jsonlib.loads(self.content)

    @property
    def outcome(self) -> str | None:
        """How trioweb says the request ended, once the app's call returned."""
        value = self.report.get("outcome")
        return None if value is None else str(value)

    @property
    def handler_cancelled(self) -> bool:
        """Whether the handler (or its nursery) was cancelled."""
        return bool(self.report.get("handler_cancelled", False))

    def __repr__(self) -> str:
        return f"<TestResponse {self.status_code} {len(self.content)} bytes>"
