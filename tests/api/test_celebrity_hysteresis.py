"""Celebrity hysteresis on real servers: hovering changes nothing, a demotion back-fills once."""

from __future__ import annotations

import asyncio

import pytest

from core import fanout
from runtime import metrics
from tests.conftest import api_with, drain

pytestmark = pytest.mark.asyncio(loop_scope="session")


def counted() -> tuple[float, float]:
    return (metrics.CELEBRITY_DEMOTIONS._value.get(), metrics.BACK_FILLS._value.get())


async def check_timelines(api, fans: list, following: set[int], posted: list[int]) -> None:
    """Each follower has the author's tweets once each, newest first; the others none."""
    for token, uid, _ in fans:
        want = posted[::-1] if uid in following else []
        assert await api.home_ids(token) == want, (uid, uid in following)


async def test_sql_twin_of_the_rule(api, services):
    rows = [(flag, count) for flag in (False, True) for count in (0, 4, 5, 6)]
    got = await services.pool.fetch(
        f"SELECT {fanout.celebrity_sql('u', '$1')} FROM unnest($2::bool[], $3::int[]) "
        "AS u(celebrity, followers_count)", 5, [r[0] for r in rows], [r[1] for r in rows])
    assert [r[0] for r in got] == [fanout.is_celebrity(c, f, 5) for f, c in rows]


async def _famous(api, name: str):
    """An author with five followers (the threshold), each follower's timeline cached."""
    author, aid, handle = await api.sign_up(name)
    fans = [await api.sign_up(f"{name}f") for _ in range(5)]
    for token, _, _ in fans:
        await api.follow(token, aid)
        await api.home_ids(token)
    return author, aid, handle, fans, {uid for _, uid, _ in fans}


async def test_hovering_at_the_bounds_triggers_no_back_fill(stack):
    async with api_with(stack, celebrity_threshold=5, celebrity_demote_threshold=3,
                        celebrity_demote_quiet_seconds=3600) as api:
        svc = api.services
        author, aid, handle, fans, following = await _famous(api, "hov")
        posted: list[int] = []
        before = counted()
        for round_ in range(6):
            # around the threshold: 5 -> 4 -> 5; then around the lower bound: 5 -> 2 -> 5
            leaving = fans[:1] if round_ % 2 == 0 else fans[:3]
            for token, uid, _ in leaving:
                assert (await api.unfollow(token, aid))["followersCount"] >= 2
                following.discard(uid)
            posted.append(await api.post(author, f"round {round_}"))
            assert await svc.social.demote_due() == []
            await drain(svc)
            await check_timelines(api, fans, following, posted)
            assert (await api.ok("query($h:String!){user(handle:$h){isCelebrity}}",
                                 {"h": handle}))["user"]["isCelebrity"]
            for token, uid, _ in leaving:
                await api.follow(token, aid)
                following.add(uid)
            await drain(svc)
            await check_timelines(api, fans, following, posted)
        assert counted() == before  # no demotion, no back-fill
        assert (await svc.users.get_many([aid]))[aid].celebrity


async def test_a_real_demotion_back_fills_once(stack):
    async with api_with(stack, celebrity_threshold=5, celebrity_demote_threshold=3,
                        celebrity_demote_quiet_seconds=1) as api:
        svc = api.services
        author, aid, handle, fans, following = await _famous(api, "dem")
        posted = [await api.post(author, "while famous") for _ in range(2)]
        await drain(svc)
        for _, uid, _ in fans:  # pulled at read time, not pushed
            assert not set(posted) & set((await svc.home.read(uid, count=50)).ids)
        before = counted()
        for token, uid, _ in fans[:3]:  # 2 followers: under the lower bound
            await api.unfollow(token, aid)
            following.discard(uid)
        assert await svc.social.demote_due() == []  # not for the quiet period yet
        await drain(svc)
        await check_timelines(api, fans, following, posted)
        await asyncio.sleep(1.1)
        # two workers sweeping at once: one demotion
        results = await asyncio.gather(svc.social.demote_due(), svc.social.demote_due())
        assert sorted(results, key=len) == [[], [aid]]
        assert await svc.social.demote_due() == []
        # until its back-fill has run the author is still pulled, and already pushed
        await check_timelines(api, fans, following, posted)
        posted.append(await api.post(author, "while being demoted"))
        await check_timelines(api, fans, following, posted)
        assert (await api.ok("query($h:String!){user(handle:$h){isCelebrity}}",
                             {"h": handle}))["user"]["isCelebrity"]
        assert await drain(svc) >= 2
        assert counted() == (before[0] + 1, before[1] + 1)
        for _, uid, _ in fans[3:]:  # back-filled into the cached timelines
            assert set(posted) <= set((await svc.home.read(uid, count=50)).ids)
        await check_timelines(api, fans, following, posted)
        user = await api.ok("query($h:String!){user(handle:$h){isCelebrity}}", {"h": handle})
        assert user["user"]["isCelebrity"] is False
        posted.append(await api.post(author, "pushed again"))
        await drain(svc)
        for _, uid, _ in fans[3:]:
            assert posted[-1] in (await svc.home.read(uid, count=50)).ids
        await check_timelines(api, fans, following, posted)
        # promoted again at the threshold: pulled, and nothing more is back-filled
        for token, uid, _ in fans[:3]:
            await api.follow(token, aid)
            following.add(uid)
        posted.append(await api.post(author, "famous again"))
        await drain(svc)
        await check_timelines(api, fans, following, posted)
        assert counted() == (before[0] + 1, before[1] + 1)
