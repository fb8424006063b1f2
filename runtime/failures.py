"""Which exceptions mean "a backend is unavailable": UNAVAILABLE to clients, and retried by
the worker without counting towards the dead-letter limit."""

from __future__ import annotations

import asyncio

import asyncpg
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from redis.exceptions import RedisError

from core.errors import Unavailable

TRANSIENT: tuple[type[BaseException], ...] = (
    Unavailable,  # adapters translate their drivers' outage errors to this
    RedisError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    ConnectionError,
    TimeoutError,
    asyncio.TimeoutError,
    OSError,
    KafkaConnectionError,
    KafkaTimeoutError,
)


def is_transient(error: BaseException) -> bool:
    return isinstance(error, TRANSIENT)


def is_timeout(error: BaseException) -> bool:
    """A timeout (not a refused or dropped connection): the backend may be fine and the
    work itself too slow, so a worker retries it a bounded number of times."""
    import redis.exceptions

    return isinstance(error, TimeoutError | asyncio.TimeoutError | KafkaTimeoutError
                      | redis.exceptions.TimeoutError)
