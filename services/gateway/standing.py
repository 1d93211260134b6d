"""Whether a user may still be handed what a long-poll collected: their record and their sign-in
session as they stand now, asked of the authorizer.

Its caches answer without a storage read while the invalidation channel is up: every change to a
user and every ending of a session sends an event that clears them, and a session's entry lasts
no longer than the session has left, so one that ends by expiry (the ending without an event) is
read again when it ends.  A storage read per answer was about a quarter of a woken poll's latency
(docs/BENCHMARKS.md, "Long-poll answering at once").
"""

from __future__ import annotations

from relaycore.access import Authorizer
from relaycore.errors import Forbidden, Unauthenticated


async def check(authorizer: Authorizer, user_id: str, sign_in: str) -> None:
    """``Unauthenticated`` or ``Forbidden`` (the reference's texts) if the user is gone,
    inactive or without ``read``, or the token's sign-in session ("": none) has ended."""
    user = await authorizer.user(user_id)
    if user is None:
        raise Unauthenticated("User not found")
    if not user.is_active:
        raise Forbidden("User is inactive")
    if not user.has("read"):
        raise Forbidden("Permission 'read' required")
    if sign_in and not await authorizer.session_alive(sign_in):  # after the user, as everywhere
        raise Unauthenticated("Token has been revoked")
