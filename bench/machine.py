"""What machine the run is on, and how processes are placed on it: servers on core 0, the load
generator on core 1, both with the open-file limit raised to the hard limit."""

from __future__ import annotations

import os
import platform
import resource
from pathlib import Path
from typing import Any

SERVER_CORE = 0
LOADGEN_CORE = 1
ALL_CORES = -1  # a server allowed on every core (worker processes), the load generator's included


def cores() -> int:
    return os.cpu_count() or 1


def raise_nofile() -> int:
    """Soft open-file limit up to the hard limit (raising the hard one needs privileges a container
    may not grant); returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def pin_self(core: int) -> None:
    if core == ALL_CORES:
        os.sched_setaffinity(0, range(cores()))
    elif cores() > core:
        os.sched_setaffinity(0, {core})


# Niceness for every benchmark process (servers, Valkey, load generator).  A negative value, when
# permitted, shields the measurement from other work on a shared machine; set by the suite.
NICE = {"value": 0}


def renice(pid: int = 0) -> None:
    """Apply ``NICE`` to ``pid`` (0: this process) and, where the kernel groups CPU time by session
    (autogroup, which makes per-process nice values moot across sessions), to its session's group."""
    if not NICE["value"]:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, pid, NICE["value"])
        Path(f"/proc/{pid or 'self'}/autogroup").write_text(str(NICE["value"]))
    except OSError:
        pass


def server_preexec(core: int = SERVER_CORE) -> Any:
    """A ``preexec_fn`` pinning the child (and every thread and process it starts) to ``core``."""

    def setup() -> None:
        pin_self(core)
        raise_nofile()
        renice()

    return setup


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def describe() -> dict[str, Any]:
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    return {
        "cores": cores(),
        "cpu_model": cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "nofile_hard": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
        "loadavg_before": loadavg(),
    }


def _children(pid: int) -> list[int]:
    found: list[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    try:
        for task in task_dir.iterdir():
            text = (task / "children").read_text().split()
            found.extend(int(c) for c in text)
    except OSError:
        pass
    return found


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (granian and uvicorn --workers run the app in a child)."""
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(_children(p))
    return tree


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` and its descendants, in KiB."""
    total = 0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def cpu_seconds(pid: int) -> float:
    """User+system CPU time consumed so far by ``pid`` and its descendants."""
    return sum(cpu_times(pid))


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds consumed so far by ``pid`` and its descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    user = system = 0.0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user += int(fields[11]) / tick
        system += int(fields[12]) / tick
    return user, system
