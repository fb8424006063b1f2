import asyncio

import pytest

from tests.conftest import drain

pytestmark = pytest.mark.asyncio(loop_scope="session")


def code(body):
    return [e["extensions"]["code"] for e in body["errors"]]


async def test_follow_unfollow_counts_and_lists(api):
    a, aid, ah = await api.sign_up("a")
    b, bid, bh = await api.sign_up("b")
    c, cid, _ = await api.sign_up("c")
    assert (await api.follow(a, bid))["followersCount"] == 1
    assert (await api.follow(a, bid))["followersCount"] == 1  # repeat is a no-op
    await api.follow(c, bid)
    await api.follow(a, cid)
    q = """query($h:String!){user(handle:$h){followersCount followingCount viewerIsFollowing
      followers(first:1){edges{cursor node{id}} pageInfo{hasNextPage endCursor}}}}"""
    d = await api.ok(q, {"h": bh}, a)
    assert d["user"]["followersCount"] == 2 and d["user"]["viewerIsFollowing"] is True
    first = d["user"]["followers"]
    assert first["edges"][0]["node"]["id"] == str(cid)  # newest follower first
    assert first["pageInfo"]["hasNextPage"]
    q2 = 'query($h:String!,$a:String){user(handle:$h){followers(first:5,after:$a){edges{node{id}} pageInfo{hasNextPage}}}}'
    d2 = await api.ok(q2, {"h": bh, "a": first["pageInfo"]["endCursor"]})
    assert [e["node"]["id"] for e in d2["user"]["followers"]["edges"]] == [str(aid)]
    assert not d2["user"]["followers"]["pageInfo"]["hasNextPage"]
    d = await api.ok('query($h:String!){user(handle:$h){following{edges{node{id}}} followingCount}}', {"h": ah})
    assert {e["node"]["id"] for e in d["user"]["following"]["edges"]} == {str(bid), str(cid)}
    assert (await api.unfollow(a, bid))["followersCount"] == 1
    assert (await api.unfollow(a, bid))["followersCount"] == 1


async def test_follow_errors(api):
    a, aid, _ = await api.sign_up()
    assert code(await api.gql('mutation($u:ID!){follow(userId:$u){id}}', {"u": str(aid)}, a)) == ["BAD_USER_INPUT"]
    assert code(await api.gql('mutation{follow(userId:"123456789"){id}}', token=a)) == ["NOT_FOUND"]
    assert code(await api.gql('mutation{follow(userId:"nope"){id}}', token=a)) == ["BAD_USER_INPUT"]
    assert code(await api.gql('mutation{unfollow(userId:"123456789"){id}}', token=a)) == ["NOT_FOUND"]
    assert (await api.ok('{user(handle:"no_such_user_x"){id}}'))["user"] is None
    assert code(await api.gql('{userTimeline(handle:"no_such_user_x"){edges{cursor}}}')) == ["NOT_FOUND"]
    # The fuzzer's find: a NUL in a handle used to reach PostgreSQL, which refuses it (INTERNAL).
    for handle in ("Q\u0000g", "x" * 16, "\u00c9t\u00e9"):
        q = 'query($h:String!){userTimeline(handle:$h,first:5){edges{cursor}}}'
        assert code(await api.gql(q, {"h": handle})) == ["NOT_FOUND"], handle
        assert (await api.ok('query($h:String!){user(handle:$h){id}}', {"h": handle}))["user"] is None


async def test_counts_exact_under_concurrent_follows_and_unfollows(api, services):
    star_token, star, _ = await api.sign_up("star")
    fans = [await api.sign_up("fan") for _ in range(12)]

    async def churn(token):
        for _ in range(4):
            await asyncio.gather(api.follow(token, star), api.follow(token, star))
            await asyncio.gather(api.unfollow(token, star), api.unfollow(token, star))
        await api.follow(token, star)

    await asyncio.gather(*(churn(t) for t, _, _ in fans))
    row = await services.pool.fetchrow(
        "SELECT followers_count, (SELECT count(*) FROM follows WHERE followee_id=$1) AS real "
        "FROM users WHERE id=$1", star,
    )
    assert row["followers_count"] == row["real"] == 12
    for _t, fid, _ in fans:
        n = await services.pool.fetchval("SELECT following_count FROM users WHERE id=$1", fid)
        assert n == 1
    await drain(services)


async def test_follow_merges_and_unfollow_removes(api, services):
    a, aid, _ = await api.sign_up()
    b, bid, _ = await api.sign_up()
    own = await api.post(a, "a's own")
    assert await api.home_ids(a) == [own]  # a's timeline is now cached
    theirs = [await api.post(b, f"b {i}") for i in range(3)]
    await drain(services)
    await api.follow(a, bid)
    assert await api.home_ids(a) == sorted(theirs + [own], reverse=True)
    cached = await services.home.read(aid, count=100)
    assert set(theirs) <= set(cached.ids)  # merged into the cache, not only pulled
    await api.unfollow(a, bid)
    assert await api.home_ids(a) == [own]
    cached = await services.home.read(aid, count=100)
    assert cached.ids == [own]
