"""Per-request DataLoaders: every user, tweet or follow-edge lookup in one GraphQL
request is batched into one query per kind, whatever the shape of the query."""

from __future__ import annotations

from dataclasses import dataclass

from strawberry.dataloader import DataLoader

from core.models import Tweet, User
from runtime.container import Services


@dataclass(frozen=True)
class Loaders:
    users: DataLoader[int, User | None]
    users_by_handle: DataLoader[str, User | None]
    tweets: DataLoader[int, Tweet | None]
    viewer_follows: DataLoader[int, bool]


def make_loaders(services: Services, viewer_id: int | None) -> Loaders:
    async def load_users(ids: list[int]) -> list[User | None]:
        found = await services.users.get_many(ids)
        return [found.get(i) for i in ids]

    async def load_by_handle(handles: list[str]) -> list[User | None]:
        found = await services.users.by_handles(handles)
        return [found.get(h.lower()) for h in handles]

    async def load_tweets(ids: list[int]) -> list[Tweet | None]:
        found = await services.tweets.get_many(ids)
        return [found.get(i) for i in ids]

    async def load_follows(followees: list[int]) -> list[bool]:
        if viewer_id is None:
            return [False] * len(followees)
        found = await services.graph.following_ids_among(viewer_id, followees)
        return [f in found for f in followees]

    return Loaders(
        users=DataLoader(load_users),
        users_by_handle=DataLoader(load_by_handle),
        tweets=DataLoader(load_tweets),
        viewer_follows=DataLoader(load_follows),
    )
