import asyncio

import pytest

from tests.conftest import api_with, drain

pytestmark = pytest.mark.asyncio(loop_scope="session")

PAGE = """query($f:Int,$a:String,$s:ID){homeTimeline(first:$f,after:$a,sinceId:$s){
  edges{cursor node{id text author{handle}}} pageInfo{hasNextPage endCursor hasPreviousPage startCursor}}}"""


def code(body):
    return [e["extensions"]["code"] for e in body["errors"]]


async def test_pages_neither_repeat_nor_skip_while_tweets_arrive(api, services):
    reader, _, _ = await api.sign_up("reader")
    writer, wid, _ = await api.sign_up("writer")
    await api.follow(reader, wid)
    posted = [await api.post(writer, f"t{i}") for i in range(9)]
    await drain(services)
    seen, after = [], None
    while True:
        d = (await api.ok(PAGE, {"f": 2, "a": after}, reader))["homeTimeline"]
        seen += [int(e["node"]["id"]) for e in d["edges"]]
        # new tweets keep arriving at the head between pages
        await api.post(writer, "interrupting")
        await drain(services)
        if not d["pageInfo"]["hasNextPage"]:
            break
        after = d["pageInfo"]["endCursor"]
    assert seen == sorted(posted, reverse=True)


async def test_since_id(api, services):
    reader, _, _ = await api.sign_up()
    writer, wid, _ = await api.sign_up()
    await api.follow(reader, wid)
    old = await api.post(writer, "old")
    new = [await api.post(writer, f"new {i}") for i in range(3)]
    await drain(services)
    d = (await api.ok(PAGE, {"s": str(old)}, reader))["homeTimeline"]
    assert [int(e["node"]["id"]) for e in d["edges"]] == new[::-1]
    d = (await api.ok(PAGE, {"s": str(old), "f": 2}, reader))["homeTimeline"]
    assert d["pageInfo"]["hasNextPage"]
    d2 = (await api.ok(PAGE, {"s": str(old), "f": 2, "a": d["pageInfo"]["endCursor"]}, reader))
    assert [int(e["node"]["id"]) for e in d2["homeTimeline"]["edges"]] == [new[0]]
    assert d2["homeTimeline"]["pageInfo"]["hasPreviousPage"]


@pytest.mark.parametrize(
    "variables", [{"f": 0}, {"f": 101}, {"f": -1}, {"a": "garbage!"}, {"a": "dDph"}, {"s": "x"}]
)
async def test_bad_paging_arguments(api, variables):
    token, _, _ = await api.sign_up()
    assert code(await api.gql(PAGE, variables, token)) == ["BAD_USER_INPUT"]


async def test_user_timeline_and_user_tweets(api, services):
    token, uid, handle = await api.sign_up()
    ids = [await api.post(token, f"n{i}") for i in range(5)]
    q = 'query($h:String!,$a:String){userTimeline(handle:$h,first:3,after:$a){edges{node{id}} pageInfo{hasNextPage endCursor}}}'
    d = (await api.ok(q, {"h": handle}))["userTimeline"]
    assert [int(e["node"]["id"]) for e in d["edges"]] == ids[::-1][:3]
    d2 = (await api.ok(q, {"h": handle, "a": d["pageInfo"]["endCursor"]}))["userTimeline"]
    assert [int(e["node"]["id"]) for e in d2["edges"]] == ids[::-1][3:]
    assert not d2["pageInfo"]["hasNextPage"]
    q = 'query($h:String!){user(handle:$h){tweets(first:2){edges{node{id author{id}}}}}}'
    d = await api.ok(q, {"h": handle.upper()})
    assert [int(e["node"]["id"]) for e in d["user"]["tweets"]["edges"]] == ids[::-1][:2]


async def test_celebrity_tweets_are_pulled_not_pushed(api, services):
    # The suite's threshold is 5 followers.
    celeb, cid, ch = await api.sign_up("celeb")
    fans = [await api.sign_up("fan") for _ in range(5)]
    for t, _, _ in fans:
        await api.follow(t, cid)
        await api.home_ids(t)
    d = await api.ok('query($h:String!){user(handle:$h){isCelebrity}}', {"h": ch})
    assert d["user"]["isCelebrity"]
    tid = await api.post(celeb, "to the masses")
    await drain(services)
    for t, fid, _ in fans:
        cached = await services.home.read(fid, count=50)
        assert tid not in cached.ids  # not pushed...
        assert (await api.home_ids(t))[0] == tid  # ...but merged in at read time


async def test_paging_past_the_cached_window_continues_from_the_store(stack):
    async with api_with(stack, timeline_max=10) as small:
        reader, rid, _ = await small.sign_up()
        writer, wid, _ = await small.sign_up()
        await small.follow(reader, wid)
        await small.home_ids(reader)
        posted = [await small.post(writer, f"p{i}") for i in range(25)]
        await drain(small.services)
        cached = await small.services.home.read(rid, count=100)
        assert len(cached.ids) == 10 and cached.truncated
        assert await small.home_ids(reader, page=7) == posted[::-1]


async def test_missing_timeline_is_rebuilt_once_under_a_stampede(api, services):
    import asyncio

    from runtime import metrics

    reader, rid, _ = await api.sign_up()
    writer, wid, _ = await api.sign_up()
    await api.follow(reader, wid)
    posted = [await api.post(writer, f"s{i}") for i in range(5)]
    await drain(services)
    await services.home.drop(rid)
    rebuilds = metrics.TIMELINE_REBUILDS.labels("home")
    before = rebuilds._value.get()
    pages = await asyncio.gather(*(api.home_ids(reader) for _ in range(12)))
    assert all(p == posted[::-1] for p in pages)
    assert rebuilds._value.get() - before == 1


async def test_fan_out_skips_inactive_followers_who_rebuild_on_return(api, services):
    reader, rid, _ = await api.sign_up()
    sleeper, sid, _ = await api.sign_up()
    writer, wid, _ = await api.sign_up()
    for t in (reader, sleeper):
        await api.follow(t, wid)
        await api.home_ids(t)
    await asyncio.sleep(0.2)  # let the reads' background activity marks land first
    await services.pool.execute(
        "UPDATE users SET last_active_at = now() - interval '40 days' WHERE id = $1", sid
    )
    tid = await api.post(writer, "only for the active")
    await drain(services)
    assert tid in (await services.home.read(rid, count=10)).ids
    assert tid not in (await services.home.read(sid, count=10)).ids
    await services.home.drop(sid)
    assert await api.home_ids(sleeper) == [tid]  # rebuilt on return, nothing missed
