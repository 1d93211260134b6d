"""bench.socket_memory: a small real run (relay in process, real Valkey and sockets)."""

from __future__ import annotations

from bench import socket_memory


async def test_a_small_run_attributes_the_heap_per_socket() -> None:
    """Twenty idle sockets add heap, part of it in the gateway's own WebSocket module, and the
    report shows it per socket."""
    result = await socket_memory.measure(20, 60)
    assert result["sockets"] == 20 and result["bytes_per_socket"] > 1024
    assert any(f == "services/gateway/ws.py" and size > 0 for f, size, _ in result["files"])
    assert "KiB of Python heap per socket" in socket_memory.report(result)
