"""The fan-out worker: relays the outbox to the event bus and applies bus events through
the FeedManager; it also sweeps media (deleted tweets' leftovers, uploads never attached
within CHIRP_MEDIA_ORPHAN_HOURS). Run as its own process: `python -m workers.fanout`.

At-least-once: an event is acknowledged only after FeedManager.apply returns, and every
apply is idempotent, so a worker killed mid-fan-out is finished by whoever claims the
event next. An event failing MAX_ATTEMPTS times goes to the dead-letter stream, unless it
failed because a backend is down: that is retried until the backend is back. A timeout
while every backend answers its readiness probe is the event's own fault (too slow to
apply): it is retried CHIRP_WORKER_TIMEOUT_RETRIES times, then dead-lettered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket

import asyncpg
from redis.exceptions import RedisError

from core.errors import ChirpError
from runtime import logscrub
from runtime.container import Services, open_services
from runtime.failures import is_timeout, is_transient
from runtime.settings import load
from storage import outbox
from storage.eventbus import Delivery
from workers import archive

log = logging.getLogger("chirp.worker")

MAX_ATTEMPTS = 5
BATCH = 32
MEDIA_SWEEP_EVERY_S = 300.0


async def relay_outbox(services: Services, stop: asyncio.Event) -> None:
    """Move committed events from PostgreSQL to the bus; woken by NOTIFY, polling as a
    safety net. If the bus is down, events wait in the outbox and go when it returns."""
    wake = asyncio.Event()
    listener: asyncpg.Connection | None = None
    while not stop.is_set():
        try:
            if listener is None or listener.is_closed():
                listener = await asyncpg.connect(services.settings.postgres_url)
                await listener.add_listener(outbox.CHANNEL, lambda *_: wake.set())
            while await outbox.relay_batch(services.pool, services.bus.publish):
                pass
        except Exception as e:  # bus or database down: keep the events, try again soon
            log.warning("outbox relay paused: %s", e)
            listener = None
            await _sleep(stop, 1.0)
            continue
        wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), 1.0)
    if listener is not None:
        await listener.close()


async def consume(services: Services, consumer: str, stop: asyncio.Event) -> None:
    # Fault injection for tests: die after applying a batch, before acknowledging it.
    exit_before_ack = services.settings.fault_exit_before_ack
    while not stop.is_set():
        try:
            deliveries = await services.bus.receive(consumer, BATCH, block_ms=1000)
        except Exception as e:
            log.warning("event bus unavailable: %s", e)
            await _sleep(stop, 1.0)
            continue
        if not deliveries:
            continue
        results = await asyncio.gather(*(_apply(services, d) for d in deliveries))
        done = [d for d, ok in zip(deliveries, results, strict=True) if ok]
        if exit_before_ack and done:
            log.warning("fault injection: exiting before acknowledging %d events", len(done))
            os._exit(70)
        try:
            await services.bus.ack(done)
        except Exception as e:  # unacked events are redelivered; applying is idempotent
            log.warning("ack failed, events will be redelivered: %s", e)


async def sweep_media(services: Services, stop: asyncio.Event) -> None:
    """At start and every MEDIA_SWEEP_EVERY_S; several workers may sweep at once (a row
    is removed by whoever locks it first)."""
    while not stop.is_set():
        try:
            removed = await services.media.sweep()
            if removed:
                log.info("media sweep removed %d", removed)
        except Exception as e:  # a backend down: the next round retries
            log.warning("media sweep failed: %s", e)
        await _sleep(stop, MEDIA_SWEEP_EVERY_S)


async def _apply(services: Services, delivery: Delivery) -> bool:
    try:
        # With the bus to publish to, a big fan-out is split into chunks the group shares.
        await services.feed.apply(delivery.event, services.bus.publish)
        return True
    except Exception as e:
        log.warning("event %s failed (attempt %d): %r", delivery.message_id, delivery.attempts, e)
        if is_timeout(e) and delivery.attempts > services.settings.worker_timeout_retries \
                and await backends_up(services):
            with contextlib.suppress(Exception):
                await services.bus.dead_letter(delivery, f"timed out {delivery.attempts} "
                                                         f"times while backends were up: {e!r}")
            return False
        if is_transient(e):
            return False  # a backend is down: retried (with backoff) until it is back
        if delivery.attempts >= MAX_ATTEMPTS:
            with contextlib.suppress(Exception):
                await services.bus.dead_letter(delivery, repr(e))
        return False


async def backends_up(services: Services) -> bool:
    """Every backend in use answers its readiness probe within a second."""
    async def probe(check) -> bool:
        try:
            await asyncio.wait_for(check(), 1.0)
        except Exception:
            return False
        return True

    return all(await asyncio.gather(*(probe(c) for c in services.probes().values())))


async def archive_daily(services: Services, stop: asyncio.Event) -> None:
    """Run the archive once every CHIRP_ARCHIVE_INTERVAL_HOURS across all workers: each
    checks hourly whether the last run is that old; one holds the lock, the others skip."""
    hours = services.settings.archive_interval_hours
    if not hours:
        return
    while not stop.is_set():
        try:
            due = await services.pool.fetchval(
                "SELECT last_run_at IS NULL OR last_run_at < now() - make_interval(hours => $1)"
                " FROM archive_totals", hours,
            )
            if due:
                cutoff = archive.cutoff_for(services.settings.archive_after_days * 86400)
                summary = await archive.run(services.pool, services.live_tweets,
                                            services.archive, cutoff, wait=False)
                log.info("archive run: %s", summary)
        except Exception as e:  # retried at the next check
            log.warning("archive run failed: %r", e)
        await _sleep(stop, min(3600, hours * 3600))


PURGE_EVERY_S = 3600


async def purge_keys(services: Services, stop: asyncio.Event) -> None:
    """Idempotency keys past their retention, hourly (a reused expired key is also
    forgotten on the spot, so this only keeps the table small)."""
    while not stop.is_set():
        try:
            purged = await services.tweeting.purge_keys()
            if purged:
                log.info("purged %d expired idempotency keys", purged)
        except Exception as e:
            log.warning("idempotency key purge failed: %s", e)
        await _sleep(stop, PURGE_EVERY_S)


def demote_every_s(quiet_seconds: int) -> float:
    """How often the demotion sweep runs: a few times per quiet period, at most a minute
    apart (a demotion then lands within the quiet period plus this)."""
    return min(60.0, max(1.0, quiet_seconds / 4))


async def demote_celebrities(services: Services, stop: asyncio.Event) -> None:
    """Celebrities whose count stayed under the lower bound for the quiet period lose
    the flag, each with one AUTHOR_DEMOTED event (services/social.py)."""
    every = demote_every_s(services.settings.celebrity_demote_quiet_seconds)
    while not stop.is_set():
        try:
            demoted = await services.social.demote_due()
            if demoted:
                log.info("demoted %d celebrities", len(demoted))
        except Exception as e:
            log.warning("celebrity demotion sweep failed: %s", e)
        await _sleep(stop, every)


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def run(consumer: str | None = None) -> None:
    settings = load()
    claim_idle = settings.worker_claim_idle_ms
    consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # A backend down at start-up is waited for, not fatal: the worker then recovers with
    # the rest of the system instead of needing a supervisor to restart it.
    delay = 0.5
    while True:
        try:
            services = await open_services(settings, claim_idle_ms=claim_idle)
            break
        except (ChirpError, OSError, asyncpg.PostgresError, RedisError) as e:
            log.warning("fan-out worker waiting for its backends: %s", e)
            await _sleep(stop, delay)
            delay = min(delay * 2, 5.0)
            if stop.is_set():
                return
    log.info("fan-out worker %s started", consumer)
    try:
        await asyncio.gather(relay_outbox(services, stop), consume(services, consumer, stop),
                             purge_keys(services, stop), sweep_media(services, stop),
                             archive_daily(services, stop), demote_celebrities(services, stop))
    finally:
        await services.close()
        log.info("fan-out worker %s stopped", consumer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--consumer", help="consumer name (default host-pid)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logscrub.install()
    asyncio.run(run(args.consumer))


if __name__ == "__main__":
    main()
