"""The event bus interface and its Redis Streams adapter (docs/modules.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from core.models import Event
from storage import keys

STREAM = keys.EVENTS
DEAD = keys.EVENTS_DEAD
GROUP = "fanout"


@dataclass(frozen=True, slots=True)
class Delivery:
    message_id: str
    event: Event
    attempts: int  # 1 on first delivery


class EventBus(Protocol):
    async def publish(self, events: list[Event]) -> None: ...
    async def receive(self, consumer: str, count: int, block_ms: int) -> list[Delivery]: ...
    async def ack(self, deliveries: list[Delivery]) -> None: ...
    async def dead_letter(self, delivery: Delivery, error: str) -> None: ...
    async def dead(self, count: int = 100) -> list[tuple[str, Event, str]]: ...
    async def replay_dead(self) -> int: ...
    async def lag(self) -> int: ...
    async def dead_count(self) -> int:
        """Dead letters not yet replayed."""
    async def ping(self) -> None:
        """Raise if the bus cannot answer (for /readyz)."""
    async def release(self) -> None:
        """Stop consuming until the next receive (Kafka: leave the group)."""
    async def close(self) -> None: ...


def encode_fields(event: Event) -> dict[str, str]:
    """An event as flat string fields (a stream entry; Kafka sends them as JSON)."""
    fields = {"k": event.kind, "t": str(event.tweet_id), "a": str(event.author_id)}
    if event.text is not None:
        fields["x"] = event.text
    if event.span is not None:
        fields["s"] = f"{event.span[0]}:{event.span[1]}"
    return fields


def decode_fields(fields: dict) -> Event:
    f = {_s(k): _s(v) for k, v in fields.items()}
    span = None
    if "s" in f:
        floor, before = f["s"].split(":")
        span = (int(floor), int(before))
    return Event(f["k"], int(f["t"]), int(f["a"]), f.get("x"), span)


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


class RedisStreamBus:
    def __init__(self, redis: Redis, claim_idle_ms: int = 30_000) -> None:
        self.redis = redis
        self.claim_idle_ms = claim_idle_ms
        self._group_ready = False

    async def ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self.redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
        self._group_ready = True

    async def publish(self, events: list[Event]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.xadd(STREAM, encode_fields(event))
            await pipe.execute()

    async def receive(self, consumer: str, count: int, block_ms: int) -> list[Delivery]:
        try:
            return await self._receive(consumer, count, block_ms)
        except ResponseError as e:
            if "NOGROUP" not in str(e):
                raise
            # Redis lost its data: recreate the group (the timelines are rebuilt on read).
            self._group_ready = False
            return await self._receive(consumer, count, block_ms)

    async def _receive(self, consumer: str, count: int, block_ms: int) -> list[Delivery]:
        await self.ensure_group()
        reclaimed = await self._reclaim(consumer, count)
        if reclaimed:
            return reclaimed
        reply = await self.redis.xreadgroup(
            GROUP, consumer, {STREAM: ">"}, count=count, block=block_ms
        )
        return [
            Delivery(_s(mid), decode_fields(fields), 1)
            for _stream, messages in reply or []
            for mid, fields in messages
        ]

    async def _reclaim(self, consumer: str, count: int) -> list[Delivery]:
        """Take over events another consumer received but never acknowledged (it died)."""
        pending = await self.redis.xpending_range(
            STREAM, GROUP, min="-", max="+", count=count, idle=self.claim_idle_ms
        )
        if not pending:
            return []
        attempts = {_s(p["message_id"]): p["times_delivered"] + 1 for p in pending}
        claimed = await self.redis.xclaim(
            STREAM, GROUP, consumer, self.claim_idle_ms, list(attempts)
        )
        out = []
        for mid, fields in claimed:
            if fields is None:
                continue
            out.append(Delivery(_s(mid), decode_fields(fields), attempts.get(_s(mid), 2)))
        return out

    async def ack(self, deliveries: list[Delivery]) -> None:
        if not deliveries:
            return
        ids = [d.message_id for d in deliveries]
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(STREAM, GROUP, *ids)
            pipe.xdel(STREAM, *ids)
            await pipe.execute()

    async def dead_letter(self, delivery: Delivery, error: str) -> None:
        fields = encode_fields(delivery.event) | {
            "error": error[:2000], "attempts": str(delivery.attempts), "origin": delivery.message_id
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(DEAD, fields)
            pipe.xack(STREAM, GROUP, delivery.message_id)
            pipe.xdel(STREAM, delivery.message_id)
            await pipe.execute()

    async def dead(self, count: int = 100) -> list[tuple[str, Event, str]]:
        rows = await self.redis.xrange(DEAD, count=count)
        out = []
        for mid, fields in rows:
            f = {_s(k): v for k, v in fields.items()}
            out.append((_s(mid), decode_fields(fields), _s(f.get("error", b""))))
        return out

    async def replay_dead(self) -> int:
        replayed = 0
        while rows := await self.redis.xrange(DEAD, count=500):
            async with self.redis.pipeline(transaction=True) as pipe:
                for mid, fields in rows:
                    pipe.xadd(STREAM, encode_fields(decode_fields(fields)))
                    pipe.xdel(DEAD, mid)
                await pipe.execute()
            replayed += len(rows)
        return replayed

    async def lag(self) -> int:
        """Events not yet acknowledged: waiting plus in flight."""
        await self.ensure_group()
        return await self.redis.xlen(STREAM)

    async def dead_count(self) -> int:
        return await self.redis.xlen(DEAD)

    async def ping(self) -> None:
        await self.redis.ping()

    async def release(self) -> None:
        """Nothing is held between calls: pending events are claimed by idle time."""

    async def close(self) -> None:
        """The Redis client belongs to the caller."""
