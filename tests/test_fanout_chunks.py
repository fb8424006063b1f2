"""A big fan-out split into follower-range chunks: each follower once, deletes too."""

import random

import pytest

from storage import keys
from tests.conftest import api_with, bulk_followers, drain

pytestmark = pytest.mark.asyncio(loop_scope="session")

FOLLOWERS = 3_500
CHUNK = 1_000


async def test_a_big_fan_out_is_chunked_and_covers_everyone_once(stack):
    async with api_with(stack, celebrity_threshold=1_000_000, fanout_chunk=CHUNK) as api:
        svc = api.services
        token, author, _ = await api.sign_up("big")
        followers = await bulk_followers(svc, author, FOLLOWERS)
        sample = random.Random(5).sample(followers, 40) + [followers[0], followers[-1]]
        await drain(svc)
        before = int(await svc.redis.get(keys.DELIVERIES) or 0)

        tweet = await api.post(token, "to many")
        applied = await drain(svc)

        assert applied >= 1 + FOLLOWERS // CHUNK + 1  # the post, then one event per chunk
        pushed = int(await svc.redis.get(keys.DELIVERIES)) - before
        assert pushed == FOLLOWERS  # the chunks tile the followers: no gap, no overlap
        for f in sample:
            assert (await svc.home.read(f, count=10)).ids == [tweet], f

        await api.ok("mutation($i:ID!){deleteTweet(id:$i)}", {"i": str(tweet)}, token)
        assert await drain(svc) >= 1 + FOLLOWERS // CHUNK + 1
        for f in sample:
            assert (await svc.home.read(f, count=10)).ids == [], f
