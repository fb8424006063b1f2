"""Per-request DataLoaders: one query per kind of lookup per request, whatever its shape."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from core import validation
from core.media import Media
from core.models import Tweet, User
from runtime.container import Services
from storage.readcache import Fence, ReadCaches

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class DataLoader(Generic[K, V]):
    """Strawberry's DataLoader semantics (a cached future per key; the keys asked for in one
    loop iteration go to the batch function in one call; a failing batch fails each key;
    cancelled waiters are skipped) for one future per key. Twin: tests/unit/test_dataloader.py."""

    __slots__ = ("_batch", "_cache", "_fn", "_loop")

    def __init__(self, load_fn: Callable[[list[K]], Awaitable[Sequence[V]]]) -> None:
        self._fn = load_fn
        self._cache: dict[K, asyncio.Future[V]] = {}
        self._batch: list[tuple[K, asyncio.Future[V]]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def load(self, key: K) -> asyncio.Future[V]:
        future = self._cache.get(key)
        if future is not None and not future.cancelled():
            return future
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._cache[key] = future
        batch = self._batch
        if batch is None:
            batch = self._batch = []
            loop.call_soon(self._dispatch)
        batch.append((key, future))
        return future

    async def load_many(self, keys: Iterable[K]) -> list[V]:
        futures = [self.load(k) for k in keys]
        try:
            return [await f for f in futures]
        except BaseException:
            # Like gather: the other keys' failures count as seen, now or when they land.
            for f in futures:
                f.add_done_callback(_retrieve)
            raise

    def _dispatch(self) -> None:
        batch, self._batch = self._batch, None
        if batch and not all(f.cancelled() for _k, f in batch):
            self._loop.create_task(self._run(batch))  # type: ignore[union-attr]

    async def _run(self, batch: list[tuple[K, asyncio.Future[V]]]) -> None:
        try:
            values = list(await self._fn([k for k, _f in batch]))
            if len(values) != len(batch):
                raise ValueError(
                    f"the batch function returned {len(values)} values for {len(batch)} keys"
                )
        except Exception as e:
            for _k, future in batch:
                if not future.done():
                    future.set_exception(e)
            return
        for (_k, future), value in zip(batch, values, strict=True):
            if future.done():
                continue
            if isinstance(value, BaseException):
                future.set_exception(value)
            else:
                future.set_result(value)


def _retrieve(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


@dataclass(frozen=True)
class Loaders:
    users: DataLoader[int, User | None]
    users_by_handle: DataLoader[str, User | None]
    tweets: DataLoader[int, Tweet | None]
    viewer_follows: DataLoader[int, bool]
    # tweet id -> its media, in order (services.media.MediaLibrary.for_tweets)
    tweet_media: DataLoader[int, tuple[Media, ...]]
    # The request's check of the read caches (storage/readcache.py); None without caches.
    fence: Fence | None = None

    async def tweets_many(self, ids: list[int]) -> list[Tweet | None]:
        """`tweets.load_many`, straight from the read caches when they hold every id."""
        return _held(self.fence, "tweets", ids) or await self.tweets.load_many(ids)

    async def users_many(self, ids: list[int]) -> list[User | None]:
        return _held(self.fence, "users", ids) or await self.users.load_many(ids)


def _held(fence: Fence | None, name: str, ids: list[int]) -> list | None:
    if fence is None or not fence.state or not ids:
        return None
    found, missing = getattr(fence.caches, name).get_many(ids)
    return None if missing else [found[i] for i in ids]


def make_loaders(services: Services, viewer_id: int | None) -> Loaders:
    """Loaders for one request; with read caches, only what they lack is loaded."""
    caches = services.caches
    fence = caches.fence() if caches is not None else None

    async def usable() -> ReadCaches | None:
        return await fence.usable() if fence is not None else None

    async def through(name: str, fetch, ids: list[int]) -> list:
        """What read cache `name` holds, the rest from `fetch`, kept for later requests."""
        if (c := await usable()) is None:
            found = await fetch(ids)
        else:
            memo = getattr(c, name)
            found, missing = memo.get_many(ids)
            if missing:
                generation = c.generation
                loaded = await fetch(missing)
                c.keep(memo, generation, loaded)
                found.update(loaded)
        return [found.get(i) for i in ids]

    async def load_users(ids: list[int]) -> list[User | None]:
        return await through("users", services.users.get_many, ids)

    async def load_by_handle(handles: list[str]) -> list[User | None]:
        # A malformed handle names no one; it never reaches the store (NUL fails in PostgreSQL).
        lowered = [h.lower() if validation.is_handle(h) else "" for h in handles]
        wanted = [h for h in lowered if h]
        if not wanted:
            return [None] * len(handles)
        if (c := await usable()) is None:
            found = await services.users.by_handles(wanted)
            return [found.get(h) for h in lowered]
        known, unknown = c.handles.get_many(wanted)
        users, missing = c.users.get_many(known.values())
        by_handle = {h: users[i] for h, i in known.items() if i in users}
        unknown += [h for h, i in known.items() if i in missing]
        if unknown:
            generation = c.generation
            loaded = await services.users.by_handles(unknown)
            c.keep(c.users, generation, {u.id: u for u in loaded.values()})
            for h, u in loaded.items():
                c.handles.put(h, u.id)  # a handle never changes hands
            by_handle.update(loaded)
        return [by_handle.get(h) for h in lowered]

    async def load_tweets(ids: list[int]) -> list[Tweet | None]:
        return await through("tweets", services.tweets.get_many, ids)

    async def load_follows(followees: list[int]) -> list[bool]:
        if viewer_id is None:
            return [False] * len(followees)
        if (c := await usable()) is None:
            found = await services.graph.following_ids_among(viewer_id, followees)
        else:
            found = (await services.feed.followed(viewer_id, c)).allowed
        return [f in found for f in followees]

    return Loaders(
        users=DataLoader(load_users),
        users_by_handle=DataLoader(load_by_handle),
        tweets=DataLoader(load_tweets),
        viewer_follows=DataLoader(load_follows),
        tweet_media=DataLoader(services.media.for_tweets),
        fence=fence,
    )
