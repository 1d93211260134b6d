"""Scenario 8: the reference's own ten scenarios (``bench.reference_scenarios``, reference
section 13), run as a separate load-generator process against a running deployment, for
continuity with the reference's published table.  Skipped when that module is absent."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.machine import LOADGEN_CORE, server_preexec
from bench.procs import REPO, repo_env
from bench.systems import Deployment

MODULE = "bench.reference_scenarios"


def available() -> bool:
    return importlib.util.find_spec(MODULE) is not None


async def run(dep: Deployment, tiny: bool = False, deadline: float = 120.0) -> dict[str, Any]:
    if not available():
        return {"skipped": f"{MODULE} not found"}
    with tempfile.TemporaryDirectory(prefix="bench-s8-") as tmp:
        out_path = Path(tmp) / "results.json"
        argv = [
            sys.executable, "-m", MODULE,
            "--base-url", f"http://{dep.host}:{dep.gateway_port}",
            "--username", dep.credentials[0], "--password", dep.credentials[1],
            "--deadline", str(deadline), "--json", str(out_path),
        ]  # fmt: skip
        if tiny:
            argv.append("--tiny")
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=str(REPO),
            env=repo_env({}),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=server_preexec(LOADGEN_CORE),
        )
        try:
            output, _ = await asyncio.wait_for(proc.communicate(), deadline * 12)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return {"error": "timed out"}
        results: Any = json.loads(out_path.read_text()) if out_path.exists() else None
        return {
            "returncode": proc.returncode,
            "results": results,
            "output_tail": output.decode(errors="replace")[-1500:] if proc.returncode else "",
        }
