"""The worker's timeout rule on the real event bus: retries, then dead letters."""

import dataclasses

import pytest

from core.models import TWEET_CREATED, Event
from tests.conftest import api_with
from workers.fanout import _apply

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_timeouts_are_retried_a_bounded_number_of_times(stack, monkeypatch):
    async with api_with(stack, worker_timeout_retries=2) as api:
        svc = api.services
        _, author, _ = await api.sign_up("t")
        event = Event(TWEET_CREATED, svc.ids.next_id(), author)
        await svc.bus.publish([event])
        [delivery] = [d for d in await svc.bus.receive("timeouts", 100, block_ms=100)
                      if d.event == event]

        async def slow(*_args):
            raise TimeoutError()

        monkeypatch.setattr(svc.feed, "apply", slow)
        dead_before = await svc.bus.dead_count()
        for attempts in (1, 2):
            assert not await _apply(svc, dataclasses.replace(delivery, attempts=attempts))
        assert await svc.bus.dead_count() == dead_before

        async def down():
            raise ConnectionRefusedError()

        real_probes = svc.probes
        monkeypatch.setattr(svc, "probes", lambda: {**real_probes(), "postgres": down})
        # a backend down: retried, however many times
        assert not await _apply(svc, dataclasses.replace(delivery, attempts=9))
        assert await svc.bus.dead_count() == dead_before
        monkeypatch.setattr(svc, "probes", real_probes)

        assert not await _apply(svc, dataclasses.replace(delivery, attempts=3))
        assert await svc.bus.dead_count() == dead_before + 1
        [(_, dead_event, error)] = [d for d in await svc.bus.dead() if d[1] == event]
        assert "timed out 3 times" in error
