"""``PULSAR_*`` environment variables that are not settings.  A misspelled one
(``PULSAR_VALKEY_URI``) would otherwise be ignored and the relay would quietly use a default, so
start-up stops naming it and the closest real name.  Variables that share the prefix but belong to
other programs are allowed by name or by prefix: the built-in list below, plus the
``env_allow`` setting (``PULSAR_ENV_ALLOW``)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

# Meant for something else, never settings of the relay:
#   PULSAR_RELAY_*   pulsar-relay-client (PULSAR_RELAY_ALLOW_INSECURE, ...) and compose's PULSAR_RELAY_IMAGE
#   PULSAR_CONFIG_*  Pulsar itself (PULSAR_CONFIG_DIR, and PULSAR_CONFIG_<option> overrides of its
#                    app.yml); PULSAR_CONFIG_FILE is also the relay's own config file
#   the rest         variables deploy/compose.yaml reads when it is interpolated
BUILTIN_ALLOW = (
    "PULSAR_RELAY_*",
    "PULSAR_CONFIG_*",
    "PULSAR_HTTP_PORT",
    "PULSAR_HTTP_ADDR",
    "PULSAR_HTTPS_PORT",
    "PULSAR_TLS_CERT_DIR",
    "PULSAR_VALKEY_IMAGE",
    "PULSAR_HAPROXY_IMAGE",
)


def patterns(extra: str) -> list[str]:
    """The built-in allow-list plus ``extra`` (comma-separated names, ``PREFIX_*`` for a prefix)."""
    return [*BUILTIN_ALLOW, *(p.strip() for p in extra.split(",") if p.strip())]


def allowed(var: str, allow: Sequence[str]) -> bool:
    return any(var.startswith(p[:-1]) if p.endswith("*") else var == p for p in allow)


def closest(var: str, names: Iterable[str]) -> str | None:
    found = difflib.get_close_matches(var, list(names), n=1, cutoff=0.6)
    return found[0] if found else None


def explain(strays: Sequence[str], names: Iterable[str]) -> str:
    """One line per variable: what it is not, what it may have meant, how to keep it."""
    known = sorted(names)
    lines = []
    for var in strays:
        guess = closest(var, known)
        hint = f"did you mean {guess}?" if guess else "no setting has a similar name"
        lines.append(f"{var} is not a setting ({hint})")
    lines.append(
        "if a variable is meant for another program, list it in PULSAR_ENV_ALLOW (comma-separated;"
        " PREFIX_* for a prefix)"
    )
    return "; ".join(lines)
