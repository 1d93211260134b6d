"""One WebSocket connection's protocol state: frames in, effects out.  Holds the connection's
subscriptions, its client_id and acknowledgements, and answers access changes.  Every outgoing
frame goes through the connection's outbox; ``gateway.ws`` is the thin loop around this.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from gateway import protocol
from gateway.cache import Cache
from gateway.hub import Hub
from gateway.outbox import Outbox
from gateway.protocol import Ack, FrameError, Ping, Subscribe, Unsubscribe
from gateway.replay import Replay
from gateway.subscription import Subscription, hand_over
from relaycore import ids, names
from relaycore.access import Authorizer
from relaycore.config import Settings
from relaycore.errors import RelayError
from relaycore.ids import StreamId
from relaycore.models import User
from relaycore.store.base import AckStore, SessionStore

log = logging.getLogger(__name__)

_TIMER_CONTEXT = contextvars.Context()
RETRY_DELAY = 0.2
RECHECK_GIVE_UP = 3.0  # seconds of backoff after which an access check that cannot run closes


@dataclass(frozen=True, slots=True)
class Collaborators:
    """What a session works with, handed over by whoever opens it (the gateway's node)."""

    settings: Settings
    authorizer: Authorizer  # the one read-access decision, and the current user record
    acks: AckStore
    sign_ins: SessionStore  # whether the token's sign-in session is still alive
    hub: Hub
    cache: Cache
    replay: Replay
    wait_ready: Callable[[], Awaitable[None]]  # until the tailer reads the fan-out logs
    generation: Callable[[], int]  # bumped on every access change


class Session:
    def __init__(
        self, parts: Collaborators, user: User, outbox: Outbox, *, expires_at: float, sign_in: str = ""
    ) -> None:
        self.id = "sess_" + secrets.token_hex(6)
        self.parts = parts
        self.user = user
        self.sign_in = sign_in  # the token's sign-in session id ("" for tokens without one)
        self.outbox = outbox
        self.client_id: str | None = None
        self.subs: dict[str, Subscription] = {}
        self._handovers: dict[str, asyncio.Task[None]] = {}
        # A list, not a set: an empty set is 216 bytes of every idle socket, and a session runs a
        # task or two at a time.
        self._tasks: list[asyncio.Task[None]] = []
        delay = max(0.0, expires_at - time.time())
        # One shared, empty context rather than a copy of the handshake's for every socket.
        self._expiry = asyncio.get_running_loop().call_later(
            delay, outbox.close, protocol.TOKEN_EXPIRED, context=_TIMER_CONTEXT
        )

    # --- frames --------------------------------------------------------------------------------
    async def handle(self, data: str | bytes) -> None:
        try:
            frame = protocol.decode(data)
            if isinstance(frame, Subscribe):
                await self.subscribe(frame)
            elif isinstance(frame, Unsubscribe):
                self.unsubscribe(frame.topics)
            elif isinstance(frame, Ping):
                self.reply(protocol.Pong(timestamp=protocol.now()))
            elif isinstance(frame, Ack):
                await self.ack(frame)
        except FrameError as exc:
            self.outbox.offer(protocol.error(exc.code, exc.message))

    def reply(self, frame: protocol.ServerFrame) -> None:
        self.outbox.offer(protocol.encode(frame))

    async def subscribe(self, frame: Subscribe) -> None:
        settings = self.parts.settings
        topics = list(dict.fromkeys(frame.topics))
        if not topics:
            raise FrameError(protocol.SUBSCRIPTION_ERROR, "At least one topic required")
        if len(topics) > settings.ws_max_topics:
            raise FrameError(
                protocol.SUBSCRIPTION_ERROR, f"Too many topics: at most {settings.ws_max_topics}"
            )
        for t in topics:
            if problem := names.topic_problem(t):
                raise FrameError(protocol.SUBSCRIPTION_ERROR, f"Invalid topic name {t!r}: {problem}")
        adding = sum(1 for t in topics if t not in self.subs)
        if len(self.subs) + adding > settings.ws_max_subscriptions:
            raise FrameError(
                protocol.SUBSCRIPTION_ERROR,
                f"Too many subscriptions: at most {settings.ws_max_subscriptions} topics per connection"
                f" (subscribed to {len(self.subs)}); unsubscribe from some first",
            )
        positions = _positions(frame.since or {}, topics)
        if frame.client_id is not None:
            self.client_id = frame.client_id
        if frame.resume and self.client_id is None:
            raise FrameError(protocol.SUBSCRIPTION_ERROR, "resume requires a client_id")
        try:
            await self.parts.wait_ready()
            generation = self.parts.generation()
            access = await self.parts.authorizer.read_access(self.user, topics)
            if access.forbidden:
                raise FrameError(
                    protocol.SUBSCRIPTION_ERROR, f"Access denied to topics: {access.forbidden!r}"
                )
            if frame.resume:
                assert self.client_id is not None
                acked = await self.parts.acks.positions(self.user.user_id, self.client_id)
                positions = _positions(acked, topics, strict=False) | positions
        except RelayError as exc:
            raise FrameError(protocol.SUBSCRIPTION_ERROR, f"Failed to subscribe: {exc.detail}") from None
        # From here to the reply, nothing awaits: registration and the `subscribed` frame are one
        # step, so no live message can precede the reply.
        for t in topics:
            if t in self.subs and t not in positions:
                continue  # already live; a repeated subscribe without a position changes nothing
            self._drop(t)
            sub = Subscription(
                t,
                self.outbox,
                after=positions.get(t),
                verified=t not in access.missing,
                limit=settings.ws_send_queue,
                on_unverified=self._on_unverified,
            )
            self.subs[t] = sub
            self.parts.hub.add(t, sub)
        self.reply(protocol.Subscribed(topics=frame.topics, session_id=self.id, timestamp=protocol.now()))
        for t in topics:
            sub = self.subs[t]
            if sub.catching_up and t not in self._handovers:
                self._handovers[t] = self._spawn(self._hand_over(sub))
        if self.parts.generation() != generation:  # access changed while we were checking it
            self._spawn(self.recheck(topics, refresh_user=False))

    def unsubscribe(self, topics: list[str]) -> None:
        if not topics:
            raise FrameError(protocol.PROCESSING_ERROR, "At least one topic required")
        for t in topics:
            self._drop(t)
        self.reply(protocol.Unsubscribed(topics=topics, timestamp=protocol.now()))

    async def ack(self, frame: Ack) -> None:
        sid = ids.parse(frame.message_id)
        if sid is None:
            raise FrameError(protocol.PROCESSING_ERROR, f"Invalid message id {frame.message_id!r}")
        topic = frame.topic or self._delivered_topic(sid)
        if topic is not None and (problem := names.topic_problem(topic)):
            raise FrameError(protocol.PROCESSING_ERROR, f"Invalid topic name {topic!r}: {problem}")
        if self.client_id is None or topic is None:
            return  # nothing to record against (the reference acks are log-only)
        try:
            await self.parts.acks.record(self.user.user_id, self.client_id, topic, frame.message_id)
        except RelayError as exc:
            raise FrameError(protocol.PROCESSING_ERROR, f"Ack not recorded: {exc.detail}") from None

    # --- subscriptions -------------------------------------------------------------------------
    def _drop(self, topic: str) -> None:
        sub = self.subs.pop(topic, None)
        if sub is not None:
            sub.active = False
            self.parts.hub.remove(topic, sub)
        task = self._handovers.pop(topic, None)
        if task is not None:
            task.cancel()

    def _revoke(self, topic: str) -> None:
        if topic in self.subs:
            self._drop(topic)
            self.outbox.offer(
                protocol.error(protocol.ACCESS_REVOKED, f"Access to topic '{topic}' was revoked")
            )

    def _delivered_topic(self, sid: StreamId) -> str | None:
        """The topic of an ack sent without one, worked out when the ack comes (nothing is kept
        per delivery): the one subscription that has delivered up to this id or beyond, or,
        among several, the one whose messages in the gateway's hot cache include the id.  Ids are
        unique per topic only: an id that two subscribed topics hold is not guessed."""
        reached = [topic for topic, sub in self.subs.items() if sub.last is not None and sid <= sub.last]
        if len(reached) > 1:
            reached = [topic for topic in reached if self.parts.cache.holds(topic, sid)]
        return reached[0] if len(reached) == 1 else None

    async def _hand_over(self, sub: Subscription) -> None:
        try:
            while sub.active:
                try:
                    budget = self.parts.settings.answer_max_bytes
                    await hand_over(sub, self.parts.replay, lambda: self._verify(sub), budget)
                    return
                except RelayError as exc:  # storage unavailable: the subscription stays held
                    log.warning("replay of %s failed (%s); retrying", sub.topic, exc)
                    await asyncio.sleep(RETRY_DELAY)
        finally:
            if self._handovers.get(sub.topic) is asyncio.current_task():
                del self._handovers[sub.topic]

    def _on_unverified(self, sub: Subscription) -> None:
        async def verify_then_release() -> None:
            while sub.active:
                try:
                    if await self._verify(sub):
                        sub.release()
                    return
                except RelayError:
                    await asyncio.sleep(RETRY_DELAY)

        self._spawn(verify_then_release())

    async def _verify(self, sub: Subscription) -> bool:
        """Access to a topic that did not exist at subscribe time, read straight from storage (and
        into the authorizer's cache)."""
        access = await self.parts.authorizer.read_access(self.user, [sub.topic], fresh=[sub.topic])
        if sub.topic in access.missing:
            return True  # still no such topic: the reference lets anyone follow it
        if not access.forbidden:
            sub.verified = True
            return True
        self._revoke(sub.topic)
        return False

    # --- access changes ------------------------------------------------------------------------
    async def recheck(self, topics: list[str] | None, *, refresh_user: bool) -> None:
        """Apply an access change: close on a lost user, drop the topics that lost read access.
        If storage stays unreachable through a few retries, close rather than guess (fail closed)."""
        delay = RETRY_DELAY
        while True:
            try:
                await self._recheck(topics, refresh_user=refresh_user)
                return
            except RelayError as exc:
                if delay > RECHECK_GIVE_UP:
                    log.warning("access re-check failed (%s); closing session %s", exc, self.id)
                    self.outbox.close(protocol.INTERNAL_ERROR)
                    return
                await asyncio.sleep(delay)
                delay *= 2

    async def _recheck(self, topics: list[str] | None, *, refresh_user: bool) -> None:
        if refresh_user:
            user = await self.parts.authorizer.user(self.user.user_id)
            if user is None or not user.is_active or not user.has("read"):
                self.outbox.close(protocol.ACCESS_LOST)
                return
            self.user = user
            # The user first: a deactivated user's sockets close with 4003 even though their
            # sessions end too.  Straight from storage: a user event may stand for sessions that
            # ended without their own event.
            if self.sign_in and await self.parts.sign_ins.remaining(self.sign_in) is None:
                self.outbox.close(protocol.TOKEN_REVOKED)
                return
        names_ = [t for t in (topics if topics is not None else list(self.subs)) if t in self.subs]
        access = await self.parts.authorizer.read_access(self.user, names_)
        for t in access.forbidden:
            self._revoke(t)
        for t in names_:
            if t not in access.missing and t in self.subs:
                self.subs[t].verified = True

    # --- lifecycle -----------------------------------------------------------------------------
    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.append(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        if task in self._tasks:
            self._tasks.remove(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("session %s task failed", self.id, exc_info=task.exception())
            self.outbox.close(protocol.INTERNAL_ERROR)

    def end(self) -> None:
        """Unregister everything; the connection is gone or going."""
        self._expiry.cancel()
        for t in list(self.subs):
            self._drop(t)
        for task in list(self._tasks):
            task.cancel()


def _positions(since: dict[str, str], topics: list[str], *, strict: bool = True) -> dict[str, StreamId]:
    out: dict[str, StreamId] = {}
    for t in topics:
        if t in since:
            sid = ids.parse(since[t])
            if sid is not None:
                out[t] = sid
            elif strict:
                raise FrameError(
                    protocol.SUBSCRIPTION_ERROR,
                    f"Invalid message id in since for topic '{t}': {since[t]!r}"
                    " (expected '<milliseconds>-<sequence>', e.g. '1715600000123-0')",
                )
    return out
