"""Where ours spends its time: py-spy samples the service under test (under the main rounds'
server) while scenario 2 runs on ingest and scenarios 4 and 6 on the gateway; the collapsed stacks are
kept under the raw results directory and summarised as the functions with the most samples,
inclusive and on-CPU (self)."""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.scenarios import Params, fanout, longpoll, publishing
from bench.systems import deploy

CASES = [
    ("s2_ingest", "ingest", publishing.single_concurrent),
    ("s4_gateway", "gateway", fanout.run),
    ("s6_gateway", "gateway", longpoll.run),
]
_LINE = re.compile(r":\d+\)")
# Frames that only carry the process to the event loop; their inclusive share says nothing.
_BOOT = (
    "<frozen runpy>",
    "pulsar_relay/__main__.py",
    "pulsar_relay/cli.py",
    "pulsar_relay/server.py",
    "pulsar_relay/serve_uvicorn.py",
    "uvicorn/server.py",
    "click/",
    "asyncio/runners.py",
    "uvloop/__init__.py",
)
# Where a sample's own (self) time is spent, by the file of its innermost frame.
COMPONENTS = [
    ("event loop and socket I/O (uvloop, C)", ("Runner.run (", "uvloop/")),
    ("HTTP/WebSocket server (hypercorn, h11, wsproto)", ("hypercorn/", "h11/", "wsproto/")),
    ("server (uvicorn, httptools, websockets)", ("uvicorn/", "httptools/", "websockets/")),
    ("framework (starlette)", ("starlette/",)),
    ("Valkey driver (redis-py)", ("redis/",)),
    ("asyncio (tasks, locks, streams)", ("asyncio/",)),
    ("ours: gateway", ("gateway/",)),
    ("ours: ingest", ("ingest/",)),
    (
        "ours: relaycore",
        (
            "relaycore/",
            "store/",
            "web.py",
            "access.py",
            "tokens.py",
            "models.py",
            "bare_routes.py",
            "loophist.py",
        ),
    ),
    ("JWT and crypto", ("jwt/", "cryptography/")),
]


def component(frame: str) -> str:
    for name, markers in COMPONENTS:
        if any(m in frame for m in markers):
            return name
    return "other"


def _frame(raw: str) -> str:
    name = _LINE.sub(")", raw.strip())
    for marker in ("site-packages/", "/services/", "/libs/", "/lib/python3.11/"):
        if marker in name:
            head, _, tail = name.partition(" (")
            return f"{head} ({tail.split(marker, 1)[-1]}"
    return name


def summarize(collapsed: str, top: int = 25) -> dict[str, Any]:
    self_: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    parts: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_frame(f) for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        total += n
        self_[frames[-1]] += n
        parts[component(frames[-1])] += n
        for f in set(frames):
            if not any(b in f for b in _BOOT):
                incl[f] += n
    pct = 100.0 / total if total else 0.0
    return {
        "samples": total,
        "components": [(f, round(c * pct, 1)) for f, c in parts.most_common()],
        "self": [(f, round(c * pct, 1)) for f, c in self_.most_common(top)],
        "inclusive": [(f, round(c * pct, 1)) for f, c in incl.most_common(top * 2)],
    }


async def profile(
    valkey_url: str, params: Params, out_dir: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    # Next to this interpreter first: `make bench` runs the virtualenv's Python without activating it.
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        return {"skipped": {"top": "py-spy not installed (pip install py-spy)"}}
    out_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - before any load runs
    results: dict[str, Any] = {}
    for name, role, runner in CASES:
        log(f"profiling ours: {name}")
        dep = await deploy("ours", role, valkey_url)
        path = out_dir / f"profile-{name}.txt"
        proc = await asyncio.create_subprocess_exec(
            spy, "record", "--pid", str(dep.under_test.pid), "--format", "raw", "--rate", "250",
            "--nonblocking", "-o", str(path),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            await asyncio.sleep(0.5)
            await runner(dep, params.with_(fanout_fractions=(0.5,)))
        finally:
            proc.send_signal(signal.SIGINT)
            _, err = await proc.communicate()
            dep.stop()
        text = path.read_text() if path.exists() else ""
        summary = summarize(text)
        summary["file"] = str(path)
        if not text:
            summary["error"] = err.decode(errors="replace")[-500:]
        results[name] = {"top": summary}
    return results


def profiles_text(profiles: dict[str, Any]) -> str:
    lines: list[str] = []
    for name, entry in profiles.items():
        top = entry.get("top") if isinstance(entry, dict) else None
        if not isinstance(top, dict):
            lines += [f"### {name}", "", str(top), ""]
            continue
        lines += [
            f"### {name} ({top.get('samples', 0):,} samples of the busy process, idle time excluded)",
            "",
            "| where the process's own time goes | % of samples |",
            "|---|---:|",
            *(f"| {c} | {p} |" for c, p in top.get("components", [])),
            "",
            "| on CPU (self) | % | | inclusive | % |",
            "|---|---:|---|---|---:|",
        ]
        self_rows, incl_rows = top.get("self", [])[:15], top.get("inclusive", [])[:15]
        for i in range(max(len(self_rows), len(incl_rows))):
            s = self_rows[i] if i < len(self_rows) else ("", "")
            c = incl_rows[i] if i < len(incl_rows) else ("", "")
            lines.append(f"| `{s[0]}` | {s[1]} | | `{c[0]}` | {c[1]} |")
        lines.append("")
    return "\n".join(lines)
