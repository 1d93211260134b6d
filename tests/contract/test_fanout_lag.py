"""Consumer-group lag as the console and the gateways read it: counted from the group's
last-delivered id, not from XINFO's lag field, whose read counter a failover leaves inexact (an
idle, fully delivered cluster showed 8 per gateway)."""

from __future__ import annotations

import redis.asyncio as aredis

from relaycore.keys import Keys
from relaycore.store.valkey_backend import ValkeyBackend
from tests.conftest import make_settings

GROUP = "gw:lag-test"


async def test_lag_is_zero_at_the_end_and_counts_what_follows_whatever_the_field_says(
    valkey_url: str,
) -> None:
    """A group at the log's end is 0 behind even when its read counter is off (as after a failover);
    new entries count one each."""
    backend = ValkeyBackend(make_settings(valkey_url, fanout_partitions=4))
    keys = Keys("relay", 4)
    log = keys.log(0)
    r = aredis.Redis.from_url(valkey_url)
    try:
        ids = [await r.xadd(log, {"n": str(n)}) for n in range(10)]
        await r.xgroup_create(log, GROUP, id="$")
        assert await backend.fanout.lag(GROUP) == 0
        # The state a promoted replica can leave: at the last entry, but a read counter of 2.
        await r.execute_command("XGROUP", "SETID", log, GROUP, ids[-1], "ENTRIESREAD", 2)
        field = next(g for g in await r.xinfo_groups(log) if g["name"] == GROUP.encode())["lag"]
        assert field == 8, field  # what XINFO says
        assert await backend.fanout.lag(GROUP) == 0
        for n in range(3):
            await r.xadd(log, {"n": f"new-{n}"})
        assert await backend.fanout.lag(GROUP) == 3
    finally:
        await r.aclose()
        await backend.close()
