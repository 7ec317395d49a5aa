"""Minimum data rates: how long a client may take to read a response or send a body (pure).

Modelled on Kestrel's ``MinResponseDataRate`` and ``MinRequestBodyDataRate``
(ASP.NET Core): a client must move at least ``bytes_per_second`` once a grace
period has passed, or its request is abandoned.

* A response write of ``n`` bytes may take ``max(grace_period, n / bytes_per_second)``
  seconds. Writes are measured one by one, and time the app spends between
  writes does not count, but a client that took its time with earlier writes
  gets no fresh grace for the next: the deadlines accumulate, as Kestrel's do
  (:class:`WriteClock`).
* A request body must arrive at ``bytes_per_second`` on average, counted from
  the first time the app waits for it, after ``grace_period``
  (:func:`body_deadline`).

Only what the clocks say lives here: the exchange puts the deadlines on its
cancel scopes, and the connection layer on its writes.
"""

from __future__ import annotations

import math
from typing import final

import attrs


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0 or math.isinf(value):
        raise ValueError(f"{attribute.name} must be a positive number, not {value!r}")


def _not_negative(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0 or math.isinf(value):
        raise ValueError(f"{attribute.name} must be a number >= 0, not {value!r}")


@final
@attrs.frozen
class MinDataRate:
    """The slowest a client may read a response or send a request body.

    Args:
        bytes_per_second: The minimum rate, once ``grace_period`` has passed.
        grace_period: Seconds a client may be slower than that at first (and
            the least time any single write gets).

    Raises:
        ValueError: ``bytes_per_second`` is not positive, or ``grace_period`` is negative.
    """

    bytes_per_second: float = attrs.field(default=240.0, validator=_positive)
    grace_period: float = attrs.field(default=5.0, validator=_not_negative)


#: Kestrel's defaults, trioweb's too: 240 bytes/s after 5 s.
DEFAULT_MIN_RATE = MinDataRate()


@final
class WriteClock:
    """The deadlines of one exchange's response writes under ``rate`` (None: no minimum)."""

    __slots__ = ("_deadline", "rate")

    def __init__(self, rate: MinDataRate | None) -> None:
        self.rate = rate
        self._deadline = -math.inf

    def deadline(self, now: float, size: int) -> float:
        """When a write of ``size`` bytes, starting ``now``, must be done."""
        rate = self.rate
        if rate is None:
            return math.inf
        needs = size / rate.bytes_per_second
        # Each write gets at least the grace period; a client slow on the
        # previous writes carries its lateness over, without a fresh grace.
        self._deadline = max(now + max(rate.grace_period, needs), self._deadline + needs)
        return self._deadline


def body_deadline(rate: MinDataRate | None, started: float, received: int) -> float:
    """When a body whose read began at ``started``, with ``received`` bytes so far, is too slow."""
    if rate is None:
        return math.inf
    return started + rate.grace_period + received / rate.bytes_per_second
