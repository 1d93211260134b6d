"""The lean stand-ins serve_uvicorn puts in uvicorn's WebSocket protocol behave as the asyncio
objects they replace, for the calls uvicorn makes (tests/contract/test_adapters.py pins which)."""

from __future__ import annotations

import asyncio

from pulsar_relay.serve_uvicorn import Flag, Mailbox


async def test_mailbox_hands_out_items_in_order_and_says_when_empty() -> None:
    """put_nowait then get returns items first in, first out; empty() follows."""
    box = Mailbox()
    assert box.empty()
    box.put_nowait(1)
    box.put_nowait(2)
    assert not box.empty()
    assert [await box.get(), await box.get()] == [1, 2] and box.empty()


async def test_mailbox_get_waits_for_the_next_put() -> None:
    """A get on an empty mailbox returns the item put later, not before."""
    box = Mailbox()
    getter = asyncio.create_task(box.get())
    await asyncio.sleep(0)
    assert not getter.done()
    box.put_nowait("late")
    assert await asyncio.wait_for(getter, 5) == "late"


async def test_a_cancelled_get_leaves_the_mailbox_usable() -> None:
    """Cancelling a waiting get loses nothing: the next get takes the next item."""
    box = Mailbox()
    getter = asyncio.create_task(box.get())
    await asyncio.sleep(0)
    getter.cancel()
    await asyncio.gather(getter, return_exceptions=True)
    box.put_nowait("kept")
    assert await asyncio.wait_for(box.get(), 5) == "kept"


async def test_flag_wait_returns_at_once_when_set_and_waits_while_cleared() -> None:
    """wait() on a set flag does not suspend; on a cleared one every waiter is released by set()."""
    flag = Flag(True)
    await asyncio.wait_for(flag.wait(), 5)
    flag.clear()
    assert not flag.is_set()
    waiters = [asyncio.create_task(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    flag.set()
    await asyncio.wait_for(asyncio.gather(*waiters), 5)
    assert flag.is_set()


async def test_a_flag_cleared_again_before_its_waiter_runs_keeps_it_waiting() -> None:
    """A waiter re-checks the flag when it wakes (stricter than asyncio.Event): a socket paused again
    before a waiting send runs keeps that send waiting."""
    flag = Flag(False)
    waiter = asyncio.create_task(flag.wait())
    await asyncio.sleep(0)
    flag.set()
    flag.clear()
    await asyncio.sleep(0.01)
    assert not waiter.done()
    flag.set()
    await asyncio.wait_for(waiter, 5)
