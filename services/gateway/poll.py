"""Long-poll without a lost-message window (CONTRACT decision 7).

The waiter is registered with the hub *first*, and each partition's tailer position is noted in
the same synchronous step.  Everything up to that position was dispatched before the waiter
existed; everything after it reaches the waiter.  So a message published at any moment of the
poll is either in the response or after the cursor returned for its topic:

* a topic with messages in the response: cursor = the last of them (they are a contiguous prefix);
* a quiet topic: cursor = max(since, its newest id at or below the position at registration)
  ("0-0" when it has none: a re-created topic never gets its predecessor's last id).

The reference's race (read storage, *then* register) cannot happen.  No I/O of its own.
"""

from __future__ import annotations

import asyncio
import contextlib

import msgspec

from gateway.node import Node
from gateway.protocol import message_frame
from gateway.waiter import Waiter
from relaycore import ids, metrics
from relaycore.errors import Forbidden
from relaycore.ids import StreamId
from relaycore.models import StoredMessage, User, now_ms

_delivered = metrics.messages_delivered.labels("longpoll")
_latency = metrics.delivery_latency.labels("longpoll")
_waiting = metrics.connections.labels("longpoll")


class PollResponse(msgspec.Struct, kw_only=True):
    messages: list[msgspec.Raw]
    has_more: bool
    cursors: dict[str, str]


async def poll(
    node: Node,
    user: User,
    topics: list[str],
    since: dict[str, StreamId],
    wait: float,
    *,
    catch_up: bool,
    sign_in: str = "",
) -> PollResponse:
    """The poll's response; ``Forbidden`` (naming them) if any topic is not readable.  With
    ``catch_up``, stored messages after ``since`` come back at once (a topic missing from
    ``since`` replays from the start); otherwise only messages newer than the poll do.
    ``sign_in`` is the token's session: if it ends while the poll waits, nothing is handed out."""
    settings = node.settings
    cap = settings.poll_max_messages_per_topic
    access = await node.authorizer.read_access(user, topics)
    if access.forbidden:
        raise Forbidden(f"Access denied to topics: {access.forbidden!r}")
    missing = access.missing
    await node.wait_ready()
    waiter = Waiter(topics, since, cap, settings.answer_max_bytes)
    node.add_waiter(waiter)
    start = {t: node.tailer.position(t) for t in topics}  # same step as the registration
    _waiting.inc()
    try:
        if catch_up:
            async with node.answering():
                caught = await _catch_up(node, topics, since, cap)
                if any(found for found, _ in caught.values()):
                    return await _caught_up(node, user, caught, since, start, missing, waiter)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await waiter.arrived.wait()
        if waiter.arrived.is_set():
            await node.tailer.caught_up(settings.poll_batch_window)
    finally:
        node.remove_waiter(waiter)
        _waiting.dec()
    if any(waiter.got.values()):  # the user or the session may have ended while it waited
        node.authorizer.require(await node.authorizer.standing(user.user_id, sign_in), "read")
    await _check(node, user, [t for t in topics if waiter.got[t]], missing, waiter)
    now = now_ms()
    messages = []
    for t in topics:
        for sid, frame in waiter.got[t]:
            messages.append(msgspec.Raw(frame))
            _latency.observe(max(0, now - sid[0]) / 1000)
    _delivered.inc(len(messages))
    cursors = await _cursors(
        node, {t: ids.fmt(waiter.got[t][-1][0]) if waiter.got[t] else None for t in topics}, since, start
    )
    return PollResponse(messages=messages, has_more=bool(waiter.full), cursors=cursors)


async def _catch_up(
    node: Node, topics: list[str], since: dict[str, StreamId], cap: int
) -> dict[str, tuple[list[StoredMessage], bool]]:
    """Each topic's stored messages after ``since`` (a topic missing from a non-empty since
    replays from the start) and whether that was all of them, within ``answer_max_bytes`` for
    all topics together: once it is spent, the remaining topics get nothing (and are not done)."""
    left = node.settings.answer_max_bytes
    caught: dict[str, tuple[list[StoredMessage], bool]] = {}
    for t in topics:
        if left <= 0:
            caught[t] = ([], False)
            continue
        found, complete = await node.replay.after(t, since.get(t), cap, left)
        caught[t] = (found, complete)
        left -= sum(m.size() for m in found)
    return caught


async def _caught_up(
    node: Node,
    user: User,
    caught: dict[str, tuple[list[StoredMessage], bool]],
    since: dict[str, StreamId],
    start: dict[str, StreamId | None],
    missing: set[str],
    waiter: Waiter,
) -> PollResponse:
    """The answer of a catch-up that found messages.  A topic the byte budget did not reach keeps
    its ``since`` as cursor (its stored messages come next time)."""
    topics = list(caught)
    await _check(node, user, [t for t in topics if caught[t][0]], missing, waiter)
    messages = [msgspec.Raw(message_frame(m)) for t in topics for m in caught[t][0]]
    _delivered.inc(len(messages))
    last: dict[str, str | None] = {}
    for t, (found, complete) in caught.items():
        if found:
            last[t] = found[-1].message_id
        elif not complete:  # not reached: nothing of it was read
            last[t] = ids.fmt(since.get(t, ids.ZERO))
        else:
            last[t] = None
    cursors = await _cursors(node, last, since, start)
    has_more = any(
        not complete or len(found) >= node.settings.poll_max_messages_per_topic
        for found, complete in caught.values()
    )
    return PollResponse(messages=messages, has_more=has_more, cursors=cursors)


async def _cursors(
    node: Node, last: dict[str, str | None], since: dict[str, StreamId], start: dict[str, StreamId | None]
) -> dict[str, str]:
    """Each topic's cursor: the last message in the response, else the quiet topic's ``_base``."""
    quiet = [t for t, got in last.items() if got is None]
    bases = dict(
        zip(quiet, await asyncio.gather(*(_base(node, t, since, start) for t in quiet)), strict=True)
    )
    return {t: got or bases[t] for t, got in last.items()}


async def _base(node: Node, topic: str, since: dict[str, StreamId], start: dict[str, StreamId | None]) -> str:
    """A quiet topic's cursor: nothing of it up to here is unseen by the client.  Every message of
    the topic up to the registration's position was stored before the poll began (none of it is
    owed: it is at or below ``since``, or the poll asked for new messages only), so the cursor is
    the newest of them: the topic's own id, never another topic's (a partition's position may be
    the id of a message in a topic since deleted, or in someone else's private topic)."""
    given = since.get(topic)
    at = start[topic]
    if at is None or (given is not None and given >= at):
        return ids.fmt(given or ids.ZERO)
    own = await node.backend.messages.last_id(topic, upto=at)
    newest = ids.ZERO if own is None else ids.parse(own) or ids.ZERO
    return ids.fmt(max(newest, given) if given is not None else newest)


async def _check(node: Node, user: User, with_messages: list[str], missing: set[str], waiter: Waiter) -> None:
    """Re-check access where it may have changed: topics created after the check (someone else's,
    possibly private) and topics whose grants changed during the poll."""
    doubtful = [t for t in with_messages if t in missing] + sorted(waiter.stale)
    if doubtful:
        access = await node.authorizer.read_access(user, doubtful, fresh=doubtful)
        if access.forbidden:
            raise Forbidden(f"Access denied to topics: {access.forbidden!r}")
