"""Topic and user name rules, shared by every service.  Pure."""

from __future__ import annotations

import unicodedata

TOPIC_MAX = 255


def topic_problem(name: object) -> str | None:
    """Why ``name`` is not a valid topic name, or None.

    The reference's rule: 1..255 characters; letters and digits (Unicode-aware) plus ``_`` and
    ``-``; at least one letter or digit.  Applied on every path (create, publish, subscribe, poll),
    which also keeps ``{``, ``}`` and ``:`` out of Valkey key names.
    """
    if not isinstance(name, str):
        return "Topic name must be a string"
    if not 1 <= len(name) <= TOPIC_MAX:
        return f"Topic name must be 1 to {TOPIC_MAX} characters"
    core = name.replace("_", "").replace("-", "")
    if not core or not core.isalnum():
        return "Topic name must contain only letters, digits, '_' and '-', and at least one letter or digit"
    return None


USERNAME_MIN = 3
USERNAME_MAX = 50


def normal_username(name: str) -> str:
    """The stored form of a username: Unicode NFKC (so a full-width "root" is "root").  Logins
    look users up by this form too."""
    return unicodedata.normalize("NFKC", name)


def username_problem(name: str) -> str | None:
    """Why ``name`` (already ``normal_username``) cannot be registered, or None.  The rule:
    3 to 50 characters, no control or format characters (``\\x00``, ``\\n``, zero-width and bidi
    marks...), and no space at either end, so that no two users can look alike by such tricks."""
    if not USERNAME_MIN <= len(name) <= USERNAME_MAX:
        return f"Username must be {USERNAME_MIN} to {USERNAME_MAX} characters"
    if any(unicodedata.category(c).startswith("C") for c in name):
        return "Username must not contain control or invisible format characters"
    if name.strip() != name:
        return "Username must not start or end with a space"
    return None
