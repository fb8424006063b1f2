"""Issue 12's attacks, each against the real app on real PostgreSQL and Valkey."""

import asyncio
import hashlib
import json
import secrets
import time

import jwt
import pytest

from storage import keys
from tests.conftest import api_with

pytestmark = pytest.mark.asyncio(loop_scope="session")

NESTED = ("viewer{followers(first:100){edges{node{followers(first:100){edges{node{"
          "followers(first:100){edges{node{id}}}}}}}}}}")


def codes(body):
    return [e["extensions"]["code"] for e in body.get("errors", [])]


async def test_29_aliases_of_nested_followers_are_refused_with_their_cost(api):
    token, _, _ = await api.sign_up()
    query = "{" + " ".join(f"a{i}: {NESTED}" for i in range(29)) + "}"
    start = time.perf_counter()
    body = await api.gql(query, token=token)
    assert time.perf_counter() - start < 2
    assert codes(body) == ["QUERY_TOO_COMPLEX"]
    ext = body["errors"][0]["extensions"]
    assert ext["cost"] > 29 * 100 ** 3 and ext["maximumCost"] == 5000
    assert body["data"] is None


async def test_accepted_cost_is_reported_and_variables_count(api):
    token, _, _ = await api.sign_up()
    q = ("query($f:Int){viewer{followers(first:$f){edges{node{followers(first:$f){"
         "edges{node{id}}}}}}}}")
    small = await api.gql(q, {"f": 2}, token=token)
    assert "errors" not in small
    # viewer 1, followers 1, edges 1, node 2, followers 2, edges 2, node 4
    assert small["extensions"]["cost"] == {"requested": 13, "maximum": 5000}
    # The same text again takes the HTTP shortcut: the check holds there too.
    again = await api.gql(q, {"f": 2}, token=token)
    assert again["extensions"]["cost"]["requested"] == 13
    big = await api.gql(q, {"f": 100}, token=token)
    assert codes(big) == ["QUERY_TOO_COMPLEX"] and big["errors"][0]["extensions"]["cost"] > 5000
    # Fragments and variable defaults are counted as the executor would run them.
    frag = ("query($f:Int=100){viewer{...F}} fragment F on User{followers(first:$f){"
            "edges{node{followers(first:$f){edges{node{following(first:$f){edges{node{id}}}}}}}}}}")
    assert codes(await api.gql(frag, token=token)) == ["QUERY_TOO_COMPLEX"]


async def test_query_time_budget(stack):
    async with api_with(stack, query_timeout_ms=300) as api:
        token, uid, handle = await api.sign_up()
        known = "{viewer{following(first:5){edges{node{id}}}}}"
        assert "errors" not in await api.gql(known, token=token)
        async with api.services.pool.acquire() as conn, conn.transaction():
            await conn.execute("LOCK TABLE follows IN ACCESS EXCLUSIVE MODE")
            for query in ("{viewer{followers(first:5){edges{node{id}}}}}", known):
                start = time.perf_counter()
                body = await api.gql(query, token=token)
                elapsed = time.perf_counter() - start
                assert codes(body) == ["QUERY_TOO_COMPLEX"], body
                assert body["errors"][0]["extensions"]["timeoutMs"] == 300
                assert elapsed < 3
            # a mutation is never cut mid-write: it waits for the lock
            _, other, _ = await api.sign_up()
            follow = asyncio.create_task(api.follow(token, other))
            await asyncio.sleep(0.6)
            assert not follow.done()
        assert (await follow)["id"] == str(other)
        assert "errors" not in await api.gql("{viewer{followers(first:5){edges{node{id}}}}}",
                                             token=token)


async def test_size_limits_and_undecodable_json(stack):
    async with api_with(stack, max_body_bytes=4096, max_query_bytes=1024) as api:
        big = await api.client.post("/graphql", content=b"{" + b" " * 5000 + b"}",
                                    headers={"content-type": "application/json"})
        assert big.status_code == 413 and codes(big.json()) == ["BAD_USER_INPUT"]
        long_query = "{viewer{" + "id " * 400 + "}}"
        r = await api.client.post("/graphql", json={"query": long_query})
        assert r.status_code == 413
        r = await api.client.get("/graphql", params={"query": long_query})
        assert r.status_code == 413
        r = await api.client.post("/v1/tweets", content=b"x" * 5000)
        assert r.status_code == 413
    deep = b'{"query":"{viewer{id}}","variables":{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    async with api_with(stack, max_body_bytes=1 << 20) as api:
        r = await api.client.post("/graphql", content=deep,
                                  headers={"content-type": "application/json"})
        assert r.status_code == 400 and codes(r.json()) == ["BAD_USER_INPUT"]
        r = await api.client.get("/graphql", params={"query": "{viewer{id}}",
                                                     "variables": "[" * 2000})
        assert r.status_code == 400


async def test_hostile_inputs_get_clear_errors(api):
    token, uid, handle = await api.sign_up()
    import base64
    bad_cursor = base64.urlsafe_b64encode("t:١٢٣".encode()).decode().rstrip("=")
    body = await api.gql("query($a:String){homeTimeline(after:$a){edges{cursor}}}",
                         {"a": bad_cursor}, token)
    assert codes(body) == ["BAD_USER_INPUT"]
    body = await api.gql("query($h:String!){user(handle:$h){id}}", {"h": "a\x00b"})
    assert "errors" not in body and body["data"]["user"] is None
    # A lone surrogate escaped in JSON is not valid JSON to orjson: 400 before GraphQL.
    r = await api.client.post(
        "/graphql", headers={"authorization": f"Bearer {token}",
                             "content-type": "application/json"},
        content=json.dumps({"query": "mutation($t:String!){postTweet(text:$t){id}}",
                            "variables": {"t": "a\ud800b"}}).encode())
    assert r.status_code == 400 and codes(r.json()) == ["BAD_USER_INPUT"]
    # In the query text itself GraphQL decodes it: the validator refuses it.
    body = await api.gql('mutation{postTweet(text:"a\\ud800b"){id}}', token=token)
    assert codes(body) == ["BAD_USER_INPUT"], body
    for text in ["a\x07b", "abc\u202edef", "\u200b\u200b", "a\x00"]:
        r = await api.client.post(
            "/graphql", headers={"authorization": f"Bearer {token}",
                                 "content-type": "application/json"},
            content=json.dumps({"query": "mutation($t:String!){postTweet(text:$t){id}}",
                                "variables": {"t": text}}).encode())
        assert r.status_code == 200 and codes(r.json()) == ["BAD_USER_INPUT"], (text, r.text)
    assert "errors" not in await api.gql("mutation{postTweet(text:\"line\\nbreak\"){id}}",
                                         token=token)
    for password in ["x" * 2000]:
        r = await api.client.post("/graphql", headers={"content-type": "application/json"},
                                  content=json.dumps({
                                      "query": "mutation($h:String!,$p:String!){logIn(handle:$h,password:$p){token}}",
                                      "variables": {"h": handle, "p": password}}).encode())
        assert codes(r.json()) == ["BAD_USER_INPUT"], r.text
    body = await api.gql(
        'mutation($h:String!){logIn(handle:$h,password:"pass\\ud800word"){token}}', {"h": handle})
    assert codes(body) == ["BAD_USER_INPUT"], body
    body = await api.gql('mutation{signUp(handle:"surr1",password:"pass\\ud800word"){token}}')
    assert codes(body) == ["BAD_USER_INPUT"], body
    auth = {"authorization": f"Bearer {token}"}
    for limit in ["²", "9" * 5000, "-1", "0", "101"]:
        r = await api.client.get("/v1/timeline/home", params={"limit": limit}, headers=auth)
        assert r.status_code == 400 and r.json()["error"]["code"] == "BAD_USER_INPUT", limit
    for cursor in [bad_cursor, "%%%", "x" * 100]:
        r = await api.client.get("/v1/timeline/home", params={"cursor": cursor}, headers=auth)
        assert r.status_code == 400, cursor
    r = await api.client.get("/v1/timeline/home", params={"since_id": "１２"}, headers=auth)
    assert r.status_code == 400


LOGIN = "mutation($h:String!,$p:String!){logIn(handle:$h,password:$p){token}}"


async def test_log_in_limits_per_handle_and_per_address(stack):
    async with api_with(stack, login_rate_per_minute=3, login_ip_rate_per_minute=8) as api:
        _, _, victim = await api.sign_up()
        _, _, other = await api.sign_up()
        answers = [await api.gql(LOGIN, {"h": victim, "p": "wrong-password"})
                   for _ in range(6)]
        assert [codes(a) for a in answers[:3]] == [["UNAUTHENTICATED"]] * 3
        limited = answers[3]["errors"][0]["extensions"]
        assert limited["code"] == "RATE_LIMITED" and 1 <= limited["retryAfter"] <= 20
        ok = await api.gql(LOGIN, {"h": other, "p": "password123"})
        assert "errors" not in ok
        r = await api.client.post("/graphql", json={"query": LOGIN, "variables": {
            "h": other, "p": "password123"}})
        assert r.headers["ratelimit-limit"] == "8" and int(r.headers["ratelimit-remaining"]) >= 0
        seen = []
        for i in range(8):
            seen += codes(await api.gql(LOGIN, {"h": f"nobody{i}", "p": "wrong-password"}))
        assert "RATE_LIMITED" in seen
        r = await api.client.post("/graphql", json={"query": LOGIN, "variables": {
            "h": "nobody99", "p": "wrong-password"}})
        assert codes(r.json()) == ["RATE_LIMITED"] and int(r.headers["retry-after"]) >= 1


async def failed_login_from(api, handle: str, xff: str) -> list[str]:
    r = await api.client.post("/graphql", json={"query": LOGIN, "variables": {
        "h": handle, "p": "wrong-password"}}, headers={"x-forwarded-for": xff})
    return codes(r.json())


async def test_trusted_proxy_forwarded_address(stack):
    async with api_with(stack, login_rate_per_minute=100, login_ip_rate_per_minute=2,
                        trusted_proxies="127.0.0.0/8") as api:
        for xff in ("203.0.113.5", "203.0.113.5"):
            assert await failed_login_from(api, "nobodyxff", xff) == ["UNAUTHENTICATED"]
        assert await failed_login_from(api, "nobodyxff", "203.0.113.5") == ["RATE_LIMITED"]
        assert await failed_login_from(
            api, "nobodyxff", "198.51.100.7, 127.0.0.1") == ["UNAUTHENTICATED"]
    async with api_with(stack, login_ip_rate_per_minute=1) as api:  # no trusted proxy
        await api.services.redis.delete(keys.rate_bucket("login:a:127.0.0.1"))
        assert await failed_login_from(api, "nobodyspoof", "192.0.2.1") == ["UNAUTHENTICATED"]
        assert await failed_login_from(api, "nobodyspoof", "192.0.2.2") == ["RATE_LIMITED"]


async def test_sign_up_follow_and_read_limits(stack):
    async with api_with(stack, signup_rate_per_hour=3, follow_rate_per_hour=2,
                        read_rate_per_minute=3) as api:
        token, _, _ = await api.sign_up()
        _, a, _ = await api.sign_up()
        _, b, _ = await api.sign_up()
        body = await api.gql('mutation{signUp(handle:"toomany1",password:"password123"){token}}')
        assert codes(body) == ["RATE_LIMITED"]
        await api.follow(token, a)
        await api.unfollow(token, a)
        body = await api.gql("mutation($u:ID!){follow(userId:$u){id}}", {"u": str(b)}, token)
        assert codes(body) == ["RATE_LIMITED"]
        q = "{homeTimeline(first:5){edges{cursor}}}"
        got = [codes(await api.gql(q, token=token)) for _ in range(4)]
        assert got[:3] == [[], [], []] and got[3] == ["RATE_LIMITED"]
        r = await api.client.get("/v1/timeline/home",
                                 headers={"authorization": f"Bearer {token}"})
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


async def test_idempotency_conflict_and_rest_key(api, services):
    token, uid, _ = await api.sign_up()
    m = "mutation($t:String!,$k:String){postTweet(text:$t,idempotencyKey:$k){id}}"
    first = await api.ok(m, {"t": "one", "k": "key-1"}, token)
    assert (await api.ok(m, {"t": "one", "k": "key-1"}, token)) == first
    assert codes(await api.gql(m, {"t": "two", "k": "key-1"}, token)) == ["CONFLICT"]
    auth = {"authorization": f"Bearer {token}"}
    r = await api.client.post("/v1/tweets", json={"text": "no key"}, headers=auth)
    assert r.status_code == 400 and "Idempotency-Key" in r.json()["error"]["message"]
    r = await api.client.post("/v1/tweets", json={"text": "other"},
                              headers={**auth, "idempotency-key": "key-1"})
    assert r.status_code == 409
    await services.pool.execute(
        "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' "
        "WHERE user_id = $1", uid)
    again = await api.ok(m, {"t": "two", "k": "key-1"}, token)
    assert again["postTweet"]["id"] != first["postTweet"]["id"]
    await api.ok(m, {"t": "three", "k": "key-2"}, token)
    await services.pool.execute(
        "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' "
        "WHERE user_id = $1 AND key = 'key-2'", uid)
    assert await services.tweeting.purge_keys() >= 1
    keys_left = await services.pool.fetch(
        "SELECT key FROM idempotency_keys WHERE user_id = $1", uid)
    assert [r["key"] for r in keys_left] == ["key-1"]


async def test_tokens_need_exp_and_a_live_user_and_log_out_revokes(api, services):
    token, uid, handle = await api.sign_up()
    secret = services.accounts.secret
    forever = jwt.encode({"sub": str(uid), "iat": int(time.time())}, secret, algorithm="HS256")
    assert codes(await api.gql("{viewer{id}}", token=forever)) == ["UNAUTHENTICATED"]
    second = (await api.ok(LOGIN, {"h": handle, "p": "password123"}))["logIn"]["token"]
    assert (await api.ok("mutation{logOut}", token=token)) == {"logOut": True}
    assert codes(await api.gql("{viewer{id}}", token=token)) == ["UNAUTHENTICATED"]
    assert (await api.ok("{viewer{id}}", token=second))["viewer"]["id"] == str(uid)
    third = (await api.ok(LOGIN, {"h": handle, "p": "password123"}))["logIn"]["token"]
    await api.ok("mutation{logOut(everywhere:true)}", token=third)
    for t in (second, third):
        assert codes(await api.gql("{viewer{id}}", token=t)) == ["UNAUTHENTICATED"]
    gone_token, gone, _ = await api.sign_up()
    async with services.pool.acquire() as conn:
        await conn.execute("DELETE FROM users WHERE id = $1", gone)
    services.accounts.forget(f"Bearer {gone_token}")
    assert codes(await api.gql("{viewer{id}}", token=gone_token)) == ["UNAUTHENTICATED"]


async def test_a_revocation_elsewhere_reaches_this_process_memo(stack, api, services):
    token, uid, _ = await api.sign_up()
    assert (await api.ok("{viewer{id}}", token=token))["viewer"]["id"] == str(uid)
    revocations = services.accounts.revocations
    assert revocations.ready.is_set()
    version = revocations.version
    async with api_with(stack) as elsewhere:
        claims = elsewhere.services.accounts.claims_from(f"Bearer {token}")
        await elsewhere.services.accounts.log_out(claims)
    for _ in range(100):
        if revocations.version > version:
            break
        await asyncio.sleep(0.01)
    assert codes(await api.gql("{viewer{id}}", token=token)) == ["UNAUTHENTICATED"]


async def test_cors_and_production_mode(stack, tmp_path):
    async with api_with(stack, cors_origins="https://app.example.com") as api:
        ok = await api.client.options("/graphql", headers={
            "origin": "https://app.example.com", "access-control-request-method": "POST",
            "access-control-request-headers": "authorization,content-type"})
        assert ok.headers["access-control-allow-origin"] == "https://app.example.com"
        bad = await api.client.options("/graphql", headers={
            "origin": "https://evil.example.com", "access-control-request-method": "POST"})
        assert "access-control-allow-origin" not in bad.headers
    async with api_with(stack, graphiql="false", metrics_token="m" * 32) as api:
        r = await api.client.get("/graphql", headers={"accept": "text/html"})
        assert "graphiql" not in r.text.lower()
        assert (await api.client.get("/metrics")).status_code == 404
        r = await api.client.get("/metrics", headers={"authorization": "Bearer " + "m" * 32})
        assert r.status_code == 200 and "chirp_request_seconds" in r.text
        assert "checks" not in (await api.client.get("/readyz")).json()


async def test_automatic_persisted_queries_and_trusted_documents(stack, tmp_path):
    # a handle of its own: registrations outlive a run on a shared Redis (the scale stack)
    query = f'{{user(handle:"nobody{secrets.token_hex(4)}"){{id}}}}'
    digest = hashlib.sha256(query.encode()).hexdigest()
    ext = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    async with api_with(stack) as api:
        r = await api.client.post("/graphql", json={"extensions": ext})
        assert codes(r.json()) == ["PERSISTED_QUERY_NOT_FOUND"]
        r = await api.client.post("/graphql", json={"query": query, "extensions": ext})
        assert r.json()["data"] == {"user": None}
        r = await api.client.post("/graphql", json={"extensions": ext})
        assert r.json()["data"] == {"user": None}
        bad = {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}
        r = await api.client.post("/graphql", json={"query": query, "extensions": bad})
        assert r.status_code == 400
    manifest = tmp_path / "trusted.json"
    manifest.write_text(json.dumps({"format": "apollo-persisted-query-manifest", "version": 1,
                                    "operations": [{"id": digest, "body": query,
                                                    "name": None, "type": "query"}]}))
    async with api_with(stack, trusted_documents=str(manifest)) as api:
        r = await api.client.post("/graphql", json={"extensions": ext})
        assert r.json()["data"] == {"user": None}
        r = await api.client.post("/graphql", json={"query": query})
        assert r.json()["data"] == {"user": None}
        r = await api.client.post("/graphql", json={"query": "{viewer{id}}"})
        assert codes(r.json()) == ["FORBIDDEN"]


async def test_introspection_is_bounded_by_the_schema_not_refused(api):
    from graphql import get_introspection_query
    full = get_introspection_query(descriptions=True, input_value_deprecation=True)
    body = await api.gql(full)
    assert "errors" not in body and body["data"]["__schema"]["types"]
    # Breadth, which the introspection depth rule does not bound: 30 aliases.
    wide = ("{" + " ".join(f"a{i}:__schema{{...S}}" for i in range(30)) + "}"
            " fragment S on __Schema{types{fields{type{fields{type{name}}}}}}")
    body = await api.gql(wide)
    assert codes(body) == ["QUERY_TOO_COMPLEX"], body
    assert "introspection" in body["errors"][0]["message"]
