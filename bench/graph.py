"""A synthetic heavy-tailed social graph, seeded straight into the stores (docs/benchmarks.md)."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from core.ids import CHIRP_EPOCH_MS, TIMESTAMP_SHIFT
from storage import keys

TWEET_WORKER, GRAPH_WORKER = 1023, 1022
LONG = 900  # seconds: bulk loads and index builds outlast the pool's command timeout
SENTINEL = bytes(8)


@dataclass
class GraphSpec:
    users: int
    mean_following: float
    tweets: int
    hours: float
    threshold: int  # celebrity threshold the API runs with
    # (rank, followers as a fraction of users): log-log linear in between; the last
    # point's count is solved for the mean following.
    anchors: list[tuple[int, float]] = field(default_factory=list)
    seed: int = 1

    @classmethod
    def full(cls) -> GraphSpec:
        return cls(users=110_000, mean_following=140, tweets=1_000_000, hours=48,
                   threshold=20_000,
                   anchors=[(1, 0.955), (3, 0.91), (60, 0.19), (1_100, 0.018)])

    @classmethod
    def quick(cls) -> GraphSpec:
        return cls(users=12_000, mean_following=140, tweets=120_000, hours=48,
                   threshold=2_000,
                   anchors=[(1, 0.955), (3, 0.91), (60, 0.19), (600, 0.03)])


@dataclass
class Graph:
    spec: GraphSpec
    ids: np.ndarray  # user ids by index (index 0 = most followed)
    follower: np.ndarray  # edge arrays (indices), sorted by follower then followee
    followee: np.ndarray
    out_ptr: np.ndarray  # CSR over follower: followees of u are followee[out_ptr[u]:out_ptr[u+1]]
    followers: np.ndarray
    following: np.ndarray
    tweet_ids: np.ndarray  # sorted by author then id descending
    tweet_author: np.ndarray
    tweet_ms: np.ndarray
    tweet_ptr: np.ndarray  # CSR over author
    texts: list[str]
    tweet_text: np.ndarray  # index into texts
    extra: dict = dataclasses.field(default_factory=dict)

    def followees_of(self, u: int) -> np.ndarray:
        return self.followee[self.out_ptr[u]:self.out_ptr[u + 1]]

    def tweets_of(self, a: int) -> np.ndarray:
        return self.tweet_ids[self.tweet_ptr[a]:self.tweet_ptr[a + 1]]

    @property
    def celebrity(self) -> np.ndarray:
        return self.followers >= self.spec.threshold

    def stats(self) -> dict:
        f, g = self.followers, self.following
        celebs_followed = np.bincount(self.follower[self.celebrity[self.followee]],
                                      minlength=len(self.ids))
        return {
            "users": int(len(self.ids)),
            "follows": int(len(self.follower)),
            "tweets": int(len(self.tweet_ids)),
            "tweets_window_hours": self.spec.hours,
            "followers_max": int(f.max()),
            "accounts_with_100k_followers": int((f >= 100_000).sum()),
            "accounts_with_10k_followers": int((f >= 10_000).sum()),
            "celebrity_threshold": self.spec.threshold,
            "celebrities": int(self.celebrity.sum()),
            "followers_median": float(np.median(f)),
            "following_median": float(np.median(g)),
            "following_mean": round(float(g.mean()), 1),
            "following_p99": float(np.percentile(g, 99)),
            # what fan-out writes per tweet: the author's followers, none for celebrities
            "pushed_deliveries_per_tweet": round(float(np.where(
                self.celebrity[self.tweet_author], 0, f[self.tweet_author]).mean()), 1),
            "celebrity_tweets_fraction": round(float(self.celebrity[self.tweet_author].mean()),
                                               4),
            "celebrities_followed_median": float(np.median(celebs_followed)),
            "celebrities_followed_mean": round(float(celebs_followed.mean()), 1),
        }


def _snowflakes(ms: np.ndarray, worker: int) -> np.ndarray:
    """Unique ids for millisecond stamps (sorted ascending), minted under `worker`."""
    ms = np.asarray(ms, dtype=np.int64)
    order = np.argsort(ms, kind="stable")
    sorted_ms = ms[order]
    # sequence = position within its millisecond; spill to the next ms past 4,096
    start = np.searchsorted(sorted_ms, sorted_ms, side="left")
    seq = np.arange(len(sorted_ms)) - start
    stamp = sorted_ms + seq // 4096
    out = np.empty_like(ms)
    out[order] = ((stamp - CHIRP_EPOCH_MS) << TIMESTAMP_SHIFT) | (worker << 12) | (seq % 4096)
    return out


def _target_followers(spec: GraphSpec) -> np.ndarray:
    n = spec.users
    ranks = np.arange(1, n + 1, dtype=np.float64)
    points = [(r, frac * n) for r, frac in spec.anchors]
    want = spec.mean_following * n

    def curve(floor: float) -> np.ndarray:
        xs = np.log([p[0] for p in points] + [n])
        ys = np.log([p[1] for p in points] + [floor])
        return np.exp(np.interp(np.log(ranks), xs, ys))

    lo, hi = 1.0, points[-1][1]
    for _ in range(60):  # bisect the floor for the wanted number of follows
        mid = math.sqrt(lo * hi)
        if curve(mid).sum() > want:
            hi = mid
        else:
            lo = mid
    return np.minimum(np.round(curve(lo)), n - 1).astype(np.int64)


def generate(spec: GraphSpec, now_ms: int | None = None) -> Graph:
    rng = np.random.default_rng(spec.seed)
    n = spec.users
    now_ms = now_ms or int(time.time() * 1000)
    target = _target_followers(spec)
    total = int(target.sum())

    # Out-degrees: log-normal (median ~ mean / 1.38), scaled to the same number of follows.
    out = rng.lognormal(0.0, 0.8, n)
    out = np.clip(np.round(out / out.sum() * total), 1, n - 1).astype(np.int64)

    # Head accounts: exactly their follower count, drawn uniformly.
    head = np.flatnonzero(target >= max(0.02 * n, 50))
    pairs_f, pairs_e = [], []
    for v in head:
        chosen = rng.choice(n - 1, size=int(target[v]), replace=False)
        chosen[chosen >= v] += 1
        pairs_f.append(chosen)
        pairs_e.append(np.full(len(chosen), v, dtype=np.int64))
    head_f = np.concatenate(pairs_f) if pairs_f else np.empty(0, np.int64)
    head_e = np.concatenate(pairs_e) if pairs_e else np.empty(0, np.int64)
    head_count = np.bincount(head_f, minlength=n)

    # Tail: the remaining follows, proportional to the tail's target counts.
    rest = np.maximum(out - head_count, 0)
    weights = target.astype(np.float64)
    weights[head] = 0.0
    cum = np.cumsum(weights)
    tail_f = np.repeat(np.arange(n, dtype=np.int64), rest)
    tail_e = np.searchsorted(cum, rng.random(len(tail_f)) * cum[-1], side="right")
    tail_e = np.minimum(tail_e, n - 1)

    follower = np.concatenate([head_f, tail_f])
    followee = np.concatenate([head_e, tail_e])
    keep = follower != followee
    key = np.unique(follower[keep] * n + followee[keep])
    follower, followee = key // n, key % n
    out_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(follower, minlength=n), out=out_ptr[1:])
    followers = np.bincount(followee, minlength=n)
    following = np.diff(out_ptr)

    # Users: ids minted over the last 30 days, index order.
    user_ms = now_ms - 30 * 86_400_000 + np.arange(n, dtype=np.int64)
    ids = _snowflakes(user_ms, GRAPH_WORKER)

    # Tweets: popular accounts post more; spread over the window.
    activity = rng.lognormal(0.0, 1.0, n) * (1.0 + 0.6 * np.log10(1.0 + followers))
    per_author = rng.multinomial(spec.tweets, activity / activity.sum())
    author = np.repeat(np.arange(n, dtype=np.int64), per_author)
    window = int(spec.hours * 3_600_000)
    ms = now_ms - 60_000 - rng.integers(0, window, len(author))
    tids = _snowflakes(ms, TWEET_WORKER)
    order = np.lexsort((-tids, author))
    author, tids, ms = author[order], tids[order], ms[order]
    tweet_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(per_author, out=tweet_ptr[1:])
    words = ["the", "a", "timeline", "fan", "out", "cache", "read", "write", "follow", "post",
             "tweet", "hello", "world", "redis", "postgres", "graph", "bench", "latency",
             "queue", "p99", "morning", "coffee", "news", "today", "launch", "python",
             "async", "event", "worker", "celebrity", "viral"]
    texts = [" ".join(rng.choice(words, size=int(k))) for k in rng.integers(6, 30, 2000)]
    tweet_text = rng.integers(0, len(texts), len(tids))
    return Graph(spec, ids, follower, followee, out_ptr, followers, following, tids, author,
                 ms, tweet_ptr, texts, tweet_text)


def home_list(g: Graph, u: int, cap: int, celeb: np.ndarray) -> bytes:
    """What FeedManager keeps in a user's home timeline, sentinel included."""
    sources = [g.tweets_of(u)]
    for f in g.followees_of(u):
        if not celeb[f]:
            sources.append(g.tweet_ids[g.tweet_ptr[f]:min(g.tweet_ptr[f + 1],
                                                            g.tweet_ptr[f] + cap + 1)])
    allids = np.concatenate(sources)
    truncated = len(allids) > cap
    if truncated:
        allids = np.partition(allids, len(allids) - cap)[len(allids) - cap:]
    allids = np.sort(allids)[::-1]
    blob = allids.astype(">u8").tobytes()
    return blob + SENTINEL if truncated else blob


def recents_list(g: Graph, a: int, cap: int) -> bytes:
    mine = g.tweets_of(a)
    blob = mine[:cap].astype(">u8").tobytes()
    return blob + SENTINEL if len(mine) > cap else blob


def _binary_copy(columns: list[np.ndarray]) -> bytes:
    """PostgreSQL binary COPY data for bigint columns."""
    n = len(columns[0])
    dtype = [("count", ">i2")]
    for i in range(len(columns)):
        dtype += [(f"len{i}", ">i4"), (f"v{i}", ">i8")]
    rows = np.empty(n, dtype=dtype)
    rows["count"] = len(columns)
    for i, col in enumerate(columns):
        rows[f"len{i}"] = 8
        rows[f"v{i}"] = col
    return rows.tobytes()


async def _chunks(data: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in data:
        yield chunk


async def copy_bigints(conn, table: str, names: list[str], columns: list[np.ndarray],
                       chunk: int = 1_000_000) -> None:
    head = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
    parts = [head]
    for start in range(0, len(columns[0]), chunk):
        parts.append(_binary_copy([c[start:start + chunk] for c in columns]))
    parts.append((-1).to_bytes(2, "big", signed=True))
    await conn.copy_to_table(table, source=_chunks(parts), columns=names, format="binary",
                             timeout=LONG)


async def add_follows(conn, follower_ids: np.ndarray, followee_ids: np.ndarray,
                      seq_start_ms: int) -> None:
    """Bulk follows with indexes and foreign-key triggers off, rebuilt after."""
    defs = await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'follows' "
        "AND indexname NOT IN (SELECT conname FROM pg_constraint "
        "WHERE conrelid = 'follows'::regclass)")
    pk = await conn.fetchrow(
        "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint "
        "WHERE conrelid = 'follows'::regclass AND contype = 'p'")
    seq = _snowflakes(seq_start_ms + np.arange(len(follower_ids)) // 4000, GRAPH_WORKER)
    await conn.execute("SET session_replication_role = replica")
    await conn.execute("SET maintenance_work_mem = '512MB'")
    try:
        for d in defs:
            await conn.execute(f'DROP INDEX "{d["indexname"]}"', timeout=LONG)
        if pk:
            await conn.execute(f'ALTER TABLE follows DROP CONSTRAINT "{pk["conname"]}"',
                               timeout=LONG)
        await copy_bigints(conn, "follows", ["follower_id", "followee_id", "seq"],
                           [follower_ids, followee_ids, seq])
    finally:
        if pk:
            await conn.execute(f'ALTER TABLE follows ADD CONSTRAINT "{pk["conname"]}" '
                               f'{pk["def"]}', timeout=LONG)
        for d in defs:
            await conn.execute(d["indexdef"], timeout=LONG)
        await conn.execute("SET session_replication_role = DEFAULT")


async def seed(svc, g: Graph, log=print) -> dict:
    """Rows into PostgreSQL, caches into Valkey. Returns timings."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    created = datetime.now(UTC)
    async with svc.pool.acquire() as conn:
        await conn.copy_records_to_table(
            "users",
            columns=["id", "handle", "display_name", "password_hash", "created_at",
                     "followers_count", "following_count", "tweets_count"],
            records=[(int(g.ids[i]), f"u{i}", f"User {i}", "x", created,
                      int(g.followers[i]), int(g.following[i]),
                      int(g.tweet_ptr[i + 1] - g.tweet_ptr[i]))
                     for i in range(len(g.ids))], timeout=LONG)
        timings["users_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        await add_follows(conn, g.ids[g.follower], g.ids[g.followee],
                          int(time.time() * 1000) - 20 * 86_400_000)
        timings["follows_s"] = time.perf_counter() - t1
        log(f"  follows: {len(g.follower):,} rows in {timings['follows_s']:.0f} s")
        t1 = time.perf_counter()
        ids, authors = g.tweet_ids, g.ids[g.tweet_author]
        stamps = [datetime.fromtimestamp(m / 1000, UTC) for m in g.tweet_ms.tolist()]
        texts = g.texts
        text_idx = g.tweet_text.tolist()
        for start in range(0, len(ids), 200_000):
            stop = start + 200_000
            await conn.copy_records_to_table(
                "tweets", columns=["id", "author_id", "text", "created_at"],
                records=zip(ids[start:stop].tolist(), authors[start:stop].tolist(),
                            [texts[k] for k in text_idx[start:stop]], stamps[start:stop],
                            strict=True), timeout=LONG)
        timings["tweets_s"] = time.perf_counter() - t1
        # Now, not by autovacuum in the middle of a measurement: visibility map and stats.
        for table in ("users", "follows", "tweets"):
            await conn.execute(f"VACUUM ANALYZE {table}", timeout=LONG)
    t1 = time.perf_counter()
    await seed_caches(svc, g, range(len(g.ids)))
    timings["caches_s"] = time.perf_counter() - t1
    timings["total_s"] = time.perf_counter() - t0
    return {k: round(v, 1) for k, v in timings.items()}


async def seed_caches(svc, g: Graph, users) -> None:
    cap = svc.home.cap
    ttl_ms = svc.settings.timeline_ttl_seconds * 1000
    celeb = g.celebrity
    users = list(users)
    for start in range(0, len(users), 2000):
        async with svc.redis.pipeline(transaction=False) as pipe:
            for u in users[start:start + 2000]:
                pipe.set(svc.home.key(int(g.ids[u])), home_list(g, u, cap, celeb), px=ttl_ms)
                pipe.set(keys.seen(int(g.ids[u])), 1, ex=3600)
            await pipe.execute()
    async with svc.redis.pipeline(transaction=False) as pipe:
        for a in np.flatnonzero(celeb):
            pipe.set(svc.recents.key(int(g.ids[a])), recents_list(g, int(a), cap), px=ttl_ms)
        await pipe.execute()


async def new_viewers(svc, g: Graph, followee_sets: list[np.ndarray]) -> list[int]:
    """Ids of new users following exactly these graph users, their home timelines cached."""
    ids = np.array([svc.ids.next_id() for _ in followee_sets], dtype=np.int64)
    created = datetime.now(UTC)
    async with svc.pool.acquire() as conn:
        await conn.copy_records_to_table(
            "users", columns=["id", "handle", "display_name", "password_hash", "created_at",
                              "following_count"],
            records=[(int(ids[i]), f"v{int(ids[i]) % 10**12}", f"Viewer {i}", "x", created,
                      len(s)) for i, s in enumerate(followee_sets)])
        fol = np.concatenate([np.full(len(s), ids[i]) for i, s in enumerate(followee_sets)])
        fee = np.concatenate([g.ids[s] for s in followee_sets])
        seq = _snowflakes(int(time.time() * 1000) - 5 * 86_400_000
                          + np.arange(len(fol)) // 4000, GRAPH_WORKER)
        await copy_bigints(conn, "follows", ["follower_id", "followee_id", "seq"],
                           [fol, fee, seq])
        await conn.execute(
            "UPDATE users u SET followers_count = followers_count + c.n FROM "
            "(SELECT followee_id, count(*) AS n FROM follows WHERE follower_id = ANY($1) "
            "GROUP BY followee_id) c WHERE u.id = c.followee_id", ids.tolist(), timeout=LONG)
    cap, ttl_ms = svc.home.cap, svc.settings.timeline_ttl_seconds * 1000
    celeb = g.celebrity
    async with svc.redis.pipeline(transaction=False) as pipe:
        for i, s in enumerate(followee_sets):
            sources = [g.tweet_ids[g.tweet_ptr[f]:g.tweet_ptr[f + 1]] for f in s if not celeb[f]]
            allids = np.sort(np.concatenate(sources or [np.empty(0, np.int64)]))[::-1]
            blob = allids[:cap].astype(">u8").tobytes()
            if len(allids) > cap:
                blob += SENTINEL
            pipe.set(svc.home.key(int(ids[i])), blob, px=ttl_ms)
            pipe.set(keys.seen(int(ids[i])), 1, ex=3600)
        await pipe.execute()
    return [int(i) for i in ids]


async def new_author(svc, g: Graph, follower_idx: np.ndarray, name: str) -> int:
    """A new account (no tweets) followed by the given graph users (indices)."""
    aid = svc.ids.next_id()
    created = datetime.now(UTC)
    async with svc.pool.acquire() as conn:
        await conn.copy_records_to_table(
            "users", columns=["id", "handle", "display_name", "password_hash", "created_at",
                              "followers_count"],
            records=[(aid, name, name, "x", created, len(follower_idx))])
        fol = g.ids[follower_idx]
        seq = _snowflakes(int(time.time() * 1000) - 4 * 86_400_000
                          + np.arange(len(fol)) // 4000, GRAPH_WORKER)
        await copy_bigints(conn, "follows", ["follower_id", "followee_id", "seq"],
                           [fol, np.full(len(fol), aid), seq])
        await conn.execute(
            "UPDATE users SET following_count = following_count + 1 WHERE id = ANY($1)",
            fol.tolist(), timeout=LONG)
    return aid


async def filler_users(svc, g: Graph, count: int) -> np.ndarray:
    """Ids of `count` new users following nobody, each with a graph user's timeline copied
    (fan-outs bigger than the graph, into lists of realistic size)."""
    rng = np.random.default_rng(7)
    ids = np.array([svc.ids.next_id() for _ in range(count)], dtype=np.int64)
    created = datetime.now(UTC)
    async with svc.pool.acquire() as conn:
        await conn.copy_records_to_table(
            "users", columns=["id", "handle", "display_name", "password_hash", "created_at"],
            records=[(int(i), f"f{int(i) % 10**12}", "filler", "x", created)
                     for i in ids.tolist()])
    sources = rng.integers(0, len(g.ids), count)
    for start in range(0, count, 2000):
        async with svc.redis.pipeline(transaction=False) as pipe:
            for i, src in zip(ids[start:start + 2000].tolist(),
                              sources[start:start + 2000].tolist(), strict=True):
                pipe.copy(svc.home.key(int(g.ids[src])), svc.home.key(i), replace=True)
            await pipe.execute()
    return ids
