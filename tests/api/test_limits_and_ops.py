import pytest

from tests.conftest import SCALE_STACK, TEST_STACK

pytestmark = pytest.mark.asyncio(loop_scope="session")


def code(body):
    return [e["extensions"]["code"] for e in body["errors"]]


async def test_depth_alias_and_token_limits(api):
    token, _, handle = await api.sign_up()
    deep = "{viewer{" + "following{edges{node{" * 6 + "id" + "}}}" * 6 + "}}"
    assert code(await api.gql(deep, token=token)) == ["BAD_USER_INPUT"]
    aliases = "{" + " ".join(f"a{i}: viewer{{id}}" for i in range(40)) + "}"
    assert set(code(await api.gql(aliases, token=token))) == {"BAD_USER_INPUT"}
    tokens = "{viewer{" + " ".join(["id"] * 3000) + "}}"
    assert set(code(await api.gql(tokens, token=token))) == {"BAD_USER_INPUT"}
    assert code(await api.gql("{ this is not graphql")) == ["BAD_USER_INPUT"]
    assert code(await api.gql("{homeTimeline(first:\"x\"){edges{cursor}}}")) == ["BAD_USER_INPUT"]


async def test_garbage_http_requests_are_not_500(api):
    for body in [b"", b"not json", b"[]", b'{"query": 5}']:
        r = await api.client.post(
            "/graphql", content=body, headers={"content-type": "application/json"}
        )
        assert 400 <= r.status_code < 500, (body, r.status_code)


async def test_graphiql_and_get_queries(api):
    r = await api.client.get("/graphql", headers={"accept": "text/html"})
    assert r.status_code == 200 and "graphiql" in r.text.lower()
    r = await api.client.get("/graphql", params={"query": '{user(handle:"nobody1"){id}}'})
    assert r.status_code == 200 and r.json()["data"] == {"user": None}


async def test_rest_adapters(api, services):
    token, uid, _ = await api.sign_up()
    headers = {"authorization": f"Bearer {token}", "idempotency-key": "abc"}
    r1 = await api.client.post("/v1/tweets", json={"text": "via rest"}, headers=headers)
    r2 = await api.client.post("/v1/tweets", json={"text": "via rest"}, headers=headers)
    assert r1.status_code == 201 and r1.json()["id"] == r2.json()["id"]
    assert len(await services.tweets.by_author(uid, limit=10)) == 1
    newer = await api.post(token, "newer")
    r = await api.client.get(
        "/v1/timeline/home", params={"since_id": r1.json()["id"], "limit": 5},
        headers={"authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200 and [t["id"] for t in r.json()["tweets"]] == [str(newer)]
    assert (await api.client.post("/v1/tweets", json={"text": "x"})).status_code == 401
    assert (await api.client.post("/v1/tweets", content=b"{", headers=headers)).status_code == 400
    bad = await api.client.get(
        "/v1/timeline/home", params={"limit": "many"}, headers={"authorization": f"Bearer {token}"}
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "BAD_USER_INPUT"


async def test_health_ready_metrics(api):
    assert (await api.client.get("/healthz")).status_code == 200
    r = await api.client.get("/readyz")
    expected = {"postgres": "ok", "redis": "ok"}
    if TEST_STACK == SCALE_STACK:  # every backend in use is checked
        expected |= {"kafka": "ok", "cassandra": "ok"}
    assert r.status_code == 200 and r.json()["checks"] == expected
    text = (await api.client.get("/metrics")).text
    for name in ["chirp_request_seconds_bucket", "chirp_fanout_lag_events",
                 "chirp_fanout_deliveries_total", "chirp_degraded_reads_total",
                 "chirp_dead_letter_events"]:
        assert name in text
