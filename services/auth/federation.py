"""Sign-in through OpenID Connect providers, and the federated identities it relies on.

``begin`` starts an authorization code flow with PKCE (S256), ``state`` and ``nonce``, all kept
server-side as one record that can be taken once within ``oidc_state_ttl``, bound to the browser
that started it (a random cookie, of which the record keeps a hash).  ``finish`` takes that
record back for the callback, trades the code for an ID token, checks it, and maps the identity
``(issuer, sub)`` to a relay user:

- linked already: that user (it must be active);
- not linked, the provider may create users: a new user named by ``preferred_username`` (else the
  e-mail address), with the provider's ``default_permissions``; a name that an existing account
  holds is refused (409), never merged: an administrator links the identity to that account;
- not linked, the provider may not create users: refused (403) until an administrator links it.

Transport-neutral: raises ``relaycore.errors``."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import math
import secrets
import uuid
from collections.abc import Iterable
from typing import Any

import httpx
import msgspec

from auth.oidc_client import ProviderClient
from auth.users import canonical_permissions
from relaycore import metrics, names
from relaycore.config import OidcProvider, Settings
from relaycore.errors import BadRequest, Conflict, Forbidden, NotFound, RateLimited, Unavailable
from relaycore.models import User, iso_z, utcnow
from relaycore.store.base import Backend

log = logging.getLogger(__name__)

_PURPOSE = "oidc"
_STATE_MAX = 128
_CODE_MAX = 2048
_SUBJECT_MAX = 255  # OIDC Core: sub is at most 255 ASCII characters


class PendingSignIn(msgspec.Struct, frozen=True, kw_only=True):
    """What the relay remembers between the redirect to a provider and its callback."""

    provider: str
    nonce: str
    verifier: str
    redirect_uri: str
    next: str
    browser: str  # SHA-256 of the browser binding cookie the sign-in was started with


class Identity(msgspec.Struct, frozen=True, kw_only=True):
    """A federated identity as the admin API shows it."""

    provider: str | None  # the configured provider with this issuer, if any still is
    issuer: str
    subject: str


class SignedIn(msgspec.Struct, frozen=True, kw_only=True):
    user: User
    next: str
    created: bool


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class Federation:
    def __init__(self, backend: Backend, settings: Settings) -> None:
        self._backend = backend
        self._settings = settings
        self._http = httpx.AsyncClient(follow_redirects=False, headers={"Accept": "application/json"})
        self._clients = {
            p.name: ProviderClient(
                p, self._http, timeout=settings.oidc_http_timeout, cache_ttl=settings.oidc_cache_ttl
            )
            for p in settings.oidc_providers
        }

    @property
    def providers(self) -> list[OidcProvider]:
        return [c.provider for c in self._clients.values()]

    async def links(self) -> list[tuple[str, str]]:
        """(display name, login URL without ``next``) of every provider (``WebSessions.providers``)."""
        return [(p.label, f"/auth/oidc/{p.name}/login") for p in self.providers]

    def client(self, name: str) -> ProviderClient:
        found = self._clients.get(name)
        if found is None:
            raise NotFound(f"Unknown identity provider '{name[:64]}'")
        return found

    def _by_issuer(self, issuer: str) -> OidcProvider | None:
        return next((p for p in self.providers if p.issuer == issuer), None)

    async def close(self) -> None:
        await self._http.aclose()

    # --- the sign-in

    async def begin(self, name: str, *, redirect_uri: str, next_path: str, address: str, browser: str) -> str:
        """The provider's authorization URL for a new sign-in that will return to ``next_path``.
        ``browser`` is a random value the starting browser keeps in a cookie: only a callback from
        that browser completes the sign-in (so nobody can sign a victim in as themselves by
        sending them a callback URL).  ``RateLimited`` past ``oidc_login_rate_limit`` sign-ins
        from ``address`` per window."""
        client = self.client(name)
        limit, window = self._settings.oidc_login_rate_limit, self._settings.login_rate_limit_window
        if limit and window > 0:
            count, reset = await self._backend.counters.hit(f"oidc-login:{address}", window)
            if count > limit:
                retry = max(1, math.ceil(reset))
                raise RateLimited(f"Too many sign-ins started, retry in {retry} seconds", retry)
        state = secrets.token_urlsafe(32)
        pending = PendingSignIn(
            provider=name,
            nonce=secrets.token_urlsafe(32),
            verifier=secrets.token_urlsafe(48),
            redirect_uri=redirect_uri,
            next=next_path,
            browser=_digest(browser),
        )
        url = await client.authorization_url(
            redirect_uri=redirect_uri,
            state=state,
            nonce=pending.nonce,
            challenge=_challenge(pending.verifier),
        )
        await self._backend.once.put(
            _PURPOSE, state, msgspec.json.encode(pending), self._settings.oidc_state_ttl
        )
        return url

    async def finish(self, name: str, params: dict[str, str], browser: str | None) -> SignedIn:
        """The callback: ``params`` are its query parameters, ``browser`` the binding cookie."""
        client = self.client(name)
        state = params.get("state", "")
        if not state or len(state) > _STATE_MAX or not state.isascii():
            raise BadRequest("The sign-in callback has no valid 'state'; start the sign-in again")
        raw = await self._backend.once.take(_PURPOSE, state)  # single use, whatever happens next
        if raw is None:
            raise BadRequest("Unknown, expired or already used sign-in 'state'; start the sign-in again")
        try:
            pending = msgspec.json.decode(raw, type=PendingSignIn)
        except msgspec.ValidationError:  # a record of an older release
            raise BadRequest("This sign-in cannot be completed; start the sign-in again") from None
        if browser is None or not hmac.compare_digest(_digest(browser), pending.browser):
            raise BadRequest(
                "This sign-in was started in another browser (or its cookie was lost); start the sign-in"
                " again here"
            )
        if pending.provider != name:
            raise BadRequest("This sign-in was started with another identity provider")
        if "error" in params:
            error = params["error"][:100]
            description = params.get("error_description", "")[:300]
            raise Forbidden(
                f"The identity provider '{client.provider.label}' did not sign you in: {error}"
                + (f" ({description})" if description else "")
            )
        issuer = params.get("iss")
        if issuer is not None and issuer != client.provider.issuer:
            raise BadRequest("The sign-in came back from another issuer than it was sent to")
        code = params.get("code", "")
        if not code or len(code) > _CODE_MAX:
            raise BadRequest("The sign-in callback has no valid 'code'")
        id_token = await client.exchange(
            code=code, redirect_uri=pending.redirect_uri, verifier=pending.verifier
        )
        claims = await client.verify(id_token, pending.nonce)
        user, created = await self._user_for(client.provider, claims)
        metrics.login_attempts.labels("oidc").inc()
        return SignedIn(user=user, next=pending.next, created=created)

    async def _user_for(self, provider: OidcProvider, claims: dict[str, Any]) -> tuple[User, bool]:
        subject = str(claims["sub"])
        if len(subject) > _SUBJECT_MAX:
            raise BadRequest("The ID token's subject is longer than 255 characters")
        ids = self._backend.identities
        for _ in range(20):
            user_id = await ids.find(provider.issuer, subject)
            if user_id is None:
                break
            user = await self._backend.users.get(user_id)
            if user is not None:
                if not user.is_active:
                    raise Forbidden("User account is inactive")
                return user, False
            # Linked to a user not (or no longer) there: a deleted user's leftover, or a first
            # sign-in of the same identity creating it right now.
            await asyncio.sleep(0.05)
        if user_id is not None:
            await ids.unlink(provider.issuer, subject, user_id)
        if not provider.create_users:
            raise Forbidden(
                f"No relay account is linked to this {provider.label} identity (subject '{subject}');"
                " an administrator must link it to an account first"
            )
        username = _username(claims)
        if username is None:
            raise Forbidden(
                f"This {provider.label} identity offers no usable username (preferred_username or email);"
                f" an administrator must create an account and link subject '{subject}' to it"
            )
        email = claims.get("email") if isinstance(claims.get("email"), str) else None
        user = User(
            user_id=str(uuid.uuid4()),
            username=username,
            email=email if email and len(email) <= 254 else None,
            hashed_password="",  # no password: this user signs in through the provider only
            permissions=canonical_permissions(provider.default_permissions),
            is_active=True,
            created_at=iso_z(utcnow()),
        )
        owner = await ids.link(provider.issuer, subject, user.user_id)
        if owner != user.user_id:  # a concurrent first sign-in of the same identity won
            existing = await self._backend.users.get(owner)
            if existing is None:
                raise Unavailable("This identity is being set up by another sign-in; try again")
            return existing, False
        try:
            await self._backend.users.create(user)
        except Conflict:
            await ids.unlink(provider.issuer, subject, user.user_id)
            raise Conflict(
                f"A relay account named '{username}' already exists and is not linked to this"
                f" {provider.label} identity; nothing was changed. An administrator must link"
                f" subject '{subject}' to that account (POST /auth/users/{{user_id}}/identities)"
                " if it is the same person"
            ) from None
        except BaseException:
            await ids.unlink(provider.issuer, subject, user.user_id)
            raise
        log.info("created user %s (%s) at its first %s sign-in", user.username, user.user_id, provider.name)
        return user, True

    # --- administration

    async def identities(self, user_id: str) -> list[Identity]:
        return [
            Identity(provider=(p.name if (p := self._by_issuer(iss)) else None), issuer=iss, subject=sub)
            for iss, sub in await self._backend.identities.of_user(user_id)
        ]

    async def link(self, user_id: str, provider_name: str, subject: str) -> Identity:
        """Link an identity of a configured provider to an existing user; 409 if it is linked to
        someone else."""
        provider = self._clients.get(provider_name)
        if provider is None:
            raise BadRequest(f"Unknown identity provider '{provider_name[:64]}'")
        _check_subject(subject)
        if await self._backend.users.get(user_id) is None:
            raise NotFound(f"User with ID '{user_id}' not found")
        issuer = provider.provider.issuer
        owner = await self._backend.identities.link(issuer, subject, user_id)
        if owner != user_id:
            if await self._backend.users.get(owner) is not None:
                raise Conflict(
                    f"This {provider.provider.label} identity is linked to another user ({owner});"
                    " unlink it there first"
                )
            # a deleted user's leftover: take it over
            await self._backend.identities.unlink(issuer, subject, owner)
            if await self._backend.identities.link(issuer, subject, user_id) != user_id:
                raise Conflict("This identity was linked by someone else meanwhile; try again")
        return Identity(provider=provider_name, issuer=issuer, subject=subject)

    async def unlink(self, user_id: str, provider_name: str, subject: str) -> None:
        provider = self._clients.get(provider_name)
        issuer = provider.provider.issuer if provider else None
        if issuer is None:
            # a provider no longer configured: its links can still be removed by issuer
            matches = [i for i, s in await self._backend.identities.of_user(user_id) if s == subject]
            issuer = matches[0] if len(matches) == 1 else None
        if issuer is None or not await self._backend.identities.unlink(issuer, subject, user_id):
            raise NotFound(
                f"User '{user_id}' has no identity '{subject[:255]}' of provider '{provider_name[:64]}'"
            )


def _check_subject(subject: str) -> None:
    if not subject or len(subject) > _SUBJECT_MAX or any(ord(ch) < 0x20 for ch in subject):
        raise BadRequest("subject must be 1 to 255 characters without control characters")


def _username(claims: dict[str, Any]) -> str | None:
    """The first of ``preferred_username``, ``email`` that passes the relay's username rules."""
    for raw in _candidates(claims):
        name = names.normal_username(raw)
        if names.username_problem(name) is None:
            return name
    return None


def _candidates(claims: dict[str, Any]) -> Iterable[str]:
    for key in ("preferred_username", "email"):
        value = claims.get(key)
        if isinstance(value, str) and value:
            yield value
