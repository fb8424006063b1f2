"""Archived tweets stay readable with the same cursors, and deletable."""

import pytest

from tests.archive.conftest import archive_api
from tests.conftest import drain
from workers import archive

pytestmark = pytest.mark.asyncio(loop_scope="session")

USER_PAGE = 'query($h:String!,$a:String){userTimeline(handle:$h,first:7,after:$a){edges{node{id text}} pageInfo{hasNextPage endCursor}}}'
USER_TWEETS = 'query($h:String!,$a:String){user(handle:$h){tweetsCount tweets(first:5,after:$a){edges{node{id}} pageInfo{hasNextPage endCursor}}}}'


async def _pages(api, query: str, handle: str, root) -> list[tuple[str | None, list[int]]]:
    """Every page as (the cursor it was asked with, its ids)."""
    out, after = [], None
    while True:
        conn = root(await api.ok(query, {"h": handle, "a": after}))
        out.append((after, [int(e["node"]["id"]) for e in conn["edges"]]))
        if not conn["pageInfo"]["hasNextPage"]:
            return out
        after = conn["pageInfo"]["endCursor"]


def _user_timeline(d):
    return d["userTimeline"]


def _user_tweets(d):
    return d["user"]["tweets"]


async def test_archived_tweets_stay_readable_and_deletable(archive_stack, stores):
    async with archive_api(archive_stack, stores, timeline_max=10) as (api, svc):
        ta, a, ha = await api.sign_up("a")
        tb, b, _ = await api.sign_up("b")
        tf, _f, _ = await api.sign_up("f")
        await api.follow(tf, a)
        await api.follow(tf, b)
        ids_a = [await api.post(ta, f"a{i}") for i in range(23)]
        ids_b = [await api.post(tb, f"b{i}") for i in range(9)]
        await drain(svc)
        timeline_before = await _pages(api, USER_PAGE, ha, _user_timeline)
        tweets_before = await _pages(api, USER_TWEETS, ha, _user_tweets)
        home_before = await api.home_ids(tf, page=6)
        assert sorted(home_before) == sorted(ids_a + ids_b)

        cutoff = svc.ids.next_id()
        newer = await api.post(ta, "after the cut-off")
        await drain(svc)
        summary = await archive.run(svc.pool, svc.live_tweets, svc.archive, cutoff)
        assert summary.archived >= 32 and summary.objects >= 2
        old = ids_a + ids_b
        assert await svc.archive.archived_among(old) == set(old)
        for author in (a, b):  # gone from the live store
            assert await svc.live_tweets.by_author(author, before=cutoff, limit=100) == []
        if svc.settings.tweet_store == "postgres":
            assert await svc.pool.fetchval(
                "SELECT count(*) FROM tweets WHERE id = ANY($1::bigint[])", old) == 0
        assert (await svc.live_tweets.by_author(a, limit=5))[0].id == newer

        # The cursors handed out before the move still page the same tweets.
        for pages, query, root in ((timeline_before, USER_PAGE, _user_timeline),
                                   (tweets_before, USER_TWEETS, _user_tweets)):
            for after, ids in pages[1:]:
                got = root(await api.ok(query, {"h": ha, "a": after}))
                assert [int(e["node"]["id"]) for e in got["edges"]] == ids
        after_pages = await _pages(api, USER_PAGE, ha, _user_timeline)
        assert [i for _, ids in after_pages for i in ids] == [newer] + [
            i for _, ids in timeline_before for i in ids]
        d = await api.ok('query($i:ID!){tweet(id:$i){id text author{id}}}', {"i": str(ids_a[4])})
        assert d["tweet"] == {"id": str(ids_a[4]), "text": "a4", "author": {"id": str(a)}}
        assert await api.home_ids(tf, page=6) == [newer] + home_before
        await svc.redis.flushdb()  # rebuilt caches come from the live store and the archive
        assert await api.home_ids(tf, page=6) == [newer] + home_before

        # Delete an archived tweet: gone everywhere, counted once.
        doomed = ids_a[3]
        d = await api.ok('mutation($i:ID!){deleteTweet(id:$i)}', {"i": str(doomed)}, ta)
        assert d["deleteTweet"] is True
        again = await api.gql('mutation($i:ID!){deleteTweet(id:$i)}', {"i": str(doomed)}, ta)
        assert again["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        await drain(svc)
        d = await api.ok('query($i:ID!){tweet(id:$i){id}}', {"i": str(doomed)})
        assert d["tweet"] is None
        rest = [newer] + [i for i in reversed(ids_a) if i != doomed]
        assert [i for _, ids in await _pages(api, USER_PAGE, ha, _user_timeline)
                for i in ids] == rest
        assert doomed not in await api.home_ids(tf, page=6)
        d = await api.ok(USER_TWEETS, {"h": ha, "a": None})
        assert d["user"]["tweetsCount"] == 23
        assert doomed not in await svc.archive.archived_among(old)

        rerun = await archive.run(svc.pool, svc.live_tweets, svc.archive, cutoff)
        assert (rerun.archived, rerun.objects) == (0, 0)
        # The next parametrization indexes into another object store: leave it nothing of
        # ours to top up.
        await archive.run(svc.pool, svc.live_tweets, svc.archive, svc.ids.next_id())
