"""Everything the auth routes work with, built once per app from the settings and the shared
context.  Wires; does not decide."""

from __future__ import annotations

from auth.device import DeviceFlow
from auth.federation import Federation
from auth.login import Login
from auth.overview import AdminViews
from auth.passwords import Passwords
from auth.ratelimit import LoginLimiter
from auth.rates import RateRing
from auth.sessions import Sessions
from auth.signing import Signer
from auth.topics import Topics
from auth.users import Users, ensure_user
from auth.websession import WebSessions
from relaycore.config import Settings
from relaycore.context import Context
from relaycore.keys import Keys


class AuthService:
    def __init__(self, settings: Settings, ctx: Context, signer: Signer) -> None:
        self.settings = settings
        self.ctx = ctx
        self.passwords = Passwords.from_settings(settings)
        self.signer = signer
        # sign-in sessions: refresh-token chains, and the access tokens minted from them
        self.sessions = Sessions(ctx.backend, signer, ctx.authorizer, settings)
        self.users = Users(ctx.backend, self.passwords, ctx.authorizer, self.sessions)
        self.topics = Topics(ctx.backend)
        self.login = Login(
            ctx.backend, self.passwords, self.sessions, LoginLimiter(ctx.backend.throttle, settings)
        )
        # the operator console's read-only views
        self.admin = AdminViews(ctx.backend, Keys(settings.key_prefix, settings.fanout_partitions))
        self.rates = RateRing(ctx.backend)
        # browser sign-in to the relay's pages, and the RFC 8628 device flow
        self.web = WebSessions(ctx.backend, settings.web_session_lifetime)
        self.device = DeviceFlow(ctx.backend, settings, self.sessions.issue)
        # sign-in through OpenID Connect providers, offered on the relay's pages
        self.federation = Federation(ctx.backend, settings)
        if settings.oidc_providers:
            self.web.providers = self.federation.links

    async def bootstrap_admin(self) -> None:
        """Create or update ``PULSAR_BOOTSTRAP_ADMIN_*`` (CONTRACT decision 14); a no-op when unset."""
        s = self.settings
        if not s.bootstrap_admin_username:
            return
        await ensure_user(
            self.ctx.backend,
            username=s.bootstrap_admin_username,
            password=s.bootstrap_admin_password,
            email=s.bootstrap_admin_email or None,
            permissions=["admin", "read", "write"],
            passwords=self.passwords,
        )
