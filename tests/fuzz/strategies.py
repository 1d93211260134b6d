"""Hypothesis strategies for hostile input: any JSON value, bodies with the right field names and
the wrong values, bytes that are not UTF-8, nesting deeper than any decoder recurses, numbers too
large for any machine type, and the checks every answer must pass."""

from __future__ import annotations

import json
from typing import Any

import httpx
from hypothesis import strategies as st

from tests.support.serve import RelayProcess

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(["", "0-0", "1-1", "-1", "admin", "a" * 300, "\x00", "🙂", "../../etc", "{tag}"]),
)
JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=25,
)
TOPIC_LIKE = st.one_of(
    st.text(max_size=20), st.sampled_from(["jobs", "fuzz-seeded", "a-b_c", "ü", "x" * 256])
)


def encode(value: Any) -> bytes:
    return json.dumps(value).encode()


def nested(depth: int, kind: str) -> bytes:
    if kind == "list":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


DEEP = st.builds(nested, st.integers(min_value=50, max_value=20_000), st.sampled_from(["list", "object"]))
NOT_UTF8 = st.builds(
    lambda prefix, junk, suffix: prefix + junk + suffix,
    st.sampled_from([b'{"topic": "', b'{"username": "', b'{"topics": ["', b'{"payload": {"k": "', b""]),
    st.binary(min_size=1, max_size=8).map(lambda b: b"\xff" + b),
    st.sampled_from([b'"}', b'"]}', b'"}}', b""]),
)
HUGE_NUMBERS = st.builds(
    lambda field, digits: b'{"%s": 1%s}' % (field.encode(), b"0" * digits),
    st.sampled_from(["ttl", "timeout", "limit", "topics", "payload", "is_public"]),
    st.integers(min_value=20, max_value=5000),
)
RAW = st.binary(max_size=300)


def shaped(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[bytes]:
    """Objects with (some of) the expected field names, each holding a plausible or hostile value."""
    return st.fixed_dictionaries({}, optional={k: st.one_of(v, JSON) for k, v in fields.items()}).map(encode)


def bodies(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[bytes]:
    return st.one_of(shaped(fields), JSON.map(encode), DEEP, NOT_UTF8, HUGE_NUMBERS, RAW)


def check(r: httpx.Response) -> None:
    """Never a 5xx, never a traceback, and every refusal is a 4xx that says why."""
    where = f"{r.request.method} {r.request.url.path} -> {r.status_code}: {r.text[:300]}"
    assert r.status_code < 500, where
    assert b"Traceback" not in r.content and b'File "' not in r.content, where
    if r.status_code >= 400:
        detail = r.json()["detail"]
        assert detail, where
        if isinstance(detail, list):
            assert all(item.get("msg") and item.get("loc") for item in detail), where


class LogWatch:
    """Reads a relay process's log from where the previous check stopped."""

    def __init__(self, proc: RelayProcess) -> None:
        self.proc = proc
        self.offset = 0

    def new_text(self) -> str:
        assert self.proc.log_path is not None
        with open(self.proc.log_path, errors="replace") as f:
            f.seek(self.offset)
            text = f.read()
            self.offset = f.tell()
        return text

    def assert_no_crash(self) -> None:
        text = self.new_text()
        assert "Traceback" not in text, text[-4000:]
