"""Topic and user name rules, shared by every service.  Pure."""

from __future__ import annotations

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
