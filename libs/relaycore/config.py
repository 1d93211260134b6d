"""Settings: defaults, then a YAML/TOML file, then ``PULSAR_*`` environment variables.

One frozen ``Settings`` struct is built at start-up and handed to every service.  An unknown key
in the file, or a value of the wrong type, stops start-up with a ``ConfigError`` that names it.
Durations accept seconds as numbers or the seed's ``"24h"``/``"30s"`` forms.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import socket
import tomllib
from collections import Counter
from collections.abc import Mapping
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec
import yaml

from relaycore import envnames, keyfiles, names

SECONDS = 1.0
MINUTES = 60 * SECONDS
HOURS = 60 * MINUTES
DAYS = 24 * HOURS
KiB = 1024
MiB = 1024 * KiB

ENV_PREFIX = "PULSAR_"
DEFAULT_FILES = ("config.yaml", "config.yml", "config.toml")
MIN_SECRET_LENGTH = 32

log = logging.getLogger(__name__)


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key and says how to fix it."""


class OidcProvider(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One OpenID Connect identity provider people may sign in through (docs/OPERATIONS.md)."""

    # Short name used in URLs (/auth/oidc/<name>/login): lower-case letters, digits, '-' and '_'.
    name: str
    # The issuer URL; its /.well-known/openid-configuration is fetched (https, or http on loopback).
    issuer: str
    client_id: str
    # Empty for a public client (PKCE alone); otherwise sent with HTTP Basic to the token endpoint.
    client_secret: str = ""
    scopes: list[str] = msgspec.field(default_factory=lambda: ["openid", "profile", "email"])
    # Shown on sign-in buttons ("Sign in with <display_name>"); the name when empty.
    display_name: str = ""
    # Whether a first sign-in by an identity linked to no user creates one, and with what permissions.
    create_users: bool = True
    default_permissions: list[Literal["admin", "read", "write"]] = msgspec.field(
        default_factory=lambda: ["read"]
    )

    @property
    def label(self) -> str:
        return self.display_name or self.name


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # --- server
    host: str = "127.0.0.1"
    port: int = 8080
    read_timeout: float = 30 * SECONDS
    write_timeout: float = 30 * SECONDS
    log_level: str = "INFO"
    log_json: bool = False
    # HTTP server behind `pulsar-relay serve`: "uvicorn" (the only one since hypercorn was dropped,
    # ARCHITECTURE.md "The HTTP server"); "" = the default.  `serve --server` wins over it.
    server: Literal["", "uvicorn"] = ""
    # /metrics: open on the service's port by default (counts only: no names, ids or payloads).
    # A token makes it answer only `Authorization: Bearer <token>`; a port moves it to a listener of
    # its own on `host` (and the service's port answers 404), for a network only Prometheus reaches.
    metrics_token: str = ""
    metrics_port: int = 0
    # Processes `pulsar-relay serve` runs on its one port (`--workers` wins): 1 = this process serves,
    # as always; N > 1 = a parent binds the port and keeps N workers serving it
    # (pulsar_relay/workers.py).  A gateway worker i is gateway `<gateway_id>-w<i>`, with its
    # metrics on metrics_port + i.
    workers: int = 1
    # Development mode: allows an unset or short JWT secret (a random one is generated per process).
    allow_insecure_defaults: bool = False

    # --- tokens
    jwt_secret_key: str = ""
    # HS256 (shared secret) or an asymmetric algorithm where only auth holds the private key.
    jwt_algorithm: Literal["HS256", "EdDSA", "ES256"] = "HS256"
    jwt_private_key_file: str = ""
    jwt_public_key_file: str = ""
    access_token_expire_seconds: int = 3600
    # Refresh tokens (docs/SETTINGS.md explains the defaults): a session ends when unused for the
    # idle lifetime, or at the absolute lifetime whatever its use.  A repeat of the token replaced
    # less than the grace ago is refused without ending the session (two handlers racing).
    refresh_token_idle_lifetime: float = 90 * DAYS
    refresh_token_absolute_lifetime: float = 365 * DAYS
    refresh_token_reuse_grace: float = 10 * SECONDS
    # A user's sessions beyond this end, least recently used first (password-mode clients start
    # one per login, about hourly, and never use its refresh token).
    max_sessions_per_user: int = 1000
    # argon2id cost for stored passwords; hashes made with other values are upgraded at login.
    password_hash_time_cost: int = 3
    password_hash_memory_kib: int = 64 * KiB

    # --- storage
    storage_backend: Literal["valkey", "memory"] = "valkey"
    valkey_url: str = ""
    valkey_host: str = "localhost"
    valkey_port: int = 6379
    valkey_password: str = ""
    valkey_db: int = 0
    valkey_use_tls: bool = False
    valkey_tls_ca_file: str = ""
    valkey_pool_size: int = 100
    valkey_timeout: float = 5 * SECONDS
    # Longest wait for any one Valkey reply: a stalled (not dead) server is answered with a 503
    # after this, not when it comes back.  Must exceed tail_block and publish_wait_timeout.
    valkey_command_timeout: float = 3 * SECONDS
    # /ready's own deadline for its Valkey check (a probe must answer quickly, 503 on a stall).
    ready_timeout: float = 1 * SECONDS
    # Valkey Cluster seeds ("host:port,host:port"); set, the relay uses the cluster client.  A
    # valkey+cluster://host:port[,host:port] URL in valkey_url does the same.
    valkey_cluster_nodes: str = ""
    # Keys live under this prefix; change it to share one Valkey between relays.
    key_prefix: str = "relay"
    persistent_tier_retention: float = 24 * HOURS
    max_messages_per_topic: int = 1_000_000
    # Fan-out log partitions; fixed for the life of a deployment (topics hash onto them).
    fanout_partitions: int = 16
    # The fan-out logs only serve live tailing and gateway restarts, so they stay short.
    fanout_log_maxlen: int = 100_000
    # Replicas that must have a publish before it is acknowledged (WAIT after the script); 0 = none.
    publish_wait_replicas: int = 0
    publish_wait_timeout: float = 1 * SECONDS

    # --- request limits
    max_body_bytes: int = 1 * MiB
    idempotency_ttl: float = 10 * MINUTES
    # Sign-in throttling counts FAILED attempts only (docs/OPERATIONS.md, "Login rate limits"):
    # per client address, per (username, address); a username's failures from everywhere only
    # slow its attempts down, so a stranger cannot lock its owner out.  0 attempts: all off.
    login_rate_limit_attempts: int = 10
    login_rate_limit_user_address: int = 5
    login_slowdown_after: int = 10
    login_slowdown_delay: float = 1 * SECONDS
    login_rate_limit_window: float = 60 * SECONDS
    # Failed refresh / revoke attempts (unknown, malformed or replaced tokens) per client address.
    refresh_rate_limit_failures: int = 30
    # Peers whose X-Forwarded-For is believed when rate limiting by client address
    # (comma-separated addresses or CIDR networks, "*" for any).
    forwarded_allow_ips: str = "127.0.0.1,::1"
    # How long a user/topic record may be served from a process-local cache when invalidation
    # messages are flowing; with the invalidation channel down, caches are bypassed.
    access_cache_ttl: float = 30 * SECONDS

    # --- the device flow (RFC 8628) and browser sign-in to the relay's pages
    # The relay's address as people reach it (https://relay.example.org), used for the links it
    # hands out (verification_uri); "" = from each request's Host header and scheme.
    public_url: str = ""
    device_code_lifetime: float = 10 * MINUTES  # how long a device/user code may be approved
    device_poll_interval: int = 5  # seconds a device must wait between token polls
    # User-code look-ups on the verification page, per client address and over all addresses.
    device_verify_rate_limit_attempts: int = 20
    device_verify_rate_limit_total: int = 600
    device_verify_rate_limit_window: float = 60 * SECONDS
    # Device codes issued per client address in that window (each is kept until it expires).
    device_code_rate_limit: int = 30
    web_session_lifetime: float = 8 * HOURS  # a browser sign-in (cookie) on the relay's pages

    # PULSAR_* variables that are meant for other programs (comma-separated, PREFIX_* for a
    # prefix), besides the built-in list of relaycore.envnames; any other PULSAR_* variable that
    # is not a setting stops start-up as a likely typo.
    env_allow: str = ""

    # --- bootstrap admin
    bootstrap_admin_username: str = ""
    bootstrap_admin_password: str = ""
    bootstrap_admin_email: str = ""

    # --- sign-in through OpenID Connect providers (a list; PULSAR_OIDC_PROVIDERS takes JSON)
    oidc_providers: list[OidcProvider] = msgspec.field(default_factory=list)
    # A provider's discovery document, JWKS and token endpoint must answer within this time.
    oidc_http_timeout: float = 5 * SECONDS
    # How long the discovery document and JWKS are reused before being fetched again.
    oidc_cache_ttl: float = 1 * HOURS
    # How long a started sign-in (its state, nonce and PKCE verifier) may take to come back.
    oidc_state_ttl: float = 10 * MINUTES
    # Sign-ins started (GET /auth/oidc/<name>/login) per client address per login_rate_limit_window;
    # each is stored until oidc_state_ttl.  0 = no limit.
    oidc_login_rate_limit: int = 30

    # --- gateway
    gateway_id: str = ""
    gateway_heartbeat_interval: float = 5 * SECONDS
    # A gateway silent for this long has its consumer groups removed by its peers.
    gateway_expiry: float = 60 * SECONDS
    tail_batch_size: int = 500
    # Bytes of messages one fan-out log read aims to bring back: the tailer lowers COUNT from the
    # sizes it sees (500 entries of 1 MiB were one 500 MB reply), down to one entry per partition.
    tail_read_max_bytes: int = 8 * MiB
    tail_block: float = 1 * SECONDS
    cache_messages_per_topic: int = 1000
    cache_max_topics: int = 10_000
    cache_max_age: float = 1 * HOURS
    # Bytes of messages one gateway's cache holds in all (the least recently used topics' oldest
    # messages go first): without it, 600 messages of 500 KB nobody reads cost 288 MiB per gateway.
    cache_max_bytes: int = 64 * MiB
    # Frames buffered for one WebSocket before it is closed as too slow.
    ws_send_queue: int = 4096
    # ... and their bytes: 4,096 frames of 500 KB would be 2 GB for one client that never reads.
    ws_send_queue_bytes: int = 16 * MiB
    # Topics one WebSocket may be subscribed to at once (ws_max_topics is per subscribe frame).
    ws_max_subscriptions: int = 1000
    ws_ping_interval: float = 20 * SECONDS
    ws_max_message_bytes: int = 64 * KiB
    ws_max_topics: int = 50
    poll_batch_window: float = 0.01 * SECONDS
    poll_max_messages_per_topic: int = 100
    poll_max_topics: int = 50
    # Bytes of messages in one history page or long-poll answer (at least one message is always
    # sent; has_more / next_cursor say there is more): 100 messages of 1 MiB were a 104 MB answer.
    answer_max_bytes: int = 4 * MiB
    # History pages and long-poll catch-ups one gateway reads and builds at once; more wait (up
    # to valkey_timeout, then 503).  With answer_max_bytes, this bounds their memory.
    answers_at_once: int = 16

    @property
    def effective_gateway_id(self) -> str:
        return self.gateway_id or socket.gethostname()


# Seed-style sections: file key "<section>.<key>" maps to a Settings field.
_SECTION_PREFIX = {"valkey": "valkey_", "storage": "", "server": "", "auth": "", "gateway": "", "ingest": ""}
_RENAMES = {
    "server.http_port": "port",
    "storage.backend": "storage_backend",
    "auth.secret_key": "jwt_secret_key",
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": MINUTES, "h": HOURS, "d": 24 * HOURS, None: 1.0}
_DURATION_FIELDS = {name for name, tp in Settings.__annotations__.items() if tp in ("float", float)}


def parse_duration(value: Any, key: str) -> float:
    """``30`` / ``"30"`` / ``"30s"`` / ``"15m"`` / ``"24h"`` / ``"1d"`` / ``"500ms"`` → seconds."""
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a duration such as 30s or 24h, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and (m := _DURATION.match(value)):
        return float(m.group(1)) * _UNIT[m.group(2)]
    raise ConfigError(f"{key}: expected a duration such as 30s or 24h, got {value!r}")


def _flatten(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            if key not in _SECTION_PREFIX:
                raise ConfigError(f"{source}: unknown section {key!r}")
            for sub, subvalue in value.items():
                dotted = f"{key}.{sub}"
                flat[_RENAMES.get(dotted, _SECTION_PREFIX[key] + sub)] = (subvalue, dotted)
        else:
            flat[str(key)] = (value, str(key))
    return flat


def read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text.decode()) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid {path.suffix[1:].upper()}: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings")
    return data


def _coerce(name: str, value: Any, shown: str) -> Any:
    if name in _DURATION_FIELDS:
        return parse_duration(value, shown)
    if name == "oidc_providers" and isinstance(value, str):
        # From the environment: one JSON list of provider objects.
        try:
            return json.loads(value) if value.strip() else []
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{shown} must be a JSON list of provider objects: {exc}") from None
    return value


def _from_env(environ: Mapping[str, str]) -> tuple[dict[str, tuple[Any, str]], list[str]]:
    """The settings among the ``PULSAR_*`` variables, and the other ``PULSAR_*`` variables."""
    fields = set(Settings.__struct_fields__)
    found: dict[str, tuple[Any, str]] = {}
    strays: list[str] = []
    for var, raw in environ.items():
        if not var.startswith(ENV_PREFIX) or var == "PULSAR_CONFIG_FILE":
            continue
        name = var[len(ENV_PREFIX) :].lower()
        if name not in fields:
            strays.append(var)
            continue
        found[name] = (raw, var)
    return found, sorted(strays)


def load(environ: Mapping[str, str] | None = None, config_file: str | Path | None = None) -> Settings:
    """Build the settings: defaults < file < environment.  Raises ``ConfigError`` on any problem."""
    env = os.environ if environ is None else environ
    path: Path | None = None
    if config_file is not None:
        path = Path(config_file)
    elif env.get("PULSAR_CONFIG_FILE"):
        path = Path(env["PULSAR_CONFIG_FILE"])
    else:
        path = next((Path(n) for n in DEFAULT_FILES if Path(n).is_file()), None)

    merged: dict[str, tuple[Any, str]] = {}
    if path is not None:
        merged.update(_flatten(read_file(path), str(path)))
    file_keys = set(merged)
    from_env, strays = _from_env(env)
    merged.update(from_env)

    fields = set(Settings.__struct_fields__)
    unknown = sorted(merged[k][1] for k in merged if k not in fields)
    if unknown:
        raise ConfigError(f"unknown setting(s) in {path}: {', '.join(unknown)}")
    allow = envnames.patterns(str(merged.get("env_allow", ("", ""))[0]))
    if strays := [v for v in strays if not envnames.allowed(v, allow)]:
        raise ConfigError(envnames.explain(strays, (_env(name) for name in fields)))

    values = {name: _coerce(name, value, shown) for name, (value, shown) in merged.items()}
    try:
        settings = msgspec.convert(values, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_explain(exc, merged, file_keys, path)) from exc
    _check(settings)
    return settings


def _explain(
    exc: msgspec.ValidationError, merged: dict[str, tuple[Any, str]], file_keys: set[str], path: Path | None
) -> str:
    text = str(exc)
    m = re.search(r"at `\$\.(\w+)", text)
    if m and m.group(1) in merged:
        value, shown = merged[m.group(1)]
        where = f"in {path}" if m.group(1) in file_keys and not shown.startswith(ENV_PREFIX) else "in env"
        if m.group(1) == "oidc_providers":  # never echo a client secret
            return f"invalid value for {shown} ({where}): {text.replace('$.oidc_providers', shown)}"
        return f"invalid value for {shown} ({where}): {value!r}: {text.split(' - at')[0]}"
    return f"invalid settings: {text}"


def _check(s: Settings) -> None:
    positive = (
        "port",
        "access_token_expire_seconds",
        "max_sessions_per_user",
        "max_messages_per_topic",
        "fanout_partitions",
        "fanout_log_maxlen",
        "max_body_bytes",
        "valkey_pool_size",
        "tail_batch_size",
        "tail_read_max_bytes",
        "cache_messages_per_topic",
        "cache_max_topics",
        "ws_send_queue",
        "ws_send_queue_bytes",
        "ws_max_subscriptions",
        "cache_max_bytes",
        "answer_max_bytes",
        "answers_at_once",
        "poll_max_messages_per_topic",
    )
    for name in positive:
        if getattr(s, name) <= 0:
            raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be greater than 0, got {getattr(s, name)}")
    if not 1 <= s.fanout_partitions <= 1024:
        raise ConfigError("PULSAR_FANOUT_PARTITIONS must be between 1 and 1024")
    _check_ranges(s)
    _check_auth(s)
    if s.jwt_algorithm == "HS256" and not s.allow_insecure_defaults:
        if not s.jwt_secret_key:
            raise ConfigError(
                "PULSAR_JWT_SECRET_KEY is not set. Set it to a random value of at least "
                f"{MIN_SECRET_LENGTH} characters (e.g. the output of "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`),"
                " or set PULSAR_ALLOW_INSECURE_DEFAULTS=1 for local development."
            )
        if problem := secret_weakness(s.jwt_secret_key):
            raise ConfigError(
                f"PULSAR_JWT_SECRET_KEY is too weak ({problem}): use at least {MIN_SECRET_LENGTH} random"
                " characters, e.g. the output of"
                " `python -c 'import secrets; print(secrets.token_urlsafe(48))'`,"
                " or set PULSAR_ALLOW_INSECURE_DEFAULTS=1 for local development."
            )


MAX_WORKERS = 64


def check_workers(s: Settings, port: int) -> None:
    """``ConfigError`` unless ``s.workers`` worker processes can serve ``port`` (the setting or
    ``serve --port``): 1 to 64; more than one needs shared storage and metrics ports of their own."""
    if not 1 <= s.workers <= MAX_WORKERS:
        raise ConfigError(f"PULSAR_WORKERS (--workers) must be 1 to {MAX_WORKERS}, got {s.workers}")
    if s.workers == 1:
        return
    if s.storage_backend == "memory":
        # Each worker process would hold its own users, tokens and messages.
        raise ConfigError(
            f"{s.workers} workers share their data through Valkey; storage_backend=memory serves"
            " with one worker only (PULSAR_WORKERS=1)"
        )
    if not s.metrics_port:
        # The service's port reaches whichever worker the kernel hands the connection to: a scrape
        # there would see one worker's counters, a different one each time.
        raise ConfigError(
            f"{s.workers} workers need PULSAR_METRICS_PORT: worker i serves its own metrics on"
            " PULSAR_METRICS_PORT + i (the service's port reaches a different worker each time)"
        )
    last = s.metrics_port + s.workers - 1
    if last > 65535 or s.metrics_port <= port <= last:
        raise ConfigError(
            f"{s.workers} workers serve metrics on ports {s.metrics_port}-{last}"
            f" (PULSAR_METRICS_PORT + i), which must be TCP ports other than the service's {port}"
        )


_KNOWN_WEAK = {"your-secure-secret-key", "change-me", "changeme", "secret"}
# A random secret of MIN_SECRET_LENGTH characters carries far more than this estimate (32 random
# hex digits: 89 bits at the least in 200,000 draws; token_urlsafe(48): ~350).  Repeats do not.
MIN_SECRET_DISTINCT = 8
MIN_SECRET_BITS = 80


def secret_weakness(secret: str) -> str | None:
    """Why ``secret`` is too weak to sign tokens with, or None.  Its strength is estimated from
    its own character frequencies (Shannon entropy per character times length) and from how
    often its 3-character pieces repeat: a cheap, conservative check that refuses repeated
    characters, short repeated words and known placeholders, not a proof of randomness."""
    if len(secret) < MIN_SECRET_LENGTH:
        return f"{len(secret)} characters, at least {MIN_SECRET_LENGTH} needed"
    if secret.lower() in _KNOWN_WEAK or secret.strip() != secret:
        return "a known placeholder or padded with spaces"
    counts = Counter(secret)
    if len(counts) < MIN_SECRET_DISTINCT:
        return f"only {len(counts)} different characters"
    n = len(secret)
    if len({secret[i : i + 3] for i in range(n - 2)}) * 2 < n - 2:
        return "mostly a short text repeated"
    bits = -sum(c * math.log2(c / n) for c in counts.values())
    if bits < MIN_SECRET_BITS:
        return f"about {bits:.0f} bits of entropy, at least {MIN_SECRET_BITS} needed"
    return None


_LOG_LEVELS = {"CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"}
_MIN_HASH_MEMORY_KIB = 32  # argon2's floor for 4 lanes


def _env(name: str) -> str:
    return f"{ENV_PREFIX}{name.upper()}"


def _check_ranges(s: Settings) -> None:
    for name in _DURATION_FIELDS:
        if getattr(s, name) < 0:
            raise ConfigError(f"{_env(name)} must not be negative, got {getattr(s, name)}")
    for name in (
        "login_rate_limit_attempts",
        "login_rate_limit_user_address",
        "login_slowdown_after",
        "refresh_rate_limit_failures",
        "valkey_db",
        "publish_wait_replicas",
    ):
        if getattr(s, name) < 0:
            raise ConfigError(f"{_env(name)} must not be negative, got {getattr(s, name)}")
    if s.refresh_token_idle_lifetime <= 0 or s.refresh_token_absolute_lifetime <= 0:
        raise ConfigError(
            "PULSAR_REFRESH_TOKEN_IDLE_LIFETIME and PULSAR_REFRESH_TOKEN_ABSOLUTE_LIFETIME must be"
            " greater than 0"
        )
    for name in (
        "device_verify_rate_limit_attempts",
        "device_verify_rate_limit_total",
        "device_code_rate_limit",
    ):
        if getattr(s, name) < 0:
            raise ConfigError(f"{_env(name)} must not be negative, got {getattr(s, name)}")
    for name in ("device_code_lifetime", "device_verify_rate_limit_window", "web_session_lifetime"):
        if getattr(s, name) <= 0:
            raise ConfigError(f"{_env(name)} must be greater than 0, got {getattr(s, name)}")
    if s.public_url and not re.fullmatch(r"https?://[^/?#\s]+/?", s.public_url):
        raise ConfigError(
            f"PULSAR_PUBLIC_URL must be http(s)://host[:port] with no path, got {s.public_url!r}"
        )
    if not 1 <= s.device_poll_interval <= 3600:
        raise ConfigError(
            f"PULSAR_DEVICE_POLL_INTERVAL must be 1 to 3600 seconds, got {s.device_poll_interval}"
        )
    if s.login_rate_limit_attempts and s.login_rate_limit_window <= 0:
        raise ConfigError("PULSAR_LOGIN_RATE_LIMIT_WINDOW must be greater than 0 when rate limiting is on")
    for name in ("port", "valkey_port"):
        if not 0 < getattr(s, name) < 65536:
            raise ConfigError(f"{_env(name)} must be a TCP port (1-65535), got {getattr(s, name)}")
    if not 0 <= s.metrics_port < 65536 or (s.metrics_port and s.metrics_port == s.port):
        raise ConfigError(
            f"PULSAR_METRICS_PORT must be 0 (metrics on the service's port) or another TCP port,"
            f" got {s.metrics_port}"
        )
    check_workers(s, s.port)
    if s.log_level.upper() not in _LOG_LEVELS:
        raise ConfigError(
            f"PULSAR_LOG_LEVEL must be one of {', '.join(sorted(_LOG_LEVELS))}, got {s.log_level!r}"
        )
    if s.password_hash_time_cost < 1:
        raise ConfigError(
            f"PULSAR_PASSWORD_HASH_TIME_COST must be at least 1, got {s.password_hash_time_cost}"
        )
    if s.password_hash_memory_kib < _MIN_HASH_MEMORY_KIB:
        raise ConfigError(
            f"PULSAR_PASSWORD_HASH_MEMORY_KIB must be at least {_MIN_HASH_MEMORY_KIB},"
            f" got {s.password_hash_memory_kib}"
        )
    try:
        trusted_networks(s.forwarded_allow_ips)
    except ValueError as exc:
        raise ConfigError(f"PULSAR_FORWARDED_ALLOW_IPS: {exc}") from exc
    _check_cluster(s)
    _check_oidc(s)


_PROVIDER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def _check_oidc(s: Settings) -> None:
    seen: set[str] = set()
    for i, p in enumerate(s.oidc_providers):
        where = f"PULSAR_OIDC_PROVIDERS[{i}]"
        if not _PROVIDER_NAME.match(p.name):
            raise ConfigError(
                f"{where}.name: {p.name!r} must be 1 to 32 lower-case letters, digits, '-' or '_'"
            )
        where = f"PULSAR_OIDC_PROVIDERS[{i}] ({p.name})"
        if p.name in seen:
            raise ConfigError(f"{where}.name: two providers are named {p.name!r}")
        seen.add(p.name)
        url = urlsplit(p.issuer)
        if url.scheme not in ("https", "http") or not url.hostname or url.query or url.fragment:
            raise ConfigError(f"{where}.issuer: {p.issuer!r} is not an http(s) URL without query")
        if url.scheme == "http" and url.hostname not in _LOOPBACK and not s.allow_insecure_defaults:
            raise ConfigError(
                f"{where}.issuer: {p.issuer!r} must use https (plain http only on loopback,"
                " or with PULSAR_ALLOW_INSECURE_DEFAULTS=1)"
            )
        if not p.client_id:
            raise ConfigError(f"{where}.client_id is required")
        if "openid" not in p.scopes:
            raise ConfigError(f"{where}.scopes must include 'openid', got {p.scopes!r}")
        if any(not scope or " " in scope for scope in p.scopes):
            raise ConfigError(f"{where}.scopes: each scope is one word, got {p.scopes!r}")
    if s.oidc_login_rate_limit < 0:
        raise ConfigError(f"PULSAR_OIDC_LOGIN_RATE_LIMIT must not be negative, got {s.oidc_login_rate_limit}")
    if s.oidc_providers and (s.oidc_http_timeout <= 0 or s.oidc_state_ttl <= 0):
        raise ConfigError("PULSAR_OIDC_HTTP_TIMEOUT and PULSAR_OIDC_STATE_TTL must be greater than 0")


def _check_cluster(s: Settings) -> None:
    try:
        url = split_cluster_url(s.valkey_url)
        if url is not None:
            parse_seeds(url[2])
        elif s.valkey_cluster_nodes:
            parse_seeds(s.valkey_cluster_nodes)
    except ValueError as exc:
        name = "PULSAR_VALKEY_URL" if "+cluster" in s.valkey_url else "PULSAR_VALKEY_CLUSTER_NODES"
        raise ConfigError(f"{name}: {exc}") from exc
    if url is None and s.valkey_cluster_nodes and s.valkey_url:
        raise ConfigError(
            "PULSAR_VALKEY_CLUSTER_NODES and a single-server PULSAR_VALKEY_URL are both set: unset one"
            " (or give the cluster as PULSAR_VALKEY_URL=valkey+cluster://host:port,host:port)"
        )
    if (url is not None or s.valkey_cluster_nodes) and s.valkey_db:
        raise ConfigError("PULSAR_VALKEY_DB must be 0 with a Valkey Cluster (a cluster has one database)")
    if s.valkey_command_timeout <= 0:
        raise ConfigError(
            f"PULSAR_VALKEY_COMMAND_TIMEOUT must be greater than 0, got {s.valkey_command_timeout}"
        )
    for name in ("tail_block", "publish_wait_timeout"):
        if name == "publish_wait_timeout" and not s.publish_wait_replicas:
            continue  # no WAIT is sent
        if getattr(s, name) >= s.valkey_command_timeout:
            raise ConfigError(
                f"{_env(name)} ({getattr(s, name)}s) must be shorter than PULSAR_VALKEY_COMMAND_TIMEOUT"
                f" ({s.valkey_command_timeout}s): a blocking command waits that long for its reply"
            )
    if s.publish_wait_replicas and s.publish_wait_timeout <= 0:
        raise ConfigError(
            "PULSAR_PUBLISH_WAIT_TIMEOUT must be greater than 0 when publish_wait_replicas is set"
        )


# URL schemes that select cluster mode, and whether they use TLS.
CLUSTER_SCHEMES = {
    "valkey+cluster": False,
    "redis+cluster": False,
    "valkeys+cluster": True,
    "rediss+cluster": True,
}


def split_cluster_url(url: str) -> tuple[str, str, str] | None:
    """``valkey+cluster://[user:password@]host:port[,host:port][/0]`` → (scheme, userinfo, hosts);
    None for any other URL; ``ValueError`` for an unknown ``…+cluster`` scheme."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or not scheme.endswith("+cluster"):
        return None
    if scheme not in CLUSTER_SCHEMES:
        raise ValueError(f"unknown cluster scheme {scheme!r} (use valkey+cluster:// or valkeys+cluster://)")
    userinfo, _, hosts = rest.split("?", 1)[0].rpartition("@")
    return scheme, userinfo, hosts.split("/", 1)[0]


def parse_seeds(spec: str) -> list[tuple[str, int]]:
    """``"host:port,host:port"`` → [(host, port)] (port 6379 when left out); ``ValueError`` names a
    bad entry."""
    seeds: list[tuple[str, int]] = []
    for entry in (e.strip() for e in spec.split(",")):
        if not entry:
            continue
        host, sep, port = entry.rpartition(":")
        if not sep:
            host, port = entry, "6379"
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{entry!r} is not host:port")
        seeds.append((host, int(port)))
    if not seeds:
        raise ValueError("no host:port given")
    return seeds


def _check_auth(s: Settings) -> None:
    if s.jwt_algorithm != "HS256" and (
        bad := keyfiles.problem(s.jwt_algorithm, s.jwt_public_key_file, s.jwt_private_key_file)
    ):
        raise ConfigError(bad)
    if s.valkey_tls_ca_file and not os.access(s.valkey_tls_ca_file, os.R_OK):
        why = "no such file" if not os.path.exists(s.valkey_tls_ca_file) else "not readable"
        raise ConfigError(f"PULSAR_VALKEY_TLS_CA_FILE: cannot read {s.valkey_tls_ca_file} ({why})")
    user, password = s.bootstrap_admin_username, s.bootstrap_admin_password
    if bool(user) != bool(password):
        raise ConfigError(
            "PULSAR_BOOTSTRAP_ADMIN_USERNAME and PULSAR_BOOTSTRAP_ADMIN_PASSWORD must be set together"
        )
    if user and (problem := names.username_problem(names.normal_username(user))):
        raise ConfigError(f"PULSAR_BOOTSTRAP_ADMIN_USERNAME: {problem}")
    if password and not 8 <= len(password) <= 1024:
        raise ConfigError("PULSAR_BOOTSTRAP_ADMIN_PASSWORD must be 8 to 1024 characters")


def trusted_networks(spec: str) -> list[IPv4Network | IPv6Network] | None:
    """``forwarded_allow_ips`` parsed: None means "trust every peer"; ``ValueError`` names a bad entry."""
    entries = [e.strip() for e in spec.split(",") if e.strip()]
    if "*" in entries:
        return None
    networks: list[IPv4Network | IPv6Network] = []
    for entry in entries:
        try:
            networks.append(ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or network") from None
    return networks
