import pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")

SIGN_UP = "mutation($h:String!,$p:String!,$d:String){signUp(handle:$h,password:$p,displayName:$d){token user{id handle displayName bio followersCount followingCount tweetsCount isCelebrity viewerIsFollowing createdAt}}}"
LOG_IN = "mutation($h:String!,$p:String!){logIn(handle:$h,password:$p){token user{id handle}}}"


def code(body):
    return [e["extensions"]["code"] for e in body["errors"]]


async def test_sign_up_log_in_viewer(api):
    d = await api.ok(SIGN_UP, {"h": "Alice_x1", "p": "correct horse", "d": "Alice"})
    user = d["signUp"]["user"]
    assert user["displayName"] == "Alice" and user["tweetsCount"] == 0
    assert not user["isCelebrity"] and not user["viewerIsFollowing"]
    d = await api.ok(LOG_IN, {"h": "alice_X1", "p": "correct horse"})  # handles ignore case
    assert d["logIn"]["user"]["handle"] == "Alice_x1"
    me = await api.ok("{viewer{id handle}}", token=d["logIn"]["token"])
    assert me["viewer"]["id"] == user["id"]
    assert (await api.ok("{viewer{id}}"))["viewer"] is None


@pytest.mark.parametrize(
    "handle,password,expected",
    [
        ("bad handle", "password123", "BAD_USER_INPUT"),
        ("x" * 16, "password123", "BAD_USER_INPUT"),
        ("", "password123", "BAD_USER_INPUT"),
        ("shortpw", "1234567", "BAD_USER_INPUT"),
    ],
)
async def test_sign_up_rejects(api, handle, password, expected):
    body = await api.gql(SIGN_UP, {"h": handle, "p": password})
    assert code(body) == [expected]


async def test_handle_taken_case_insensitively(api):
    await api.ok(SIGN_UP, {"h": "TakenName", "p": "password123"})
    body = await api.gql(SIGN_UP, {"h": "takenname", "p": "password123"})
    assert code(body) == ["CONFLICT"]


async def test_bad_log_in_and_bad_tokens(api):
    await api.ok(SIGN_UP, {"h": "LoginUser", "p": "password123"})
    assert code(await api.gql(LOG_IN, {"h": "LoginUser", "p": "wrong-password"})) == [
        "UNAUTHENTICATED"
    ]
    assert code(await api.gql(LOG_IN, {"h": "nobody_here", "p": "password123"})) == [
        "UNAUTHENTICATED"
    ]
    assert code(await api.gql("{viewer{id}}", token="not.a.jwt")) == ["UNAUTHENTICATED"]
    r = await api.client.post(
        "/graphql", json={"query": "{viewer{id}}"}, headers={"authorization": "Basic abc"}
    )
    assert r.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize(
    "mutation",
    [
        'mutation{postTweet(text:"hi"){id}}',
        'mutation{deleteTweet(id:"1")}',
        'mutation{follow(userId:"1"){id}}',
        'mutation{unfollow(userId:"1"){id}}',
    ],
)
async def test_mutations_need_a_viewer(api, mutation):
    assert code(await api.gql(mutation)) == ["UNAUTHENTICATED"]
