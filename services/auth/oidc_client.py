"""Talking to one OpenID Connect provider: its discovery document and JWKS (fetched with a time
limit and cached), the authorization URL, the code exchange, and the ID token check (signature
by the provider's JWKS, ``iss``, ``aud``, ``exp``, ``nonce``).

A provider that is down, slow or answers nonsense is a ``BadGateway`` (502) naming it; a
refusal that follows from what the browser brought back (a bad code, a wrong nonce, a token that
fails its checks) is a ``BadRequest`` (400).  Transport-neutral: raises ``relaycore.errors``."""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt

from relaycore.config import OidcProvider
from relaycore.errors import BadGateway, BadRequest

# Asymmetric algorithms only: an HMAC "signature" keyed with the client secret, or none at all,
# is never accepted for an ID token.
_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
_JWKS_REFRESH_MIN = 10.0  # seconds between JWKS fetches caused by an unknown key id
_LEEWAY = 60  # seconds of clock skew tolerated on exp / iat
_BODY_MAX = 1024 * 1024


class ProviderClient:
    """One configured provider; ``http`` is shared by all providers of a service."""

    def __init__(
        self, provider: OidcProvider, http: httpx.AsyncClient, *, timeout: float, cache_ttl: float
    ) -> None:
        self.provider = provider
        self._http = http
        self._timeout = timeout
        self._cache_ttl = cache_ttl
        self._discovery: tuple[float, dict[str, Any]] | None = None
        self._jwks: tuple[float, jwt.PyJWKSet] | None = None
        self._lock = asyncio.Lock()

    # --- discovery and keys

    async def discovery(self) -> dict[str, Any]:
        """The provider's discovery document (cached for ``cache_ttl``)."""
        now = time.monotonic()
        if self._discovery is not None and now - self._discovery[0] < self._cache_ttl:
            return self._discovery[1]
        async with self._lock:
            if self._discovery is not None and now - self._discovery[0] < self._cache_ttl:
                return self._discovery[1]
            url = self.provider.issuer.rstrip("/") + "/.well-known/openid-configuration"
            doc = await self._get_json(url, "discovery document")
            if doc.get("issuer") != self.provider.issuer:
                raise self._fault(f"its discovery document names issuer {str(doc.get('issuer'))[:200]!r}")
            for field in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(doc.get(field), str) or not doc[field].startswith(("https://", "http://")):
                    raise self._fault(f"its discovery document has no usable {field}")
            self._discovery = (time.monotonic(), doc)
            return doc

    async def _keys(self, *, refresh: bool = False) -> jwt.PyJWKSet:
        now = time.monotonic()
        cached = self._jwks
        fresh = cached is not None and now - cached[0] < self._cache_ttl
        if cached is not None and fresh and (not refresh or now - cached[0] < _JWKS_REFRESH_MIN):
            return cached[1]
        doc = await self.discovery()
        raw = await self._get_json(doc["jwks_uri"], "JWKS")
        try:
            keys = jwt.PyJWKSet.from_dict(raw)
        except (jwt.PyJWKSetError, jwt.InvalidKeyError, KeyError, TypeError, ValueError) as exc:
            raise self._fault(f"its JWKS holds no usable key ({exc})") from None
        self._jwks = (time.monotonic(), keys)
        return keys

    # --- the flow

    async def authorization_url(self, *, redirect_uri: str, state: str, nonce: str, challenge: str) -> str:
        doc = await self.discovery()
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.provider.client_id,
                "redirect_uri": redirect_uri,
                "scope": " ".join(self.provider.scopes),
                "state": state,
                "nonce": nonce,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        endpoint: str = doc["authorization_endpoint"]
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"

    async def exchange(self, *, code: str, redirect_uri: str, verifier: str) -> str:
        """Trade the authorization code for tokens; returns the raw ID token."""
        doc = await self.discovery()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        auth: httpx.BasicAuth | None = None
        if self.provider.client_secret:
            auth = httpx.BasicAuth(self.provider.client_id, self.provider.client_secret)
        else:
            form["client_id"] = self.provider.client_id
        response = await self._request("POST", doc["token_endpoint"], "token endpoint", data=form, auth=auth)
        body = self._json(response, "token endpoint", allow_error=True)
        if response.status_code in (400, 401):
            error = str(body.get("error", "invalid_request"))[:100]
            if error in ("invalid_client", "unauthorized_client"):
                # the relay's own registration is wrong: the operator's problem, not the person's
                raise self._fault(
                    f"it refused the relay's client credentials ({error}): check client_id and client_secret"
                )
            raise BadRequest(
                f"The identity provider '{self.provider.label}' refused the sign-in code: {error}"
            )
        if response.status_code != 200:
            raise self._fault(f"its token endpoint answered {response.status_code}")
        id_token = body.get("id_token")
        if not isinstance(id_token, str):
            raise self._fault("its token endpoint returned no id_token")
        return id_token

    async def verify(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The ID token's claims, once its signature, issuer, audience, expiry and nonce check out."""
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.InvalidTokenError as exc:
            raise self._rejected(f"it is not a JWT ({exc})") from None
        alg = header.get("alg")
        if alg not in _ALGORITHMS:
            raise self._rejected(f"algorithm {str(alg)[:20]!r} is not accepted")
        key = await self._key_for(header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key,
                algorithms=[alg],
                audience=self.provider.client_id,
                issuer=self.provider.issuer,
                leeway=_LEEWAY,
                options={"require": ["iss", "sub", "aud", "exp", "iat"]},
            )
        except jwt.InvalidTokenError as exc:
            raise self._rejected(str(exc)) from None
        azp = claims.get("azp")
        if isinstance(claims.get("aud"), list) and len(claims["aud"]) > 1 and azp != self.provider.client_id:
            raise self._rejected("it was issued to another client (azp)")
        got = claims.get("nonce")
        if not isinstance(got, str) or not hmac.compare_digest(got.encode(), nonce.encode()):
            raise self._rejected("its nonce does not match this sign-in")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise self._rejected("it has no subject")
        return claims

    async def _key_for(self, kid: object) -> jwt.PyJWK:
        for refresh in (False, True):
            keys = await self._keys(refresh=refresh)
            if kid is None and len(keys.keys) == 1:
                return keys.keys[0]
            for key in keys.keys:
                if key.key_id == kid:
                    return key
        raise self._rejected("it is signed with a key the provider does not publish")

    # --- HTTP

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        response = await self._request("GET", url, what)
        if response.status_code != 200:
            raise self._fault(f"its {what} answered {response.status_code}")
        return self._json(response, what)

    async def _request(self, method: str, url: str, what: str, **kwargs: Any) -> httpx.Response:
        # httpx's timeouts bound each read; the overall deadline also bounds a provider that
        # trickles its answer a byte at a time.
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._http.request(method, url, timeout=self._timeout, **kwargs)
        except TimeoutError:
            raise self._fault(f"its {what} did not answer within {self._timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise self._fault(f"its {what} cannot be reached ({type(exc).__name__})") from None
        if len(response.content) > _BODY_MAX:
            raise self._fault(f"its {what} sent more than {_BODY_MAX} bytes")
        return response

    def _json(self, response: httpx.Response, what: str, *, allow_error: bool = False) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            if allow_error and response.status_code != 200:
                return {}
            raise self._fault(f"its {what} did not answer JSON") from None
        if not isinstance(body, dict):
            raise self._fault(f"its {what} did not answer a JSON object")
        return body

    def _fault(self, why: str) -> BadGateway:
        return BadGateway(f"The identity provider '{self.provider.label}' is not working: {why}")

    def _rejected(self, why: str) -> BadRequest:
        return BadRequest(f"The identity provider's ID token was rejected: {why}")
