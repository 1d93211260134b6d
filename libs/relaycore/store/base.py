"""The storage interfaces every backend implements (Valkey for real deployments, memory for the
single-process fallback and fast unit tests).  ``tests/contract`` runs one suite against both.

Implementations raise ``relaycore.errors`` types (``Conflict``, ``Forbidden``, ``Unavailable``);
callers never see a driver exception.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Literal, Protocol

import msgspec

from relaycore.ids import StreamId
from relaycore.models import NewMessage, StoredMessage, Topic, User

PublishKind = Literal["single", "bulk"]


class PublishResult(msgspec.Struct, frozen=True, kw_only=True):
    kind: PublishKind
    message_ids: list[str]
    topics: list[str]
    timestamps: list[str]
    duplicate: bool = False  # True: an Idempotency-Key repeat; nothing was written


class UserStore(Protocol):
    async def create(self, user: User) -> None:
        """Store a new user; ``Conflict`` if the username is taken (atomic under concurrency)."""

    async def get(self, user_id: str) -> User | None: ...
    async def get_by_name(self, username: str) -> User | None: ...
    async def list(self) -> list[User]: ...

    async def save(self, user: User) -> bool:
        """Overwrite an existing user's record; False if it no longer exists."""

    async def delete(self, user_id: str) -> bool:
        """Remove the user record; False if it did not exist (see ``TopicStore.forget_user``)."""


class SessionRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One sign-in session: a refresh-token rotation chain.  Times are epoch milliseconds;
    ``expires_at`` is the absolute end of the chain, whatever its idle lifetime."""

    session_id: str
    user_id: str
    client_hint: str | None
    issued_at: int
    expires_at: int
    last_used_at: int | None = None


RotateOutcome = Literal["ok", "unknown", "expired", "raced", "replayed"]


class Rotation(msgspec.Struct, frozen=True, kw_only=True):
    """What ``SessionStore.rotate`` did.  ``ok``: the presented secret was the current one and is
    now replaced.  ``raced``: it was the one replaced less than the grace period ago (a concurrent
    refresh won; nothing changed).  ``replayed``: it was an older one of this chain, which is now
    deleted (theft detection).  ``expired``: past the absolute lifetime, now deleted.
    ``unknown``: no such session, or a secret it never had."""

    outcome: RotateOutcome
    user_id: str | None = None


class SessionStore(Protocol):
    """Refresh-token sessions.  Only hashes of secrets are stored.  A session disappears when it
    is revoked, replayed or idle for its idle lifetime; ``remaining`` is what access tokens check."""

    async def create(self, record: SessionRecord, secret_hash: str, *, idle: float) -> None: ...

    async def rotate(
        self, session_id: str, presented: str, new: str, *, now_ms: int, idle: float, grace: float, keep: int
    ) -> Rotation:
        """Atomically replace the current secret hash ``presented`` by ``new``; exactly one of
        several concurrent calls with the same ``presented`` gets ``ok``.  ``keep`` replaced hashes
        are remembered for theft detection; ``grace`` seconds after a rotation, a repeat of the
        replaced hash is ``raced`` rather than ``replayed``."""

    async def matches(self, session_id: str, secret_hash: str) -> Literal["current", "old"] | None:
        """Whether the hash is the session's current secret, one it had, or neither."""

    async def get(self, session_id: str) -> SessionRecord | None: ...
    async def remaining(self, session_id: str) -> float | None:
        """Seconds until the session ends by itself (its idle or absolute lifetime, whichever
        comes first, as of now); None if it has ended."""

    async def for_user(self, user_id: str) -> list[SessionRecord]:
        """The user's live sessions, oldest first."""

    async def count(self, user_id: str) -> int:
        """At least the number of the user's live sessions (ended ones may be counted until
        ``for_user`` next runs)."""

    async def delete(self, session_id: str) -> bool:
        """False if it did not exist."""


class IdentityStore(Protocol):
    """Federated (OIDC) identities, ``(issuer, subject)``, each linked to at most one user."""

    async def link(self, issuer: str, subject: str, user_id: str) -> str:
        """Link the identity to ``user_id`` unless it is linked already; returns the user id it is
        linked to afterwards (``user_id``, or the existing owner).  Atomic under concurrency."""

    async def find(self, issuer: str, subject: str) -> str | None: ...

    async def of_user(self, user_id: str) -> list[tuple[str, str]]:
        """(issuer, subject) pairs linked to the user, sorted."""

    async def unlink(self, issuer: str, subject: str, user_id: str) -> bool:
        """Remove the link if it points at ``user_id``; False otherwise."""

    async def forget_user(self, user_id: str) -> None:
        """Remove every link of the user (called when a user is deleted)."""


class OnceStore(Protocol):
    """Short-lived records that can be taken exactly once (an OIDC sign-in's state)."""

    async def put(self, purpose: str, ident: str, value: bytes, ttl: float) -> None: ...

    async def take(self, purpose: str, ident: str) -> bytes | None:
        """The record, removed atomically: of two concurrent takes only one gets it."""


class TopicStore(Protocol):
    async def create(self, topic: Topic) -> None:
        """Store a new topic; ``Conflict`` if the name is taken."""

    async def get(self, name: str) -> Topic | None:
        """The topic with ``allowed_user_ids`` filled in, or None."""

    async def update(self, name: str, *, is_public: bool | None, description: str | None) -> Topic | None: ...

    async def delete(self, name: str) -> bool:
        """Remove the topic, its grants and all its messages."""

    async def grant(self, name: str, user_id: str) -> bool:
        """Give read access; False if the user had it already."""

    async def revoke(self, name: str, user_id: str) -> bool:
        """Take read access away; False if the user did not have it."""

    async def names_for(self, user_id: str) -> tuple[list[str], list[str]]:
        """(owned, granted) topic names of a user, each sorted."""

    async def all_names(self) -> list[str]: ...

    async def forget_user(self, user_id: str) -> None:
        """Drop every read grant the user holds (called when a user is deleted)."""


class MessageStore(Protocol):
    async def publish(
        self,
        messages: Sequence[NewMessage],
        *,
        user: User,
        kind: PublishKind,
        idempotency_key: str | None,
        idempotency_ttl: float,
        topic_ids: Sequence[str],
    ) -> PublishResult:
        """Atomically: check write access to every topic, auto-create missing topics (owned by
        ``user``), append every message to its topic stream and its partition's fan-out log, and
        record the result under the idempotency key.  ``Forbidden`` (naming the topics) if any topic
        belongs to someone else; nothing is written then.  A repeat of a key returns the first
        result with ``duplicate=True``.  ``topic_ids`` gives a fresh id per message, used if that
        message's topic is created."""

    async def read_after(self, topic: str, after: StreamId | None, limit: int) -> list[StoredMessage]:
        """Up to ``limit`` unexpired messages with id > ``after`` (from the start if None), ascending."""

    async def read_before(self, topic: str, before: StreamId | None, limit: int) -> list[StoredMessage]:
        """Up to ``limit`` unexpired messages with id < ``before`` (from the newest if None), descending."""

    async def last_id(self, topic: str, upto: StreamId | None = None) -> str | None:
        """The id of the topic's newest stored message (expired or not), or of its newest at or
        below ``upto``; None when there is none."""

    async def length(self, topic: str) -> int: ...


class FanoutLog(Protocol):
    """The partitioned logs that gateways tail, one consumer group per gateway."""

    @property
    def partitions(self) -> int: ...

    def read_sets(self) -> list[list[int]]:
        """How the partitions are best read: one blocking ``read`` per set, side by side.  One set
        of every partition where one command may name them all; one set per partition on a Valkey
        Cluster, which refuses a command over several hash slots."""
        ...

    async def join(self, group: str, partitions: Sequence[int] | None = None) -> dict[int, str]:
        """Ensure ``group`` exists on every partition (or those given; new groups start at the
        end) and return the group's last-delivered id per partition."""

    async def read(
        self,
        group: str,
        *,
        count: int,
        block: float,
        pending: bool = False,
        partitions: Sequence[int] | None = None,
    ) -> list[tuple[int, list[StoredMessage]]]:
        """Next entries per partition (every one, or those given) for ``group``: new ones, or
        (``pending``) the ones delivered but not yet acknowledged.  Blocks up to ``block`` seconds
        when there is nothing."""

    async def ack(self, group: str, by_partition: Mapping[int, Sequence[str]]) -> None:
        """Acknowledge entries of several partitions (partition -> entry ids) at once."""

    async def lag(self, group: str) -> int: ...
    async def drop(self, group: str) -> None: ...

    async def appended(self) -> int:
        """Entries ever appended to all partition logs: messages published deployment-wide,
        trimming notwithstanding (the operator console derives the publish rate from it)."""
        ...


class GatewayRegistry(Protocol):
    """Gateway liveness and counters, shared so that any gateway can report the whole deployment."""

    async def heartbeat(
        self, gateway_id: str, stats: dict[str, int], topic_counts: dict[str, int]
    ) -> None: ...
    async def live(self) -> dict[str, int]:
        """gateway id -> last heartbeat (ms)."""

    async def forget(self, gateway_id: str) -> None: ...
    async def stats(self) -> list[tuple[str, dict[str, int], dict[str, int]]]:
        """(gateway id, counters, per-topic subscriber counts) for every live gateway."""


class AckStore(Protocol):
    async def record(self, user_id: str, client_id: str, topic: str, message_id: str) -> None:
        """Remember ``message_id`` if it is newer than the one recorded."""

    async def positions(self, user_id: str, client_id: str) -> dict[str, str]: ...


class Counter(Protocol):
    async def hit(self, key: str, window: float) -> tuple[int, float]:
        """Count one event in a fixed window; returns (count, seconds until the window resets)."""

    async def clear(self, key: str) -> None: ...


class WebSessionStore(Protocol):
    """Browser sign-in sessions of the relay's HTML pages, by the SHA-256 of the cookie value;
    ``owner`` is opaque here (``WebSessions`` keeps the user id and a password fingerprint)."""

    async def create(self, key: str, owner: str, ttl: float) -> None: ...
    async def owner(self, key: str) -> str | None: ...
    async def delete(self, key: str) -> None: ...


DeviceStatus = Literal["pending", "approved", "denied", "used"]
PollOutcome = Literal["unknown", "expired", "slow_down", "pending", "denied", "approved", "used"]


class DeviceGrant(msgspec.Struct, kw_only=True):
    """One RFC 8628 device authorization, from ``/auth/device/code`` until it is exchanged."""

    user_code: str  # normalised: upper case, no separator
    client_hint: str
    scope: str
    pair: bool
    expires_ms: int  # after this the code answers expired_token (the record outlives it a while)
    interval: int  # seconds the client must wait between polls (raised by slow_down)
    status: DeviceStatus = "pending"
    user_id: str = ""  # who approved or denied
    last_poll_ms: int = 0


class DeviceGrantStore(Protocol):
    """Device authorizations by the SHA-256 of the device code, found also by user code."""

    async def create(self, device_key: str, grant: DeviceGrant, ttl: float) -> bool:
        """Store a new grant; False (nothing stored) if its user code is in use."""

    async def by_user_code(self, user_code: str) -> tuple[str, DeviceGrant] | None: ...

    async def decide(self, device_key: str, user_id: str, approve: bool, now_ms: int) -> DeviceGrant | None:
        """Atomically approve or deny a pending, unexpired grant; None if it is not one (any more)."""

    async def poll(
        self, device_key: str, now_ms: int, slack_ms: int
    ) -> tuple[PollOutcome, DeviceGrant | None]:
        """Atomically: record the poll, answer ``slow_down`` (raising the interval by 5 s) when it
        comes less than ``interval`` (minus ``slack_ms``) after the previous one, and hand an
        approved grant out exactly once (it becomes ``used``)."""


Admission = Literal["go", "wait", "refuse"]


class Throttle(Protocol):
    """Failure counting for guessable secrets (passwords, refresh tokens), shared by every
    replica.  Each key has a failure count over a fixed window and a count of attempts in flight,
    so that parallel attempts cannot pass a limit before their failures are counted."""

    async def admit(
        self, keys: Sequence[str], limits: Sequence[int], *, hold: float
    ) -> tuple[Admission, float]:
        """Atomically, for each key with its limit: ``refuse`` (with the seconds until that key's
        window resets) if its failures reached the limit; else ``wait`` if failures plus attempts
        in flight did; else ``go``, and one more attempt is in flight on every key (forgotten
        after ``hold`` seconds if never released)."""

    async def release(self, keys: Sequence[str], *, failed: bool, window: float) -> None:
        """The attempt admitted on ``keys`` is over; count a failure on each if it failed."""

    async def failures(self, key: str) -> int: ...
    async def clear(self, key: str) -> None:
        """Forget the key's failures."""


class Bus(Protocol):
    """Cache invalidation events (``"user:<id>"``, ``"topic:<name>"``) between processes.
    ``connected`` is False while events may be missed; caches must not be trusted then."""

    @property
    def connected(self) -> bool: ...

    async def publish(self, event: str) -> None: ...
    def listen(self) -> AsyncIterator[str | None]:
        """Events as they come; yields None after a reconnect (caches must then be dropped)."""
        ...


class Backend(Protocol):
    @property
    def users(self) -> UserStore: ...
    @property
    def topics(self) -> TopicStore: ...
    @property
    def messages(self) -> MessageStore: ...
    @property
    def fanout(self) -> FanoutLog: ...
    @property
    def gateways(self) -> GatewayRegistry: ...
    @property
    def acks(self) -> AckStore: ...
    @property
    def counters(self) -> Counter: ...
    @property
    def sessions(self) -> SessionStore: ...
    @property
    def throttle(self) -> Throttle: ...
    @property
    def bus(self) -> Bus: ...
    @property
    def web_sessions(self) -> WebSessionStore: ...
    @property
    def device_grants(self) -> DeviceGrantStore: ...
    @property
    def identities(self) -> IdentityStore: ...
    @property
    def once(self) -> OnceStore: ...

    async def ping(self) -> None:
        """Raise ``Unavailable`` if storage cannot be reached."""

    async def close(self) -> None: ...
