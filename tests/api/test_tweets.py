import asyncio

import pytest

from tests.conftest import api_with, drain

pytestmark = pytest.mark.asyncio(loop_scope="session")


def code(body):
    return [e["extensions"]["code"] for e in body["errors"]]


async def test_post_read_delete(api, services):
    token, uid, handle = await api.sign_up("poster")
    d = await api.ok(
        'mutation{postTweet(text:"  first! "){id text createdAt author{handle tweetsCount}}}',
        token=token,
    )
    tweet = d["postTweet"]
    assert tweet["text"] == "  first! " and tweet["author"]["tweetsCount"] == 1
    got = await api.ok("query($i:ID!){tweet(id:$i){id text author{id}}}", {"i": tweet["id"]})
    assert got["tweet"]["author"]["id"] == str(uid)
    # visible in the author's own home timeline at once, before any fan-out ran
    assert await api.home_ids(token) == [int(tweet["id"])]
    assert (await api.ok("mutation($i:ID!){deleteTweet(id:$i)}", {"i": tweet["id"]}, token))[
        "deleteTweet"
    ] is True
    assert (await api.ok("query($i:ID!){tweet(id:$i){id}}", {"i": tweet["id"]}))["tweet"] is None
    assert await api.home_ids(token) == []
    u = await api.ok("query($h:String!){user(handle:$h){tweetsCount}}", {"h": handle})
    assert u["user"]["tweetsCount"] == 0
    await drain(services)


@pytest.mark.parametrize(
    "text", ["", "   ", "x" * 281, "é" * 281]
)
async def test_bad_text(api, text):
    token, _, _ = await api.sign_up()
    body = await api.gql("mutation($t:String!){postTweet(text:$t){id}}", {"t": text}, token)
    assert code(body) == ["BAD_USER_INPUT"]


async def test_280_code_points_after_nfc_is_fine(api):
    token, _, _ = await api.sign_up()
    # 280 'é' written decomposed: 560 code points before NFC, 280 after
    d = await api.ok(
        "mutation($t:String!){postTweet(text:$t){text}}", {"t": "e\u0301" * 280}, token
    )
    assert len(d["postTweet"]["text"]) == 280


async def test_delete_errors(api):
    a, _, _ = await api.sign_up()
    b, _, _ = await api.sign_up()
    tid = await api.post(a, "mine")
    assert code(await api.gql("mutation($i:ID!){deleteTweet(id:$i)}", {"i": str(tid)}, b)) == [
        "FORBIDDEN"
    ]
    for bad, expected in [("999999999999", "NOT_FOUND"), ("abc", "BAD_USER_INPUT"),
                          ("-5", "BAD_USER_INPUT")]:
        body = await api.gql("mutation($i:ID!){deleteTweet(id:$i)}", {"i": bad}, a)
        assert code(body) == [expected]
    assert (await api.ok('query{tweet(id:"1"){id}}'))["tweet"] is None
    assert code(await api.gql('query{tweet(id:"x1"){id}}')) == ["BAD_USER_INPUT"]


async def test_idempotency_key(api, services):
    token, uid, _ = await api.sign_up()
    q = "mutation($t:String!,$k:String){postTweet(text:$t,idempotencyKey:$k){id}}"
    ids = await asyncio.gather(
        *(api.ok(q, {"t": "once", "k": "key-1"}, token) for _ in range(5))
    )
    assert len({d["postTweet"]["id"] for d in ids}) == 1
    assert len(await services.tweets.by_author(uid, limit=10)) == 1
    other = await api.ok(q, {"t": "twice", "k": "key-2"}, token)
    assert other["postTweet"]["id"] != ids[0]["postTweet"]["id"]


async def test_rate_limit(stack):
    async with api_with(stack, tweet_rate_per_hour=3) as limited:
        token, _, _ = await limited.sign_up()
        for _ in range(3):
            await limited.post(token)
        body = await limited.gql('mutation{postTweet(text:"one too many"){id}}', token=token)
        err = body["errors"][0]["extensions"]
        assert err["code"] == "RATE_LIMITED"
        assert 1 <= err["retryAfter"] <= 1200  # one token refills every 20 minutes
        r = await limited.client.post(
            "/v1/tweets", json={"text": "rest too"},
            headers={"authorization": f"Bearer {token}", "idempotency-key": "k1"},
        )
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
