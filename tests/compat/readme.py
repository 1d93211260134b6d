"""The seed README's runnable examples: its curl commands and its two JavaScript clients, taken from
``../shared/seed/README.md`` when it is there, else from the committed copy ``seed_examples.md``
(kept identical by ``test_readme_copy.py``).  Only the host/port and the tokens are substituted."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SEED_README = REPO.parent / "shared" / "seed" / "README.md"
COPY = Path(__file__).with_name("seed_examples.md")

README_ORIGIN = "http://localhost:8080"
README_TOKEN_JS = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9..."
README_TOKEN_PLACEHOLDERS = ("YOUR_ADMIN_TOKEN", "YOUR_ACCESS_TOKEN")

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
_METHOD = re.compile(r"-X\s+(\w+)")
_URL = re.compile(r"http://localhost:8080(\S*)")


@dataclass(frozen=True)
class Block:
    lang: str
    text: str


@dataclass(frozen=True)
class CurlCommand:
    text: str

    @property
    def method(self) -> str:
        m = _METHOD.search(self.text)
        return m.group(1) if m else "GET"

    @property
    def path(self) -> str:
        m = _URL.search(self.text)
        assert m, self.text
        return m.group(1)

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    def for_relay(self, base_url: str, token: str = "") -> str:
        text = self.text.replace(README_ORIGIN, base_url)
        for placeholder in README_TOKEN_PLACEHOLDERS:
            text = text.replace(placeholder, token)
        return text


def blocks(markdown: str) -> list[Block]:
    return [Block(m.group(1), m.group(2)) for m in _FENCE.finditer(markdown)]


def example_blocks(markdown: str) -> list[Block]:
    """The fenced blocks a user would run against a relay: bash blocks with curl, and JavaScript."""
    return [b for b in blocks(markdown) if b.lang == "javascript" or (b.lang == "bash" and "curl " in b.text)]


def render(example: list[Block]) -> str:
    return "".join(f"```{b.lang}\n{b.text}```\n\n" for b in example)


def source() -> str:
    """The README text when the shared seed is beside the repo; the committed copy otherwise."""
    if SEED_README.is_file():
        return render(example_blocks(SEED_README.read_text()))
    return COPY.read_text()


def curl_commands(markdown: str | None = None) -> list[CurlCommand]:
    """Each README bash block that runs curl, whole: comments, continuations and multi-line quoted
    bodies exactly as printed (every such block holds one curl command)."""
    out: list[CurlCommand] = []
    for block in example_blocks(source() if markdown is None else markdown):
        if block.lang != "bash":
            continue
        calls = [line for line in block.text.splitlines() if line.lstrip().startswith("curl ")]
        assert len(calls) == 1, f"expected one curl command per block: {block.text}"
        out.append(CurlCommand(block.text))
    return out


def javascript_examples(markdown: str | None = None) -> list[str]:
    """The WebSocket client, then the long-polling client, as the README prints them."""
    return [
        b.text for b in example_blocks(source() if markdown is None else markdown) if b.lang == "javascript"
    ]


def js_for_relay(code: str, port: int, token: str) -> str:
    assert README_TOKEN_JS in code and "localhost:8080" in code
    return code.replace(README_TOKEN_JS, token).replace("localhost:8080", f"127.0.0.1:{port}")
