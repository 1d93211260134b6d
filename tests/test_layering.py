"""The architecture as a test: which package may import which (ANCHORS.md "Which way the arrows point")."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("auth", "ingest", "gateway")
FRAMEWORK = ("starlette", "hypercorn", "uvicorn")
# Modules allowed to speak HTTP/WebSocket; everything else is core and framework-free.
TRANSPORT_MODULES = {
    "relaycore/web.py",
    "relaycore/adapters/starlette.py",
}
TRANSPORT_NAMES = ("app.py", "ws.py", "longpoll.py", "history.py", "stats.py")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _modules(base: Path) -> list[Path]:
    return sorted(p for p in base.rglob("*.py") if "__pycache__" not in p.parts)


def test_relaycore_imports_no_service() -> None:
    """relaycore is a library: it never imports a service or the composition root."""
    for path in _modules(ROOT / "libs" / "relaycore"):
        bad = _imports(path) & {*SERVICES, "pulsar_relay"}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_services_never_import_each_other() -> None:
    """A service imports relaycore and itself, never another service or the composition root."""
    for service in SERVICES:
        for path in _modules(ROOT / "services" / service):
            bad = _imports(path) & ({*SERVICES, "pulsar_relay"} - {service})
            assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_core_modules_do_not_import_the_web_framework() -> None:
    """Only transport modules (routes, ws, long-poll, app wiring, relaycore.web) import the framework."""
    candidates = [*_modules(ROOT / "libs" / "relaycore")]
    for service in SERVICES:
        candidates += _modules(ROOT / "services" / service)
    for path in candidates:
        rel = path.relative_to(ROOT / "libs") if "libs" in path.parts else path.relative_to(ROOT / "services")
        if str(rel) in TRANSPORT_MODULES or path.name in TRANSPORT_NAMES or path.name.startswith("routes"):
            continue
        bad = _imports(path) & set(FRAMEWORK)
        assert not bad, f"{rel} is core logic but imports {bad}"


SERVER_RUNNERS = {"uvicorn": "pulsar_relay/serve_uvicorn.py"}


def test_only_the_runner_modules_import_an_http_server() -> None:
    """The ASGI apps are server-agnostic: relaycore, the services and the rest of the composition
    root never import hypercorn or uvicorn; uvicorn is imported by its runner only."""
    paths = [*_modules(ROOT / "libs" / "relaycore"), *_modules(ROOT / "pulsar_relay")]
    for service in SERVICES:
        paths += _modules(ROOT / "services" / service)
    for path in paths:
        rel = str(path.relative_to(ROOT))
        allowed = {server for server, runner in SERVER_RUNNERS.items() if runner == rel}
        bad = _imports(path) & ({"hypercorn", *SERVER_RUNNERS} - allowed)
        assert not bad, f"{rel} imports {bad}"


def test_the_hub_does_not_import_the_writer() -> None:
    """The hub fans out to sinks and runs each dispatch in a scope it is handed: no WebSocket writer."""
    tree = ast.parse((ROOT / "services" / "gateway" / "hub.py").read_text())
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "gateway.writer" not in modules


def test_gateway_modules_form_no_import_cycle() -> None:
    """No gateway module imports, even for typing only, one that imports it back (node, session, poll)."""
    base = ROOT / "services" / "gateway"
    graph: dict[str, set[str]] = {}
    for path in _modules(base):
        tree = ast.parse(path.read_text())
        found = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        found |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        graph[path.stem] = {m.split(".")[1] for m in found if m.startswith("gateway.")}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        ahead = graph.get(start, set()) - seen
        return any(nxt == goal or reaches(nxt, goal, seen | {nxt}) for nxt in ahead)

    cyclic = sorted(m for m in graph if reaches(m, m, set()))
    assert not cyclic, f"gateway modules in an import cycle: {cyclic}"
