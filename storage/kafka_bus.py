"""The event bus on Apache Kafka, the Redis Streams bus's contract (docs/modules.md)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from core.models import Event
from storage.eventbus import Delivery, decode_fields, encode_fields

log = logging.getLogger(__name__)

GROUP = "fanout"  # suffix: the group is "<topic>.fanout", so two topics never share one
FIRST_RETRY_MS = 250
JOIN_WAIT_S = 10.0


def parse_url(url: str) -> str:
    """`kafka://host:9092,host2:9092` → the bootstrap list aiokafka takes."""
    servers = url.removeprefix("kafka://").strip("/")
    if not servers:
        raise ValueError(f"{url!r} names no Kafka broker")
    return servers


def _message_id(tp: TopicPartition, offset: int) -> str:
    return f"{tp.partition}:{offset}"


def _encode(event: Event) -> bytes:
    return orjson.dumps(encode_fields(event))


def _decode(value: bytes) -> Event:
    return decode_fields(orjson.loads(value))


@dataclass
class _Partition:
    """What this consumer holds of one partition: received offsets not yet done."""

    open: set[int] = field(default_factory=set)
    done: set[int] = field(default_factory=set)

    def committable(self) -> int | None:
        """The offset to commit (past all done below any open one), or None."""
        if not self.done:
            return None
        pending = self.open - self.done
        floor = min(pending) if pending else max(self.done) + 1
        finished = {o for o in self.done if o < floor}
        if not finished:
            return None
        self.open -= finished
        self.done -= finished
        return floor


async def _partitions(admin: AIOKafkaAdminClient, topic: str) -> list[TopicPartition]:
    """A topic's partitions (an unsubscribed consumer's metadata does not list them)."""
    (described,) = await admin.describe_topics([topic])
    return [TopicPartition(topic, p["partition"]) for p in described.get("partitions", ())]


class _Listener(ConsumerRebalanceListener):
    def __init__(self, bus: KafkaBus) -> None:
        self.bus = bus

    async def on_partitions_revoked(self, revoked) -> None:
        await self.bus._commit_done()
        for tp in revoked:
            self.bus._forget(tp)

    async def on_partitions_assigned(self, assigned) -> None:
        self.bus._joined.set()


class KafkaBus:
    def __init__(
        self,
        bootstrap: str,
        topic: str = "chirp.events",
        partitions: int = 12,
        claim_idle_ms: int = 30_000,
        group: str | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.dead_topic = f"{topic}.dead"
        self.partitions = partitions
        self.claim_idle_ms = claim_idle_ms
        # One group per topic: another topic's rebalance must not pause this one.
        self.group = group or f"{topic}.{GROUP}"
        self.replay_group = f"{self.group}.replay"
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._topics_ready = False
        self._held: dict[TopicPartition, _Partition] = defaultdict(_Partition)
        self._outstanding: dict[str, tuple[TopicPartition, int, Delivery]] = {}
        self._retry: list[tuple[float, TopicPartition, int, Delivery]] = []
        self._lock = asyncio.Lock()
        self._watch: tuple[AIOKafkaAdminClient, AIOKafkaConsumer] | None = None
        self._joined = asyncio.Event()

    async def ensure_topics(self) -> None:
        if self._topics_ready:
            return
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            wanted = [
                NewTopic(name, self.partitions, 1)
                for name in (self.topic, self.dead_topic)
                if name not in existing
            ]
            if wanted:
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(wanted)
        finally:
            await admin.close()
        self._topics_ready = True

    async def _producer_started(self) -> AIOKafkaProducer:
        if self._producer is None:
            await self.ensure_topics()
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap,
                enable_idempotence=True,
                acks="all",
                linger_ms=2,
                request_timeout_ms=5000,
            )
            await producer.start()
            self._producer = producer
        return self._producer

    async def _consumer_started(self, consumer: str) -> AIOKafkaConsumer:
        if self._consumer is None:
            await self.ensure_topics()
            self._joined = asyncio.Event()
            c = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap,
                group_id=self.group,
                client_id=consumer,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                isolation_level="read_committed",
                # A fan-out batch may take seconds; the group must not evict us meanwhile.
                max_poll_interval_ms=300_000,
                session_timeout_ms=10_000,
                heartbeat_interval_ms=1_000,
            )
            c.subscribe([self.topic], listener=_Listener(self))
            await c.start()
            self._consumer = c
            # Until the group is joined a fetch returns nothing, not "no events".
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._joined.wait(), JOIN_WAIT_S)
        return self._consumer

    async def publish(self, events: list[Event]) -> None:
        if not events:
            return
        producer = await self._producer_started()
        try:
            sent = [
                await producer.send(self.topic, _encode(e), key=e.key) for e in events
            ]
            await asyncio.gather(*sent)
        except BaseException:
            # A failed send leaves the idempotent producer's sequence suspect: a fresh one.
            self._producer = None
            with contextlib.suppress(Exception):
                await producer.stop()
            raise

    async def receive(self, consumer: str, count: int, block_ms: int) -> list[Delivery]:
        async with self._lock:
            self._fail_unacked()
            due = self._due_retries(count)
            if due:
                return due
            c = await self._consumer_started(consumer)
            wait = block_ms
            if self._retry:
                wait = max(0, min(block_ms, int((self._retry[0][0] - time.monotonic()) * 1000)))
            batches = await c.getmany(timeout_ms=wait, max_records=count)
            out: list[Delivery] = []
            for tp, records in batches.items():
                held = self._held[tp]
                for r in records:
                    d = Delivery(_message_id(tp, r.offset), _decode(r.value), 1)
                    held.open.add(r.offset)
                    self._outstanding[d.message_id] = (tp, r.offset, d)
                    out.append(d)
            return out or self._due_retries(count)

    def _fail_unacked(self) -> None:
        """Deliveries handed out by the previous receive and not acknowledged failed."""
        now = time.monotonic()
        for tp, offset, d in self._outstanding.values():
            backoff = min(self.claim_idle_ms, FIRST_RETRY_MS * 2 ** (d.attempts - 1))
            self._retry.append(
                (now + backoff / 1000, tp, offset, Delivery(d.message_id, d.event, d.attempts + 1))
            )
        self._outstanding.clear()
        self._retry.sort(key=lambda r: r[0])

    def _due_retries(self, count: int) -> list[Delivery]:
        now = time.monotonic()
        out = []
        while self._retry and self._retry[0][0] <= now and len(out) < count:
            _due, tp, offset, d = self._retry.pop(0)
            self._outstanding[d.message_id] = (tp, offset, d)
            out.append(d)
        return out

    async def ack(self, deliveries: list[Delivery]) -> None:
        for d in deliveries:
            held = self._outstanding.pop(d.message_id, None)
            if held is not None:
                tp, offset, _ = held
                if tp in self._held:
                    self._held[tp].done.add(offset)
        await self._commit_done()

    async def _commit_done(self) -> None:
        if self._consumer is None:
            return
        offsets = {}
        for tp, held in self._held.items():
            upto = held.committable()
            if upto is not None:
                offsets[tp] = upto
        if offsets:
            await self._consumer.commit(offsets)

    def _forget(self, tp: TopicPartition) -> None:
        """A partition moved to another consumer: it redelivers what we had not committed."""
        self._held.pop(tp, None)
        self._outstanding = {k: v for k, v in self._outstanding.items() if v[0] != tp}
        self._retry = [r for r in self._retry if r[1] != tp]

    async def dead_letter(self, delivery: Delivery, error: str) -> None:
        producer = await self._producer_started()
        headers = [
            ("error", error[:2000].encode()),
            ("attempts", str(delivery.attempts).encode()),
            ("origin", delivery.message_id.encode()),
        ]
        await producer.send_and_wait(
            self.dead_topic, _encode(delivery.event), key=delivery.event.key, headers=headers
        )
        await self.ack([delivery])

    async def dead(self, count: int = 100) -> list[tuple[str, Event, str]]:
        """The oldest dead letters still in the topic (listing never moves the replay)."""
        await self.ensure_topics()
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
        c = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await admin.start()
        await c.start()
        try:
            parts = await _partitions(admin, self.dead_topic)
            c.assign(parts)
            await c.seek_to_beginning(*parts)
            ends = await c.end_offsets(parts)
            out: list[tuple[str, Event, str]] = []
            for tp in parts:
                while len(out) < count and await c.position(tp) < ends[tp]:
                    got = await c.getmany(tp, timeout_ms=1000, max_records=count - len(out))
                    for r in got.get(tp, []):
                        error = dict(r.headers).get("error", b"").decode()
                        out.append((_message_id(tp, r.offset), _decode(r.value), error))
            return out
        finally:
            await c.stop()
            await admin.close()

    async def replay_dead(self) -> int:
        """Send every dead letter not replayed before back to the main topic."""
        producer = await self._producer_started()
        c = AIOKafkaConsumer(
            self.dead_topic, bootstrap_servers=self.bootstrap, group_id=self.replay_group,
            enable_auto_commit=False, auto_offset_reset="earliest",
        )
        await c.start()
        replayed = 0
        try:
            while True:
                got = await c.getmany(timeout_ms=2000, max_records=500)
                if not got:
                    return replayed
                for records in got.values():
                    for r in records:
                        event = _decode(r.value)
                        await producer.send_and_wait(self.topic, r.value, key=event.key)
                        replayed += 1
                await c.commit()
        finally:
            await c.stop()

    async def lag(self) -> int:
        """Events published but not yet committed by the fan-out group (for /metrics)."""
        return await self._behind(self.topic, self.group)

    async def dead_count(self) -> int:
        return await self._behind(self.dead_topic, self.replay_group)

    async def ping(self) -> None:
        await self.lag()

    async def _behind(self, topic: str, group: str) -> int:
        """Messages in `topic` that `group` has not committed."""
        await self.ensure_topics()
        if self._watch is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
            c = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
            await admin.start()
            await c.start()
            self._watch = (admin, c)
        admin, c = self._watch
        try:
            committed = await admin.list_consumer_group_offsets(group)
            parts = await _partitions(admin, topic)
            if not parts:
                return 0
            ends = await c.end_offsets(parts)
            starts = await c.beginning_offsets(parts)
        except BaseException:
            await self._close_watch()
            raise
        total = 0
        for tp, end in ends.items():
            at = committed.get(tp)
            total += end - (at.offset if at is not None and at.offset >= 0 else starts[tp])
        return total

    async def _close_watch(self) -> None:
        if self._watch is not None:
            admin, c = self._watch
            self._watch = None
            with contextlib.suppress(Exception):
                await c.stop()
            with contextlib.suppress(Exception):
                await admin.close()

    async def release(self) -> None:
        """Leave the group, committing what is done; the rest is redelivered."""
        async with self._lock:
            if self._consumer is not None:
                with contextlib.suppress(Exception):
                    await self._commit_done()
                consumer, self._consumer = self._consumer, None
                await consumer.stop()
            self._held.clear()
            self._outstanding.clear()
            self._retry.clear()

    async def close(self) -> None:
        await self._close_watch()
        await self.release()
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
