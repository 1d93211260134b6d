"""Wrap every public coroutine method of a Valkey store so driver failures surface as
``relaycore.errors.Unavailable``."""

from __future__ import annotations

import functools
import inspect
from typing import Any, TypeVar

from relaycore.valkey import guarded

T = TypeVar("T", bound=type)


def guard_methods(cls: T) -> T:
    for name, fn in list(vars(cls).items()):
        if name.startswith("_") or not inspect.iscoroutinefunction(fn):
            continue

        @functools.wraps(fn)
        async def wrapper(*args: Any, __fn: Any = fn, **kwargs: Any) -> Any:
            async with guarded():
                return await __fn(*args, **kwargs)

        setattr(cls, name, wrapper)
    return cls
