"""Random operations and fan-out, then every timeline checked by an oracle (docs/testing.md)."""

import random

import pytest

from tests.conftest import api_with, drain

pytestmark = pytest.mark.asyncio(loop_scope="session")

FOLLOWEES = "SELECT followee_id FROM follows WHERE follower_id = $1"
FOLLOWERS = "SELECT follower_id FROM follows WHERE followee_id = $1"


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_home_timelines_match_the_oracle(stack, seed):
    rng = random.Random(seed)
    # A small cap makes timelines overflow, so paging past the cache is exercised too.
    # Demotions are swept with every drain (no quiet period), so back-fills happen too.
    async with api_with(stack, timeline_max=12, celebrity_threshold=4,
                        celebrity_demote_quiet_seconds=0) as api:
        svc = api.services
        users = [await api.sign_up(f"c{seed}") for _ in range(12)]
        tweets: dict[int, list[int]] = {uid: [] for _, uid, _ in users}
        token = {uid: t for t, uid, _ in users}
        # Two would-be celebrities everyone likes to follow.
        stars = [users[0][1], users[1][1]]
        demotions = 0
        for _ in range(260):
            _t, uid, _ = rng.choice(users)
            op = rng.random()
            if op < 0.45:
                tweets[uid].append(await api.post(token[uid], f"{seed} {rng.random()}"))
            elif op < 0.70:
                other = rng.choice(stars) if rng.random() < 0.5 else rng.choice(users)[1]
                if other != uid:
                    await api.follow(token[uid], other)
            elif op < 0.82:
                other = rng.choice(users)[1]
                if other != uid:
                    await api.unfollow(token[uid], other)
            elif op < 0.90 and tweets[uid]:
                victim = tweets[uid].pop(rng.randrange(len(tweets[uid])))
                await api.ok("mutation($i:ID!){deleteTweet(id:$i)}", {"i": str(victim)},
                             token[uid])
            elif op < 0.95:
                await api.home_ids(token[uid], page=rng.randint(1, 9))  # cache it
            else:
                demotions += len(await svc.social.demote_due())
                await drain(svc)
                # Some timelines expire, so they are rebuilt on the next read.
                if rng.random() < 0.3:
                    await svc.home.drop(rng.choice(users)[1])
        celebs = await svc.pool.fetchval(
            "SELECT count(*) FROM users WHERE id = ANY($1::bigint[]) AND followers_count >= 4",
            [u for _, u, _ in users],
        )
        assert celebs >= 1, "the random graph should have at least one celebrity"
        # The stars then lose most of their followers: demoted and back-filled.
        for star in stars:
            fans = [r[0] for r in await svc.pool.fetch(FOLLOWERS, star)]
            rng.shuffle(fans)
            for fan in fans[2:]:
                await api.unfollow(token[fan], star)
            if rng.random() < 0.5:
                tweets[star].append(await api.post(token[star], f"{seed} fading"))
        demotions += len(await svc.social.demote_due())
        assert demotions >= 1, "a star should have been demoted"
        await drain(svc)
        # The oracle: the tweets each author still has (the test's own record, checked
        # against the store), merged over the follows PostgreSQL holds.
        for _t, uid, _ in users:
            stored = await svc.tweets.by_author(uid, limit=1000)
            assert [t.id for t in stored] == sorted(tweets[uid], reverse=True), uid
        for t, uid, _ in users:
            authors = {uid, *(r[0] for r in await svc.pool.fetch(FOLLOWEES, uid))}
            expected = sorted((i for a in authors for i in tweets[a]), reverse=True)
            assert await api.home_ids(t, page=rng.randint(1, 7)) == expected, uid
