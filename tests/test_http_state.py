"""The HTTP exchange's state table, row by row, and the rules around it (pure)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import pytest

from trioweb._http_state import (
    TABLE,
    BodyState,
    Effect,
    Event,
    HTTPState,
    HTTPStateError,
    Phase,
)
from trioweb._outcome import DisconnectReason, Outcome

P, E, F = Phase, Event, Effect
GONE = F.TRIP_TOKEN | F.CANCEL_SCOPE | F.CANCEL_IO | F.WAKE_READERS
X = None  # cannot happen: a bug in trioweb

# Written out by hand, one row per phase, one column per event, so that a
# change to the table in the module must be made here too.
COLUMNS = (
    E.RETURNED, E.HEAD, E.CHUNK, E.FINAL, E.DELIVERED, E.UNDELIVERED,
    E.BODY, E.BODY_END, E.OVERFLOW, E.DISCONNECT, E.ABORT, E.FINISH, E.WHOLE, E.TOO_SLOW,
)  # fmt: skip
ABORTING = F.TRIP_TOKEN | F.CANCEL_SCOPE | F.CANCEL_IO
OVERFLOWING = F.CANCEL_SCOPE | F.WAKE_READERS
WAKE = F.WAKE_READERS
EXPECTED: dict[Phase, tuple[tuple[Phase, int] | None, ...]] = {
    P.HANDLER: (
        (P.RESPONDING, F.NONE), X, X, X, X, X,
        (P.HANDLER, F.NONE), (P.HANDLER, WAKE), (P.HANDLER, OVERFLOWING),
        (P.HANDLER, GONE), (P.HANDLER, ABORTING), (P.DONE, F.NONE), X, (P.HANDLER, GONE),
    ),
    P.RESPONDING: (
        X, (P.HEAD_SENT, F.SEND), X, X, X, X,
        (P.RESPONDING, F.NONE), (P.RESPONDING, WAKE), (P.RESPONDING, WAKE),
        (P.RESPONDING, GONE), (P.RESPONDING, ABORTING), (P.DONE, F.NONE),
        (P.BODY_SENT, F.SEND), (P.RESPONDING, GONE),
    ),
    P.HEAD_SENT: (
        X, X, (P.HEAD_SENT, F.SEND), (P.FINISHING, F.SEND), X, X,
        (P.HEAD_SENT, F.NONE), (P.HEAD_SENT, WAKE), (P.HEAD_SENT, WAKE),
        (P.HEAD_SENT, GONE), (P.HEAD_SENT, ABORTING), (P.DONE, F.NONE), X, (P.HEAD_SENT, GONE),
    ),
    P.FINISHING: (
        X, X, X, X, (P.BODY_SENT, F.NONE), (P.FINISHING, GONE),
        (P.FINISHING, F.NONE), (P.FINISHING, WAKE), (P.FINISHING, WAKE),
        (P.FINISHING, F.AWAIT_DELIVERY), (P.FINISHING, ABORTING), (P.DONE, F.NONE),
        X, (P.FINISHING, GONE),
    ),
    P.BODY_SENT: (
        X, X, X, X, X, X,
        (P.BODY_SENT, F.NONE), (P.BODY_SENT, F.NONE), (P.BODY_SENT, F.NONE),
        (P.BODY_SENT, F.NONE), (P.BODY_SENT, F.NONE), (P.DONE, F.NONE), X, (P.BODY_SENT, F.NONE),
    ),
    P.DONE: (
        X, X, X, X, X, X,
        (P.DONE, F.NONE), (P.DONE, F.NONE), (P.DONE, F.NONE),
        (P.DONE, F.NONE), (P.DONE, F.NONE), (P.DONE, F.NONE), X, (P.DONE, F.NONE),
    ),
}  # fmt: skip


def test_expected_table_covers_every_pair() -> None:
    assert set(COLUMNS) == set(Event)
    assert set(EXPECTED) == set(Phase)


@pytest.mark.parametrize(("phase", "event"), list(itertools.product(Phase, Event)))
def test_every_phase_and_event(phase: Phase, event: Event) -> None:
    expected = EXPECTED[phase][COLUMNS.index(event)]
    state = HTTPState(100)
    state.phase = phase
    if expected is None:
        assert (phase, event) not in TABLE
        with pytest.raises(HTTPStateError, match=f"{event.name.lower()} cannot happen"):
            state.handle(event)
        assert state.phase is phase  # a refused event changes nothing
    else:
        assert state.handle(event) == expected[1]
        assert state.phase is expected[0]


def sent(state: HTTPState, *messages: Mapping[str, object]) -> list[int]:
    return [state.on_send(message) for message in messages]


HEAD = {"type": "http.response.start", "status": 200, "headers": []}
CHUNK = {"type": "http.response.body", "body": b"x", "more_body": True}
FINAL = {"type": "http.response.body", "body": b""}


def test_a_response_moves_through_the_phases() -> None:
    state = HTTPState(100)
    state.handle(E.RETURNED)
    assert not state.response_started
    assert sent(state, HEAD, CHUNK, FINAL) == [F.SEND] * 3
    assert state.phase is P.FINISHING
    assert state.response_started
    state.handle(E.DELIVERED)
    assert state.phase is P.BODY_SENT
    # hypercorn's http.disconnect after every complete response: the normal end.
    assert state.on_receive({"type": "http.disconnect"}) == F.NONE
    assert state.outcome is None
    assert not state.peer_gone


def test_a_disconnect_mid_response_trips_once_and_skips_later_sends() -> None:
    state = HTTPState(100)
    state.handle(E.RETURNED)
    state.on_send(HEAD)
    assert state.on_disconnect() == GONE
    assert (state.outcome, state.peer_gone, state.stopped) == (Outcome.DISCONNECTED, True, True)
    assert state.on_disconnect() == F.NONE  # said once
    assert sent(state, CHUNK, FINAL) == [F.NONE, F.NONE]


@pytest.mark.parametrize("multiplexed", [False, True])
def test_a_disconnect_while_the_final_message_is_sent(multiplexed: bool) -> None:
    state = HTTPState(100, multiplexed=multiplexed)
    state.handle(E.RETURNED)
    sent(state, HEAD, FINAL)
    if not multiplexed:  # HTTP/1.1: hypercorn's normal end, queued from inside the send
        assert state.on_disconnect() == F.NONE
        assert not state.peer_gone
        return
    assert state.on_disconnect() == F.AWAIT_DELIVERY  # HTTP/2: it may be stuck
    assert not state.peer_gone
    assert state.on_undelivered() == GONE
    assert (state.peer_gone, state.outcome) == (True, Outcome.DISCONNECTED)
    assert state.on_undelivered() == F.NONE


def test_route_that_runs_on_after_a_disconnect_keeps_its_scope() -> None:
    state = HTTPState(100, cancel_on_disconnect=False)
    assert state.on_disconnect() == F.TRIP_TOKEN | F.CANCEL_IO | F.WAKE_READERS


def test_the_first_outcome_stays() -> None:
    state = HTTPState(3)
    assert state.on_receive({"type": "http.request", "body": b"toolong"}) == OVERFLOWING
    assert state.on_disconnect() == GONE  # the client left afterwards
    assert state.outcome is Outcome.TOO_LARGE
    assert state.on_abort() == ABORTING
    assert state.outcome is Outcome.TOO_LARGE


@pytest.mark.parametrize(
    ("chunks", "limit", "body_state", "body", "effects"),
    [
        ([(b"abc", False)], 10, BodyState.COMPLETE, b"abc", [F.WAKE_READERS]),
        ([(b"ab", True), (b"c", False)], 10, BodyState.COMPLETE, b"abc", [F.NONE, F.WAKE_READERS]),
        ([(b"ab", True)], 10, BodyState.EXPECTED, b"ab", [F.NONE]),
        ([(b"abc", True), (b"def", False)], 5, BodyState.OVERFLOWED, b"", [F.NONE, OVERFLOWING]),
        ([(b"", False)], 0, BodyState.COMPLETE, b"", [F.WAKE_READERS]),
        ([(b"a", False)], 0, BodyState.OVERFLOWED, b"", [OVERFLOWING]),
        # after the end (or an overflow), more is ignored
        ([(b"a", False), (b"b", False)], 10, BodyState.COMPLETE, b"a", [F.WAKE_READERS, F.NONE]),
        ([(b"abc", True), (b"x", True)], 2, BodyState.OVERFLOWED, b"", [OVERFLOWING, F.NONE]),
    ],
)
def test_body_buffering(
    chunks: list[tuple[bytes, bool]],
    limit: int,
    body_state: BodyState,
    body: bytes,
    effects: list[int],
) -> None:
    state = HTTPState(limit)
    got = [
        state.on_receive({"type": "http.request", "body": chunk, "more_body": more})
        for chunk, more in chunks
    ]
    assert got == effects
    assert (state.body_state, state.body) == (body_state, body)


def test_overflow_after_the_handler_returned_is_not_a_413() -> None:
    state = HTTPState(2)
    state.handle(E.RETURNED)  # the handler answered without reading the body
    assert state.on_receive({"type": "http.request", "body": b"abc", "more_body": True}) == (
        F.WAKE_READERS
    )
    assert state.outcome is None
    assert state.body_state is BodyState.OVERFLOWED


def test_a_disconnect_mid_body_cuts_it() -> None:
    state = HTTPState(100)
    state.on_receive({"type": "http.request", "body": b"ab", "more_body": True})
    state.on_receive({"type": "http.disconnect"})
    assert state.body_state is BodyState.CUT


def test_sending_out_of_order_is_a_bug() -> None:
    state = HTTPState(100)
    with pytest.raises(HTTPStateError):
        state.on_send(HEAD)  # the handler has not returned
    state.handle(E.RETURNED)
    with pytest.raises(HTTPStateError):
        state.on_send(CHUNK)  # a body before the head
    sent(state, HEAD, FINAL)
    with pytest.raises(HTTPStateError):
        state.on_send(FINAL)  # the end, twice


def test_a_body_too_slow_before_the_response_is_a_408_not_a_disconnect() -> None:
    state = HTTPState(100)
    state.on_receive({"type": "http.request", "body": b"x", "more_body": True})
    assert state.on_too_slow() == GONE
    assert (state.outcome, state.reason) == (Outcome.TOO_SLOW, DisconnectReason.CLIENT_TOO_SLOW)
    assert not state.peer_gone  # still there, to be told 408
    assert state.body_state is BodyState.CUT
    state.handle(E.RETURNED)
    assert sent(state, HEAD) == [F.SEND]


@pytest.mark.parametrize("cancel_on_disconnect", [True, False])
def test_a_reader_too_slow_mid_response_is_gone(cancel_on_disconnect: bool) -> None:
    state = HTTPState(100, cancel_on_disconnect)
    state.handle(E.RETURNED)
    sent(state, HEAD)
    effect = state.on_too_slow()
    assert effect == (GONE if cancel_on_disconnect else GONE & ~F.CANCEL_SCOPE)
    assert (state.outcome, state.peer_gone) == (Outcome.DISCONNECTED, True)
    assert state.reason is DisconnectReason.CLIENT_TOO_SLOW
    assert state.on_disconnect() == F.NONE  # the connection's close, after: said once
    assert state.reason is DisconnectReason.CLIENT_TOO_SLOW


def test_too_slow_after_the_response_changes_nothing() -> None:
    state = HTTPState(100)
    state.handle(E.RETURNED)
    sent(state, HEAD, FINAL)
    state.handle(E.DELIVERED)
    assert state.on_too_slow() == F.NONE
    assert state.outcome is None


def test_a_disconnect_after_the_deadline_passed_is_a_timeout() -> None:
    # The write stuck past the route's deadline is cut there; whoever sees the
    # disconnect first, the request timed out.
    state = HTTPState(100)
    state.handle(E.RETURNED)
    sent(state, HEAD)
    assert state.on_disconnect(deadline_passed=True) == GONE
    assert state.outcome is Outcome.TIMED_OUT
