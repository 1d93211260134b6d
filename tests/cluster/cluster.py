"""A real Valkey/Redis Cluster on this machine: ``masters`` primaries with ``replicas`` replicas each,
one ``valkey-server``/``redis-server`` process per node on a free port, AOF on, each in its own
temporary directory, joined with ``redis-cli --cluster create`` (or ``valkey-cli``).  Used by
``tests/cluster`` and ``bench/scaling.py``."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.support.valkey import free_port, server_args, server_binary


def cli_binary() -> str | None:
    return shutil.which("valkey-cli") or shutil.which("redis-cli")


@dataclass
class Node:
    port: int
    bus: int  # the cluster bus port, chosen too (the default port+10000 may be taken or > 65535)
    dir: str
    proc: subprocess.Popen[bytes] | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5, socket_timeout=5)


def _slot_range(text: str) -> tuple[int, int]:
    """``"0-5460"`` or ``"42"`` from a CLUSTER NODES row (``[slot->-id]`` migration marks are skipped)."""
    first, _, last = text.partition("-")
    return int(first), int(last or first)


class ValkeyCluster:
    """Start with ``start()``; ``kill(port)`` SIGKILLs one node; ``cleanup()`` stops all and removes
    the directories.  ``node_timeout_ms`` is how soon a dead primary is failed over."""

    def __init__(
        self,
        *,
        masters: int = 3,
        replicas: int = 0,
        node_timeout_ms: int = 1000,
        appendfsync: str = "everysec",
    ) -> None:
        binary, cli = server_binary(), cli_binary()
        if binary is None or cli is None:
            raise RuntimeError("a cluster needs valkey-server/redis-server and valkey-cli/redis-cli on PATH")
        self.binary, self.cli = binary, cli
        self.masters, self.replicas = masters, replicas
        self.node_timeout_ms = node_timeout_ms
        self.appendfsync = appendfsync
        self.root = tempfile.mkdtemp(prefix="relay-cluster-")
        self.nodes: list[Node] = []

    # --- addresses
    @property
    def seeds(self) -> str:
        """``host:port`` of every primary as started (the seed list a relay is given)."""
        return ",".join(f"127.0.0.1:{n.port}" for n in self.nodes[: self.masters])

    @property
    def url(self) -> str:
        return f"valkey+cluster://{self.seeds}"

    # --- lifecycle
    def start(self, timeout: float = 30) -> ValkeyCluster:
        try:
            for i in range(self.masters * (1 + self.replicas)):
                node = Node(port=free_port(), bus=free_port(), dir=os.path.join(self.root, f"node{i}"))
                os.makedirs(node.dir)
                self.nodes.append(node)
                self._spawn(node)
            for node in self.nodes:
                self._wait_ping(node, timeout)
            addrs = [f"127.0.0.1:{n.port}" for n in self.nodes]
            create = [self.cli, "--cluster", "create", *addrs, "--cluster-replicas", str(self.replicas)]
            done = subprocess.run(
                [*create, "--cluster-yes"], capture_output=True, timeout=timeout, check=False, text=True
            )
            if done.returncode != 0:
                raise RuntimeError(f"cluster create failed:\n{done.stdout}\n{done.stderr}")
            self.wait_healthy(timeout)
        except BaseException:
            self.cleanup()
            raise
        return self

    def _spawn(self, node: Node) -> None:
        args = [
            *server_args(self.binary, node.port, node.dir, self.appendfsync),
            "--cluster-enabled",
            "yes",
            "--cluster-port",
            str(node.bus),
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            str(self.node_timeout_ms),
        ]
        node.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _wait_ping(self, node: Node, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with node.client() as c:
            while True:
                try:
                    if c.ping():
                        return
                except (redis.ConnectionError, redis.ResponseError):
                    pass
                if not node.alive or time.monotonic() > deadline:
                    log = Path(node.dir, "server.log")
                    raise RuntimeError(
                        f"node {node.port} did not start: {log.read_text() if log.exists() else ''}"
                    )
                time.sleep(0.02)

    def wait_healthy(self, timeout: float = 30) -> None:
        """Until every live node says ``cluster_state:ok``, all slots are served, and every
        primary has its replicas connected (as this node's view of the cluster says)."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            last = self._health()
            if not last:
                return
            time.sleep(0.05)
        raise RuntimeError(f"cluster not healthy within {timeout}s: {last}")

    def _health(self) -> str:
        for node in self.nodes:
            if not node.alive:
                continue
            try:
                with node.client() as c:
                    info = c.execute_command("CLUSTER", "INFO").decode()
                    table = c.execute_command("CLUSTER", "NODES").decode()
            except redis.RedisError as exc:
                return f"{node.port}: {exc}"
            if "cluster_state:ok" not in info or "cluster_slots_ok:16384" not in info:
                return f"{node.port}: {info.splitlines()[:3]}"
            rows = [r.split() for r in table.splitlines() if r.strip()]
            live = [r for r in rows if "fail" not in r[2] and "disconnected" not in r[7]]
            primaries = [r for r in live if "master" in r[2] and len(r) > 8]
            if len(primaries) != self.masters:
                return f"{node.port}: {len(primaries)} primaries with slots"
            wanted = self.replicas if all(n.alive for n in self.nodes) else 0
            for p in primaries:
                if sum(1 for r in live if r[3] == p[0]) < wanted:
                    return f"{node.port}: primary {p[1]} lacks replicas"
        return ""

    def primaries(self) -> dict[int, list[tuple[int, int]]]:
        """port -> slot ranges, as a live node sees it."""
        for node in self.nodes:
            if node.alive:
                with node.client() as c:
                    table = c.execute_command("CLUSTER", "NODES").decode()
                out: dict[int, list[tuple[int, int]]] = {}
                for row in (r.split() for r in table.splitlines() if r.strip()):
                    if "master" in row[2] and "fail" not in row[2] and len(row) > 8:
                        port = int(row[1].split("@")[0].rsplit(":", 1)[1])
                        out[port] = [_slot_range(s) for s in row[8:] if not s.startswith("[")]
                return out
        raise RuntimeError("no live node")

    def replica_of(self, port: int) -> int | None:
        """The port of a replica of the primary on ``port``."""
        with self.node(port).client() as c:
            table = c.execute_command("CLUSTER", "NODES").decode()
        rows = [r.split() for r in table.splitlines() if r.strip()]
        me = next(r[0] for r in rows if "myself" in r[2])
        for r in rows:
            if r[3] == me:
                return int(r[1].split("@")[0].rsplit(":", 1)[1])
        return None

    def node_id(self, port: int) -> str:
        with self.node(port).client() as c:
            return str(c.execute_command("CLUSTER", "MYID").decode())

    def owner_of(self, slot: int) -> int:
        """The port of the primary serving ``slot``."""
        for port, ranges in self.primaries().items():
            if any(a <= slot <= b for a, b in ranges):
                return port
        raise LookupError(f"slot {slot} is not served")

    def move_slot(self, slot: int, to_port: int) -> None:
        """Reshard one slot to the primary on ``to_port`` the way ``--cluster reshard`` does:
        IMPORTING/MIGRATING, MIGRATE every key of the slot (clients get ASK meanwhile), then
        SETSLOT NODE everywhere (clients get MOVED from then on)."""
        src = self.owner_of(slot)
        if src == to_port:
            return
        src_id, dst_id = self.node_id(src), self.node_id(to_port)
        with self.node(src).client() as s, self.node(to_port).client() as d:
            d.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
            s.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
            while keys := s.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000):
                s.execute_command("MIGRATE", "127.0.0.1", to_port, "", 0, 10_000, "KEYS", *keys)
            d.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
            s.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
        for port in self.primaries():
            if port not in (src, to_port):
                with self.node(port).client() as c:
                    c.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)

    def node(self, port: int) -> Node:
        return next(n for n in self.nodes if n.port == port)

    def flush(self) -> None:
        """Empty every primary (replicas follow) and wait until the replicas have it too."""
        for port in self.primaries():
            with self.node(port).client() as c:
                c.flushall()
                c.execute_command("WAIT", self.replicas, 5000)

    def kill(self, port: int) -> None:
        node = self.node(port)
        if node.proc and node.alive:
            node.proc.send_signal(signal.SIGKILL)
            node.proc.wait(10)

    def restart(self, port: int, timeout: float = 30) -> None:
        """Start a killed node again from its directory (its nodes.conf and AOF): a primary that
        was failed over meanwhile rejoins as a replica of its successor."""
        node = self.node(port)
        self._spawn(node)
        self._wait_ping(node, timeout)

    def wait_promoted(self, dead: int, slot: int, timeout: float = 30) -> int:
        """Until ``slot``, served by the killed primary on ``dead``, is served by another node (its
        replica, promoted) and the cluster is healthy again; returns the new primary's port."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                owner = self.owner_of(slot)
            except (redis.RedisError, LookupError):
                owner = dead
            if owner != dead:
                self.wait_healthy(max(1.0, deadline - time.monotonic()))
                return owner
            time.sleep(0.05)
        raise RuntimeError(f"no replica took over slot {slot} from {dead} within {timeout}s")

    def cleanup(self) -> None:
        for node in self.nodes:
            if node.proc and node.alive:
                node.proc.terminate()
                try:
                    node.proc.wait(10)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)


__all__ = ["Node", "ValkeyCluster", "cli_binary"]
