"""The gateway process (centrifuge's ``Node``): owns the pieces, starts and stops them, and answers
the questions the transports share: is the tailer ready, may this user read these topics, what
does the whole deployment look like, and what to do when access changes.  No framework.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from gateway import protocol
from gateway.cache import Cache
from gateway.hub import Hub
from gateway.outbox import Outbox
from gateway.presence import Presence
from gateway.replay import Replay
from gateway.session import Collaborators, Session
from gateway.tailer import Tailer
from gateway.waiter import Waiter
from gateway.writer import WriteBatch
from relaycore import metrics
from relaycore.context import Context
from relaycore.errors import Unavailable
from relaycore.keys import Keys
from relaycore.models import User

log = logging.getLogger(__name__)

STOP_GRACE = 2.0  # seconds for open sockets to receive their close frame at shutdown


class Node:
    def __init__(self, ctx: Context) -> None:
        s = ctx.settings
        self.settings = s
        # storage: topic streams, fan-out logs, acks, the gateway registry
        self.backend = ctx.backend
        # tokens and access decisions, from caches the invalidation channel keeps honest
        self.authorizer = ctx.authorizer
        self.gateway_id = s.effective_gateway_id
        keys = Keys(s.key_prefix, s.fanout_partitions)
        retention = s.persistent_tier_retention or s.cache_max_age
        # the hot tier: never holds more, or older, than Valkey keeps
        self.cache = Cache(
            per_topic=min(s.cache_messages_per_topic, s.max_messages_per_topic),
            max_topics=s.cache_max_topics,
            max_age=min(s.cache_max_age, retention),
            max_bytes=s.cache_max_bytes,
        )
        # this process's topic -> subscriptions and waiters
        self.writes = WriteBatch()  # WebSocket writes wait for the end of each hub dispatch
        self.hub = Hub(self.writes, self.writes.single)
        # reads the fan-out logs into the cache and the hub
        self.tailer = Tailer(
            self.backend.fanout,
            keys.gateway_group(self.gateway_id),
            cache=self.cache,
            hub=self.hub,
            batch_size=s.tail_batch_size,
            block=s.tail_block,
            # a quarter of a connection's byte budget per dispatch, so a burst of large messages
            # reaches a reading client in steps instead of overflowing its outbox at once
            chunk_bytes=max(1, s.ws_send_queue_bytes // 4),
            # COUNT per read from the sizes seen, so one reply holds about this many bytes
            read_max_bytes=s.tail_read_max_bytes,
            largest=s.max_body_bytes,
        )
        # history after / before a position, cache first
        self.replay = Replay(
            self.cache, self.backend.messages, self.tailer.position, largest=s.max_body_bytes
        )
        # history pages and poll catch-ups being read and built (each up to answer_max_bytes)
        self._answers = asyncio.Semaphore(s.answers_at_once)
        # heartbeat with our counts; removal of dead gateways' groups
        self.presence = Presence(
            self.gateway_id,
            gateways=self.backend.gateways,
            fanout=self.backend.fanout,
            keys=keys,
            snapshot=self.snapshot,
            interval=s.gateway_heartbeat_interval,
            expiry=s.gateway_expiry,
            on_beat=self._check_lag,
        )
        self.sessions: set[Session] = set()
        self.waiters: set[Waiter] = set()
        self._drained = asyncio.Event()  # set whenever the last session ends
        self.draining = False  # asked to stop: long-polls are answered at once
        self.generation = 0  # bumped on every access change, so checks can tell they raced one
        self._tasks: list[asyncio.Task[None]] = []
        self._checks: set[asyncio.Task[None]] = set()
        self.authorizer.on_change(self._on_change)
        # what each WebSocket session works with, handed to it rather than this node
        self._collaborators = Collaborators(
            settings=s,
            authorizer=self.authorizer,
            acks=self.backend.acks,
            sign_ins=self.backend.sessions,
            hub=self.hub,
            cache=self.cache,
            replay=self.replay,
            wait_ready=self.wait_ready,
            generation=lambda: self.generation,
        )

    # --- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self.presence.run(), name="gateway-presence"),
            loop.create_task(self.tailer.run(), name="gateway-tailer"),
        ]
        if self.settings.ws_ping_interval > 0:
            self._tasks.append(loop.create_task(self._ping_idle(), name="gateway-pings"))
        with contextlib.suppress(TimeoutError):  # Valkey down at start: requests wait, then 503
            await asyncio.wait_for(self.tailer.ready.wait(), self.settings.valkey_timeout)

    async def drain(self) -> None:
        """Close every WebSocket with 1001 (going away) and give them a moment to go.  Called as
        soon as the process is asked to stop, so clients reconnect elsewhere at once.  Long-polls
        waiting now (or arriving from here on) get their normal answer at once, with what they
        have, so the server's graceful shutdown has nothing left to wait for."""
        self.draining = True
        for waiter in list(self.waiters):
            waiter.arrived.set()
        for session in list(self.sessions):
            session.outbox.close(protocol.GOING_AWAY)
        if self.sessions:
            self._drained.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STOP_GRACE):
                    await self._drained.wait()

    async def stop(self) -> None:
        await self.drain()
        await _cancel_all([*self._tasks, *self._checks])
        with contextlib.suppress(Exception):  # what was dispatched is not handed over again
            async with asyncio.timeout(1.0):
                await self.tailer.settle()
        with contextlib.suppress(Exception):  # gone from the console and the fan-out logs
            async with asyncio.timeout(1.0):
                await self.presence.leave()

    async def wait_ready(self) -> None:
        if not self.tailer.ready.is_set():
            try:
                await asyncio.wait_for(self.tailer.ready.wait(), self.settings.valkey_timeout)
            except TimeoutError:
                raise Unavailable("Gateway is not ready, retry later") from None

    @contextlib.asynccontextmanager
    async def answering(self) -> AsyncIterator[None]:
        """A turn to read and build an answer of stored messages; ``Unavailable`` (503) when none
        comes within ``valkey_timeout`` (the gateway is busy with as many as it builds at once)."""
        try:
            async with asyncio.timeout(self.settings.valkey_timeout):
                await self._answers.acquire()
        except TimeoutError:
            raise Unavailable("Gateway is busy answering other reads, retry later") from None
        try:
            yield
        finally:
            self._answers.release()

    # --- connections ---------------------------------------------------------------------------
    def open_session(self, user: User, outbox: Outbox, *, expires_at: float, sign_in: str = "") -> Session:
        """``sign_in``: the token's sign-in session (``sid``); the socket closes when it ends."""
        session = Session(self._collaborators, user, outbox, expires_at=expires_at, sign_in=sign_in)
        self.sessions.add(session)
        return session

    async def _ping_idle(self) -> None:
        """An application-level ping to every socket that sent nothing for a ping interval: one
        sweep for the whole process instead of a timer per connection."""
        interval = self.settings.ws_ping_interval
        while True:
            await asyncio.sleep(interval)
            frame = protocol.encode(protocol.ServerPing(timestamp=protocol.now()))
            for session in list(self.sessions):
                outbox = session.outbox
                if not outbox.active:
                    outbox.offer(frame)
                outbox.active = False

    def close_session(self, session: Session) -> None:
        session.end()
        self.sessions.discard(session)
        if not self.sessions:
            self._drained.set()

    def add_waiter(self, waiter: Waiter) -> None:
        self.waiters.add(waiter)
        if self.draining:
            waiter.arrived.set()
        for t in waiter.topics:
            self.hub.add(t, waiter)

    def remove_waiter(self, waiter: Waiter) -> None:
        self.waiters.discard(waiter)
        for t in waiter.topics:
            self.hub.remove(t, waiter)

    def _on_change(self, event: str) -> None:
        self.generation += 1
        kind, _, name = event.partition(":")
        if event == "*":
            self.cache.clear()
        elif kind == "topic":
            self.cache.drop(name)  # deleted, or re-created: its old messages are not the new ones
        for waiter in self.waiters:
            if event == "*":
                waiter.stale.update(waiter.topics)
            elif kind == "topic" and name in waiter.got:
                waiter.stale.add(name)
        for session in list(self.sessions):
            if kind == "session":
                if session.sign_in == name:  # 4002, or 4003 if the user went too
                    self._check(session.recheck([], refresh_user=True))
            elif event == "*" or (kind == "user" and session.user.user_id == name):
                self._check(session.recheck(None, refresh_user=True))
            elif kind == "topic" and name in session.subs:
                self._check(session.recheck([name], refresh_user=False))

    def _check(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)

    # --- numbers -------------------------------------------------------------------------------
    def snapshot(self) -> tuple[dict[str, int], dict[str, int]]:
        """(counters, per-topic subscribers) for the heartbeat.  Counters also carry the messages
        delivered so far and, as ``longpoll:<topic>``, the waiting polls per topic (the rest of a
        topic's subscribers are WebSockets); readers ignore keys they do not know."""
        counters = {
            "active_waiters": len(self.waiters),
            "websocket_connections": len(self.sessions),
            "messages_delivered": metrics.delivered_total(),
        }
        for waiter in self.waiters:
            for topic in waiter.topics:
                key = f"longpoll:{topic}"
                counters[key] = counters.get(key, 0) + 1
        return counters, self.hub.counts()

    async def deployment_stats(self, viewer: User) -> dict[str, Any]:
        """Every live gateway's numbers summed, with this gateway's taken live.  Per-topic counts
        name only the topics ``viewer`` may read (all of them for an admin): a private topic's name
        is not for outsiders.  The totals cover the whole deployment."""
        rows = [r for r in await self.backend.gateways.stats() if r[0] != self.gateway_id]
        rows.append((self.gateway_id, *self.snapshot()))
        topics: dict[str, int] = {}
        for _, _, counts in rows:
            for t, n in counts.items():
                topics[t] = topics.get(t, 0) + n
        hidden = set((await self.authorizer.read_access(viewer, topics)).forbidden)
        return {
            "active_waiters": sum(c.get("active_waiters", 0) for _, c, _ in rows),
            "subscribed_topics": sum(1 for n in topics.values() if n > 0),
            "topic_subscriber_counts": {t: n for t, n in sorted(topics.items()) if t not in hidden},
            "websocket_connections": sum(c.get("websocket_connections", 0) for _, c, _ in rows),
            "gateways": len(rows),
        }

    async def _check_lag(self) -> None:
        lag = await self.tailer.lag()
        if lag > self.settings.fanout_log_maxlen // 2:
            # Trimming may soon remove entries this gateway has not read; the cache could then
            # miss messages, so it stops vouching for anything until the tailer catches up.
            log.warning("consumer group lag %d is close to the log length; clearing the cache", lag)
            self.cache.clear()


async def _cancel_all(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait for them to end.  One that absorbed its cancellation (a driver
    that turns it into an error, which a retry loop then logs and carries on from; seen with the
    presence loop) is cancelled again, so a stop never waits forever on it."""
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.5)
