"""Which exceptions mean "a backend is unavailable" rather than "this request or event is
bad": the API answers those with UNAVAILABLE, and the fan-out worker retries them without
counting an attempt towards the dead-letter limit (an outage must not dead-letter events).
"""

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
