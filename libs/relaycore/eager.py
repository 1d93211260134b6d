"""Running a coroutine's first step inline, where a task would wait for the next loop round.

Most awaits on a hot path complete without waiting: a socket with room takes a frame, a request
body has already arrived.  ``step`` runs the coroutine up to its first real wait; if it finished,
the caller has its result at once, with no task, no timer and no loop round.  Otherwise
``resume`` finishes it as a task would have.  This is ``asyncio.eager_task_factory`` (Python
3.12) for one call.  Framework-free.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def step(coro: Coroutine[Any, Any, T]) -> tuple[bool, Any]:
    """``(True, result)`` if ``coro`` finished on its first step, else ``(False, what it waits
    on)`` for ``resume``.  An exception it raises propagates."""
    try:
        waiting = coro.send(None)
    except StopIteration as stop:
        return True, stop.value
    return False, waiting


async def resume(coro: Coroutine[Any, Any, T], waiting: Any) -> T:
    """Run a coroutine that suspended on its first step to completion, as a task would have:
    wait for the future it yielded (a bare ``None`` asks for one loop round), then resume it.
    Cancelled, the future it waits on is cancelled and the coroutine closed."""
    loop = asyncio.get_running_loop()
    try:
        while True:
            if waiting is None:
                await asyncio.sleep(0)
            else:
                waiting._asyncio_future_blocking = False
                done = loop.create_future()
                waiting.add_done_callback(functools.partial(_settle, done))
                try:
                    await done
                except asyncio.CancelledError:
                    waiting.cancel()  # as Task.cancel() does for the future it waits on
                    raise
            try:
                waiting = coro.send(None)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
    except BaseException:
        coro.close()
        raise


def _settle(done: asyncio.Future[None], _waited: object) -> None:
    if not done.done():
        done.set_result(None)
