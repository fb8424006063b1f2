"""Persisted queries: APQ and trusted documents (docs/modules.md)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections import OrderedDict
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.errors import BadInput, PersistedQueryNotFound
from runtime.settings import Settings
from storage import keys

RETENTION_S = 7 * 24 * 3600
LOCAL_MAX = 2048  # texts kept in the process (each bounded by CHIRP_MAX_QUERY_BYTES)
_HASH = re.compile(r"[0-9a-f]{64}")


def sha256(query: str) -> str:
    return hashlib.sha256(query.encode("utf-8", "surrogatepass")).hexdigest()


def trusted_texts(settings: Settings) -> dict[str, str] | None:
    """hash -> text of CHIRP_TRUSTED_DOCUMENTS (a manifest, map or list); hashes recomputed."""
    if settings.trusted_documents is None:
        return None
    data = json.loads(settings.trusted_documents.read_text())
    if isinstance(data, dict) and isinstance(data.get("operations"), list):
        texts = [op["body"] for op in data["operations"]]
    elif isinstance(data, dict):
        texts = list(data.values())
    else:
        texts = list(data)
    return {sha256(t): t for t in texts}


class PersistedQueries:
    def __init__(self, redis: Redis, trusted: dict[str, str] | None) -> None:
        self.redis = redis
        self.trusted = trusted
        self._local: OrderedDict[str, str] = OrderedDict()

    async def resolve(self, persisted: Any, query: Any) -> str:
        """The query text a request names; PersistedQueryNotFound or BadInput."""
        if not isinstance(persisted, dict) or persisted.get("version") != 1 \
                or not isinstance(persisted.get("sha256Hash"), str) \
                or not _HASH.fullmatch(persisted["sha256Hash"]):
            raise BadInput("extensions.persistedQuery must be "
                           '{"version": 1, "sha256Hash": "<64 hex digits>"}')
        digest = persisted["sha256Hash"]
        if isinstance(query, str):
            if sha256(query) != digest:
                raise BadInput("persistedQuery.sha256Hash is not the hash of the query")
            if self.trusted is None:
                await self._register(digest, query)
            return query
        if query is not None:
            raise BadInput("query must be a string")
        if self.trusted is not None:
            found = self.trusted.get(digest)
        else:
            found = self._local.get(digest)
            if found is None:
                try:
                    raw = await self.redis.get(keys.persisted_query(digest))
                except RedisError:
                    raw = None
                if raw is not None:
                    found = raw.decode()
                    self._remember(digest, found)
        if found is None:
            raise PersistedQueryNotFound("PersistedQueryNotFound")
        return found

    async def _register(self, digest: str, query: str) -> None:
        if digest in self._local:
            return
        self._remember(digest, query)
        # On failure the client resends the text if another process does not know it.
        with contextlib.suppress(RedisError):
            await self.redis.set(keys.persisted_query(digest), query, ex=RETENTION_S)

    def _remember(self, digest: str, query: str) -> None:
        self._local[digest] = query
        if len(self._local) > LOCAL_MAX:
            self._local.popitem(last=False)
