"""Which service owns which public path (CONTRACT.md "One origin, three services").

The all-in-one app dispatches with this table; ``deploy/haproxy.cfg`` encodes the same rules for
the split stack, and ``tests/deploy/test_routing_table.py`` checks that the two agree.
"""

from __future__ import annotations

import re
from typing import Literal

Service = Literal["auth", "ingest", "gateway"]

_TOPIC_MESSAGES = re.compile(r"^/api/v1/topics/[^/]+/messages/?$")
_INGEST = {"/api/v1/messages", "/api/v1/messages/bulk"}


def service_for(method: str, path: str) -> Service:
    if path in _INGEST:
        return "ingest"
    if path == "/ws" or path == "/messages/poll" or path.startswith("/messages/poll/"):
        return "gateway"
    if method in ("GET", "HEAD") and _TOPIC_MESSAGES.match(path):
        return "gateway"
    return "auth"
