"""Sign-in failure throttle contract, run against the memory and the Valkey backend alike."""

from __future__ import annotations

import asyncio
import uuid

from relaycore.store.base import Backend


def fresh() -> str:
    return f"addr:{uuid.uuid4().hex}"


async def test_admits_until_failures_reach_the_limit(backend: Backend) -> None:
    """Attempts are admitted until the failures counted reach the limit, then refused with the
    time left in the window."""
    key = fresh()
    for _ in range(2):
        assert (await backend.throttle.admit([key], [2], hold=60))[0] == "go"
        await backend.throttle.release([key], failed=True, window=30)
    verdict, reset = await backend.throttle.admit([key], [2], hold=60)
    assert verdict == "refuse" and 0 < reset <= 30
    assert await backend.throttle.failures(key) == 2


async def test_successes_are_not_counted(backend: Backend) -> None:
    """Released attempts that did not fail leave no count behind, however many."""
    key = fresh()
    for _ in range(10):
        assert (await backend.throttle.admit([key], [2], hold=60))[0] == "go"
        await backend.throttle.release([key], failed=False, window=30)
    assert await backend.throttle.failures(key) == 0


async def test_attempts_in_flight_make_others_wait(backend: Backend) -> None:
    """With failures + attempts in flight at the limit, the next attempt waits (not refused);
    once one is released it is admitted."""
    key = fresh()
    assert (await backend.throttle.admit([key], [2], hold=60))[0] == "go"
    assert (await backend.throttle.admit([key], [2], hold=60))[0] == "go"
    assert (await backend.throttle.admit([key], [2], hold=60))[0] == "wait"
    await backend.throttle.release([key], failed=False, window=30)
    assert (await backend.throttle.admit([key], [2], hold=60))[0] == "go"


async def test_simultaneous_admissions_respect_the_limit(backend: Backend) -> None:
    """Twenty admissions at once on a limit of three: exactly three go."""
    key = fresh()
    verdicts = await asyncio.gather(*(backend.throttle.admit([key], [3], hold=60) for _ in range(20)))
    assert [v for v, _ in verdicts].count("go") == 3


async def test_any_key_over_its_limit_refuses_and_admits_none(backend: Backend) -> None:
    """Admission over several keys is all or nothing: one refusing key admits none of them."""
    a, b = fresh(), fresh()
    await backend.throttle.admit([b], [1], hold=60)
    await backend.throttle.release([b], failed=True, window=30)
    assert (await backend.throttle.admit([a, b], [5, 1], hold=60))[0] == "refuse"
    for _ in range(5):  # nothing of a is in flight
        assert (await backend.throttle.admit([a], [5], hold=60))[0] == "go"


async def test_clear_and_window_end_forget_failures(backend: Backend) -> None:
    """Clearing a key, or the end of its window, forgets its failures."""
    a, b = fresh(), fresh()
    for key, window in ((a, 30.0), (b, 0.1)):
        await backend.throttle.admit([key], [1], hold=60)
        await backend.throttle.release([key], failed=True, window=window)
    await backend.throttle.clear(a)
    assert (await backend.throttle.admit([a], [1], hold=60))[0] == "go"
    await asyncio.sleep(0.3)
    assert (await backend.throttle.admit([b], [1], hold=60))[0] == "go"


async def test_attempts_in_flight_are_forgotten_after_hold(backend: Backend) -> None:
    """An attempt never released (its process died) stops counting after ``hold``."""
    key = fresh()
    assert (await backend.throttle.admit([key], [1], hold=0.1))[0] == "go"
    assert (await backend.throttle.admit([key], [1], hold=0.1))[0] == "wait"
    await asyncio.sleep(0.3)
    assert (await backend.throttle.admit([key], [1], hold=0.1))[0] == "go"
