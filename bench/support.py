"""Small pieces for the ingest micro-benchmark: a lean keep-alive HTTP/1.1 client (so the load
generator costs far less CPU than the server it measures), percentiles, the machine description,
and writing one section of docs/BENCHMARKS.md without touching the others."""

from __future__ import annotations

import asyncio
import os
import platform
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = REPO / "docs" / "BENCHMARKS.md"


class Connection:
    """One keep-alive connection, one request in flight; reads exactly Content-Length bytes and
    reconnects when the server ends the connection (hypercorn does after 1000 requests)."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int
    ) -> None:
        self._r, self._w, self._host, self._port = reader, writer, f"{host}:{port}", (host, port)
        self._closing = False

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, host, port)

    def build(self, path: str, body: bytes, headers: dict[str, str], method: str = "POST") -> bytes:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        return (
            f"{method} {path} HTTP/1.1\r\nHost: {self._host}\r\n{head}Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    async def send(self, request: bytes) -> tuple[int, bytes]:
        if self._closing:
            await self.close()
            self._r, self._w = await asyncio.open_connection(*self._port)
            self._closing = False
        self._w.write(request)
        head = await self._r.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
        if m is None:
            raise RuntimeError(f"response without Content-Length: {head[:200]!r}")
        self._closing = re.search(rb"(?i)\r\nconnection:\s*close", head) is not None
        return status, await self._r.readexactly(int(m.group(1)))

    async def close(self) -> None:
        self._w.close()
        try:
            await self._w.wait_closed()
        except OSError:
            pass


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a sorted, non-empty sequence."""
    rank = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return float(sorted_values[rank])


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    """One line: CPU model, cores, OS, Python and Valkey/Redis versions."""
    try:
        server = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True, check=False
        ).stdout.split()
        store = " ".join(server[:3]) if server else "unknown server"
    except OSError:
        store = "unknown server"
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, {store}"
    )


def write_section(title: str, text: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace (or append) the ``## {title}`` section of the benchmarks page, keeping the rest."""
    header = f"## {title}"
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    lines = old.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == header), None)
    body = [header, "", *text.strip("\n").splitlines(), ""]
    if start is None:
        new = [*lines, *([""] if lines and lines[-1] else []), *body]
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        new = [*lines[:start], *body, *lines[end:]]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(new).rstrip("\n") + "\n")
