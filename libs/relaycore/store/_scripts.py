"""Loads the Lua scripts shipped beside this module (registered once per client, run by EVALSHA)."""

from __future__ import annotations

from importlib import resources

from redis.commands.core import AsyncScript

from relaycore.valkey import Client


def load(client: Client, name: str) -> AsyncScript:
    source = resources.files("relaycore.store").joinpath("lua", f"{name}.lua").read_text()
    return client.register_script(source)
