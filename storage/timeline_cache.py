"""Capped lists of tweet ids in Redis, read newest first: home timelines and per-author recents.

Encoding (measured in docs/timelines.md): one Redis string per list holding 8-byte
big-endian tweet ids, OLDEST first. About 8 bytes per entry as written by a rebuild,
against ~20 for a listpack sorted set and 60+ once a sorted set outgrows its listpack; and
ids above 2**53 do not fit a sorted-set score exactly. Byte order equals numeric order, so
the Lua scripts below binary-search the string directly.

Oldest first because nearly every write is fan-out of a tweet newer than everything in the
list: it is one comparison with the last 8 bytes (GETRANGE) and an APPEND, instead of a GET
and a SET of the whole value (6.4 KB when full). Valkey CPU per list, microbenchmark of
1,000 keys per call on this shared 2-core box (three runs): 16-25 -> 5-8 us into a full
800-entry list, and a head read of 27 entries 24-32 -> 5.5-12.5 us per source (it fetches
only those entries). Numbers and method in docs/timelines.md.

Lists are trimmed lazily: a list may hold up to cap + slack entries (slack = cap // 4) before
an APPEND trims it to its newest cap. The LOGICAL list is always the newest min(n, cap)
stored entries, truncated if the sentinel is there or n > cap; every script reads only that.
Anything other than a newest insert (an older id, removes, merges) rewrites the value to
exactly its logical list. The price is memory: Valkey grows a string greedily on APPEND
(doubling its allocation), so a full list written by fan-out holds ~12.9 KB (16.1 bytes per
entry) until its next trim, against 6.5 KB (8.1) as rebuilt; the slack does not change that.

A leading all-zero entry is the truncation sentinel: the list was capped (or built from a
capped read), so nothing below its oldest real entry is known and reads must continue from
the tweet store. Without it, a capped list that later lost entries to deletes or unfollows
would pass for complete.

Every write is idempotent (insert skips a present id) so at-least-once fan-out is safe,
and writes only touch lists that exist: a missing list is rebuilt on its next read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError

from core.timeline import ENTRY_BYTES, NEWEST, pack, unpack
from storage import live

SENTINEL = bytes(ENTRY_BYTES)

# Shared Lua helpers: entries compared as two 32-bit halves (exact in Lua's doubles, and
# independent of the server's collation locale, which string comparison would not be).
_LIB = """
local Z = string.rep('\\0', 8)
local function half(s, p)
  local a, b, c, d = string.byte(s, p, p + 3)
  return ((a * 256 + b) * 256 + c) * 256 + d
end
-- -1, 0, 1 as the entry at byte offset p of s is less, equal, greater than entry t
local function cmp(s, p, t)
  local x, y = half(s, p), half(t, 1)
  if x ~= y then return x < y and -1 or 1 end
  x, y = half(s, p + 4), half(t, 5)
  if x ~= y then return x < y and -1 or 1 end
  return 0
end
-- The logical list of a stored value [Z] e1 < e2 < ... < en: its newest min(n, cap)
-- entries, truncated if the sentinel is there or n > cap. Returns the byte offset of its
-- oldest entry in v, its number of entries and whether it is truncated.
local function logical(v, cap)
  local s = 0
  if #v >= 8 and string.sub(v, 1, 8) == Z then s = 8 end
  local n = (#v - s) / 8
  if n > cap then return #v - cap * 8, cap, true end
  return s, n, s > 0
end
-- the first index in [lo, hi) of the ascending entries of v from byte offset off whose
-- entry compares to t at least lim (0: at or above t, 1: above t), or hi
local function search(v, off, lo, hi, t, lim)
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cmp(v, off + mid * 8 + 1, t) >= lim then hi = mid else lo = mid + 1 end
  end
  return lo
end
-- live notices: the hubs (API processes) holding a session of a changed list's owner,
-- from the owner's presence hash (hub id -> expiry ms), collected over the whole call and
-- published once per hub by flush (see storage/live.py)
local live_hubs, live_now = {}, nil
local function notify(key)
  local owner = string.match(key, '{(%d+)}')
  if not owner then return end
  local present = redis.call('HGETALL', 'chirp:live:{' .. owner .. '}:hubs')
  if #present == 0 then return end
  if not live_now then
    local t = redis.call('TIME')
    live_now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  for i = 1, #present, 2 do
    if tonumber(present[i + 1]) > live_now then
      local owners = live_hubs[present[i]]
      if not owners then owners = {}; live_hubs[present[i]] = owners end
      owners[#owners + 1] = owner
    end
  end
end
local function flush(kind, id)
  for hub, owners in pairs(live_hubs) do
    redis.call('PUBLISH', 'chirp:live:hub:' .. hub,
               kind .. ':' .. id .. ':' .. table.concat(owners, ','))
  end
end
"""

# KEYS: lists (one script call per fan-out page: one command, one reply, instead of a
# thousand of each); ARGV[1] id (8 bytes), ARGV[2] cap, ARGV[3] the id in decimal to tell
# live owners about ('' for none): one PUBLISH per hub holding any of the lists changed;
# ARGV[4] the entries a list may hold before it is trimmed (cap + slack).
# Returns lists inserted into.
_INSERT = _LIB + """
local id, cap = ARGV[1], tonumber(ARGV[2])
local limit = tonumber(ARGV[4]) * 8
-- an id below the newest entry (or into an empty list): rewrite the logical list with the
-- id in place, exactly capped
local function general(key)
  local v = redis.call('GET', key)
  local off, m, trunc = logical(v, cap)
  local q = search(v, off, 0, m, id, 0)  -- entries below id
  local at = off + q * 8
  if q < m and string.sub(v, at + 1, at + 8) == id then return 0 end
  -- below the oldest entry of a truncated list: other unknown entries may lie in between
  if trunc and q == 0 then return 0 end
  if m < cap then  -- then the value holds just the logical list
    v = string.sub(v, 1, at) .. id .. string.sub(v, at + 1)
  elseif q == 0 then  -- full, and the id is older than all of it: cut at once
    v = Z .. string.sub(v, off + 1)
  else  -- full: the oldest entry is cut
    v = Z .. string.sub(v, off + 9, at) .. id .. string.sub(v, at + 1)
  end
  redis.call('SET', key, v, 'KEEPTTL')
  return 1
end
local function one(key)
  local last = redis.call('GETRANGE', key, -8, -1)
  if last == '' then
    if redis.call('EXISTS', key) == 0 then return 0 end  -- rebuilt on its next read
  elseif last ~= Z then  -- (Z last: the sentinel alone, a truncated list with no entries)
    -- the common case, an id newer than every entry: one comparison and an APPEND; the
    -- list is trimmed to its logical form once it outgrows the cap by the slack
    local c = cmp(last, 1, id)
    if c == 0 then return 0 end
    if c < 0 then
      if redis.call('APPEND', key, id) > limit then
        redis.call('SET', key, Z .. redis.call('GETRANGE', key, -cap * 8, -1), 'KEEPTTL')
      end
      return 1
    end
  end
  return general(key)
end
local total = 0
for _, key in ipairs(KEYS) do
  local r = one(key)
  total = total + r
  if r > 0 and ARGV[3] ~= '' then notify(key) end
end
if ARGV[3] ~= '' then flush('a', ARGV[3]) end
return total
"""

# KEYS: lists; ARGV[1] packed ids to remove, ARGV[2] the deleted tweet's decimal id to tell
# live owners about ('' for none), published like inserts; ARGV[3] cap. Returns entries
# removed (from the logical lists; a changed list is rewritten to its logical form).
_REMOVE = _LIB + """
local cap = tonumber(ARGV[3])
local function one(key)
  local v = redis.call('GET', key)
  if not v then return 0 end
  local off, m, trunc = logical(v, cap)
  local out, removed
  if #ARGV[1] == 8 then  -- one id (a deleted tweet): found by search, not by a scan
    local id = ARGV[1]
    local at = off + search(v, off, 0, m, id, 0) * 8
    if at >= off + m * 8 or string.sub(v, at + 1, at + 8) ~= id then return 0 end
    out, removed = {string.sub(v, off + 1, at), string.sub(v, at + 9)}, 1
    if m == 1 then out = {} end
  else
    local doomed = {}
    for p = 1, #ARGV[1], 8 do doomed[string.sub(ARGV[1], p, p + 7)] = true end
    out, removed = {}, 0
    for p = off + 1, off + m * 8, 8 do
      local e = string.sub(v, p, p + 7)
      if doomed[e] then removed = removed + 1 else out[#out + 1] = e end
    end
    if removed == 0 then return 0 end
  end
  -- a truncated list emptied by removals no longer knows where it ends: rebuild it
  if trunc and #out == 0 then redis.call('DEL', key); return removed end
  redis.call('SET', key, (trunc and Z or '') .. table.concat(out), 'KEEPTTL')
  return removed
end
local total = 0
for _, key in ipairs(KEYS) do
  local r = one(key)
  total = total + r
  if r > 0 and ARGV[2] ~= '' then notify(key) end
end
if ARGV[2] ~= '' then flush('d', ARGV[2]) end
return total
"""

# KEYS: lists; ARGV[1] packed ids OLDEST first, ARGV[2] '1' if that list is itself
# truncated (more exist below its first entry), ARGV[3] cap, ARGV[4] ttl ms or '0' to keep.
# Keeps only what both sides know exactly: entries at or above the higher of the floors.
# Returns the number of lists that existed (and were merged into).
_MERGE = _LIB + """
local function one(key)
  local v = redis.call('GET', key)
  if not v then return -1 end
  local b, cap = ARGV[1], tonumber(ARGV[3])
  local aoff, an, atrunc = logical(v, cap)
  local bn, btrunc = #b / 8, ARGV[2] == '1'
  local floor = nil
  if atrunc and an > 0 then floor = string.sub(v, aoff + 1, aoff + 8) end
  if btrunc and bn > 0 and (not floor or cmp(b, 1, floor) > 0) then
    floor = string.sub(b, 1, 8)
  end
  local i, j = 0, 0
  if floor then i, j = search(v, aoff, 0, an, floor, 0), search(b, 0, 0, bn, floor, 0) end
  local out = {}
  while i < an or j < bn do
    local p = aoff + i * 8 + 1
    if j >= bn then out[#out + 1] = string.sub(v, p, p + 7); i = i + 1
    else
      local e = string.sub(b, j * 8 + 1, j * 8 + 8)
      local c = i < an and cmp(v, p, e) or 1
      if c < 0 then out[#out + 1] = string.sub(v, p, p + 7); i = i + 1
      else
        out[#out + 1] = e; j = j + 1
        if c == 0 then i = i + 1 end
      end
    end
  end
  -- the newest cap entries; truncated if either side was or anything was cut
  local first, trunc = 1, atrunc or btrunc
  if #out > cap then first, trunc = #out - cap + 1, true end
  local value = (trunc and Z or '') .. table.concat(out, '', first, #out)
  if ARGV[4] ~= '0' then
    redis.call('SET', key, value, 'PX', ARGV[4])
  else
    redis.call('SET', key, value, 'KEEPTTL')
  end
  return 1
end
local total = 0
for _, key in ipairs(KEYS) do
  local r = one(key)
  if r >= 0 then total = total + 1 end
end
return total
"""

# KEYS: pairs of list and its rebuild lock (a home timeline and the recents of the
# celebrities its owner follows, in one call: one command to pack and one reply to parse
# per home read, not one per source); ARGV[1] before (8 bytes, exclusive), ARGV[2] since
# (8 bytes, exclusive), ARGV[3] count, ARGV[4] ttl seconds for the first list ('0' = no
# renew), ARGV[4 + i] the cap of the i-th list. One reply per list: {0} missing, {1} being
# rebuilt, {2, bytes, reached}: the slice OLDEST first, and 1 if it reached the oldest
# entry of a truncated list (nothing is known below it) with fewer than count entries.
_READ = _LIB + """
local before, since, want = ARGV[1], ARGV[2], tonumber(ARGV[3])
-- the newest `want` entries of [lo, hi) (of v's ascending entries from byte offset off)
-- above since
local function window(v, off, lo, hi)
  local from = math.max(lo, hi - want)
  if from < hi and cmp(v, off + from * 8 + 1, since) <= 0 then
    from = search(v, off, from + 1, hi, since, 1)
  end
  return from
end
-- a read below the newest entry (paging): the whole value, searched
local function inside(list, cap)
  local v = redis.call('GET', list)
  local off, m, trunc = logical(v, cap)
  local hi = search(v, off, 0, m, before, 0)
  local from = window(v, off, 0, hi)
  local reached = (trunc and from == 0 and hi < want) and 1 or 0
  return {2, string.sub(v, off + from * 8 + 1, off + hi * 8), reached}
end
local function read(list, lock, ttl, cap)
  if redis.call('EXISTS', lock) == 1 then return {1} end
  -- the common read, from the head: only the newest entries leave the value (up to count,
  -- within the logical list), and one comparison tells they are all below before
  local w = math.max(1, math.min(want, cap))
  local t = redis.call('GETRANGE', list, -w * 8, -1)
  if t == '' and redis.call('EXISTS', list) == 0 then return {0} end
  if ttl ~= '0' then redis.call('EXPIRE', list, ttl) end
  local off, k = 0, #t / 8
  if k > 0 and string.sub(t, 1, 8) == Z then off, k = 8, k - 1 end  -- t is the whole list
  if k > 0 and cmp(t, off + k * 8 - 7, before) >= 0 then return inside(list, cap) end
  local from = window(t, off, 0, k)
  local reached = 0
  if from == 0 and k < want then
    -- t holds the whole logical list: truncated if it began with the sentinel, or if t
    -- was cut at the cap (k == cap) and the value holds more
    if off == 8 or (#t == w * 8 and redis.call('STRLEN', list) > #t) then reached = 1 end
  end
  return {2, string.sub(t, off + from * 8 + 1), reached}
end
local out = {}
for i = 1, #KEYS, 2 do
  out[#out + 1] = read(KEYS[i], KEYS[i + 1], i == 1 and ARGV[4] or '0',
                       tonumber(ARGV[4 + (i + 1) / 2]))
end
return out
"""

# KEYS[1] presence key; ARGV[1] channel, ARGV[2] payload: publish only if someone listens.
_NOTIFY = """
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('PUBLISH', ARGV[1], ARGV[2]) end
return 0
"""

# KEYS[1] list, KEYS[2] lock; ARGV[1] lock ms. 'exists', 'busy' or 'started'. The list is
# created empty with the lock's lifetime, so fan-out lands in it while the rebuild reads the
# store, and a rebuilder that dies leaves nothing behind once the lock expires.
_BEGIN = """
if redis.call('EXISTS', KEYS[1]) == 1 and redis.call('EXISTS', KEYS[2]) == 0 then
  return 'exists'
end
if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then return 'busy' end
redis.call('SET', KEYS[1], '', 'PX', ARGV[1])
return 'started'
"""


class ReadState(Enum):
    MISSING = 0
    BUILDING = 1
    OK = 2


@dataclass(frozen=True, slots=True)
class CachedSlice:
    state: ReadState
    ids: list[int]
    truncated: bool  # the read reached the sentinel: nothing known below ids[-1]


def slack(cap: int) -> int:
    """Entries a list may hold beyond its cap before an insert trims it (see the module
    docstring)."""
    return cap // 4


def _id8(i: int) -> bytes:
    return i.to_bytes(ENTRY_BYTES, "big")


class Script:
    """A Lua script called by SHA. redis-py's own Script objects send SCRIPT EXISTS before
    every pipeline that uses them: one extra round trip per timeline read. We load scripts
    once and reload only when Redis answers NOSCRIPT (after a restart or SCRIPT FLUSH)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


_SCRIPTS = {name: Script(src) for name, src in
            {"insert": _INSERT, "remove": _REMOVE, "merge": _MERGE, "read": _READ,
             "begin": _BEGIN, "notify": _NOTIFY, "present": live.PRESENT}.items()}


class TimelineCache:
    """One family of capped id lists under a key prefix (`tl` home, `ut` author recents)."""

    LOCK_MS = 10_000

    def __init__(
        self, redis: Redis, prefix: str, cap: int, ttl_seconds: int, live: bool = False
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.cap = cap
        self.ttl_seconds = ttl_seconds
        # Home timelines tell their owner's live subscriptions about inserts and deletes,
        # inside the same script call (no extra round trip, only for owners online).
        self.live = live

    def key(self, owner: int) -> str:
        # Braces are a cluster hash tag: a list and its lock share a slot.
        return f"{self.prefix}:{{{owner}}}"

    def lock_key(self, owner: int) -> str:
        return f"{self.prefix}:{{{owner}}}:rebuild"

    # -- running scripts: one round trip per batch, reloading scripts on NOSCRIPT

    async def run(self, build: Callable[[Pipeline], None], transaction: bool = False) -> list:
        """Queue commands with `build(pipe)` and send them in one round trip. Every script
        here is idempotent, so a batch is simply re-sent after reloading on NOSCRIPT."""
        for attempt in (1, 2):
            async with self.redis.pipeline(transaction=transaction) as pipe:
                build(pipe)
                try:
                    return await pipe.execute()
                except NoScriptError:
                    if attempt == 2:
                        raise
            await self.load_scripts()
        raise AssertionError("unreachable")

    async def load_scripts(self) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for script in _SCRIPTS.values():
                pipe.script_load(script.source)
            await pipe.execute()

    @staticmethod
    def call(pipe: Pipeline, name: str, keys: list[str], args: list) -> None:
        pipe.evalsha(_SCRIPTS[name].sha, len(keys), *keys, *args)

    async def _one(self, name: str, keys: list[str], args: list):
        (reply,) = await self.run(lambda pipe: self.call(pipe, name, keys, args))
        return reply

    # -- reads

    def queue_read(
        self, pipe: Pipeline, owner: int, before: int = NEWEST, since: int = 0, count: int = 20,
        renew: bool = False,
    ) -> None:
        """Queue a read on a batch shared with other commands; its reply is a list of one
        reply for `parse`."""
        queue_reads(pipe, [(self, owner)], before, since, count, renew)

    async def read(
        self, owner: int, before: int = NEWEST, since: int = 0, count: int = 20, renew: bool = True
    ) -> CachedSlice:
        (reply,) = await self.run(
            lambda pipe: self.queue_read(pipe, owner, before, since, count, renew)
        )
        return self.parse(reply[0])

    def parse(self, reply: list) -> CachedSlice:
        state, *rest = reply
        if state != ReadState.OK.value:
            return CachedSlice(ReadState(state), [], False)
        blob, reached = rest
        ids = unpack(blob)  # stored oldest first
        ids.reverse()
        return CachedSlice(ReadState.OK, ids, bool(reached))

    # -- writes (each touches only lists that exist)

    def _insert_args(self, tweet_id: int) -> list:
        return [_id8(tweet_id), self.cap, str(tweet_id) if self.live else "",
                self.cap + slack(self.cap)]

    def queue_insert(self, pipe: Pipeline, owner: int, tweet_id: int) -> None:
        self.call(pipe, "insert", [self.key(owner)], self._insert_args(tweet_id))

    async def insert(self, owner: int, tweet_id: int) -> bool:
        return bool(await self._one("insert", [self.key(owner)], self._insert_args(tweet_id)))

    # Many lists are written by one script call over all their keys: one command and one
    # reply per batch. Per-key calls in a pipeline cost the client a packed command and a
    # parsed reply each, which capped a fan-out worker at ~25k deliveries/s. (On Redis
    # Cluster a batch must first be split by hash slot.)

    async def insert_many(
        self, owners: list[int], tweet_id: int, count_into: str | None = None
    ) -> int:
        """Push one id into many lists in one round trip; returns lists inserted into.
        `count_into` names a counter to add the attempts to, in the same round trip."""
        if not owners:
            return 0
        keys = [self.key(o) for o in owners]

        def build(pipe: Pipeline) -> None:
            self.call(pipe, "insert", keys, self._insert_args(tweet_id))
            if count_into:
                pipe.incrby(count_into, len(owners))

        return (await self.run(build))[0]

    async def remove_many(
        self, owners: list[int], tweet_ids: list[int], deleted: bool = False
    ) -> int:
        """Remove ids from lists; `deleted` (one id) tells live owners it was deleted."""
        if not owners or not tweet_ids:
            return 0
        notice = str(tweet_ids[0]) if deleted and self.live and len(tweet_ids) == 1 else ""
        args = [pack(tweet_ids), notice, self.cap]
        return await self._one("remove", [self.key(o) for o in owners], args)

    async def merge(self, owner: int, ids: list[int], truncated: bool) -> bool:
        """Merge newest-first `ids` into an existing list; False if there is none."""
        return await self.merge_many([owner], ids, truncated) == 1

    async def merge_many(self, owners: list[int], ids: list[int], truncated: bool) -> int:
        """Returns how many of the lists existed and were merged into."""
        if not owners:
            return 0
        args = [pack(reversed(ids)), "1" if truncated else "0", self.cap, 0]
        return await self._one("merge", [self.key(o) for o in owners], args)

    def queue_notify(self, pipe: Pipeline, presence: str, channel: str, payload: str) -> None:
        """Queue a publish that happens only if `presence` exists (a session listens)."""
        self.call(pipe, "notify", [presence], [channel, payload])

    # -- rebuilds

    async def begin_rebuild(self, owner: int) -> str:
        reply = await self._one(
            "begin", [self.key(owner), self.lock_key(owner)], [self.LOCK_MS]
        )
        return reply.decode() if isinstance(reply, bytes) else reply

    async def finish_rebuild(self, owner: int, ids: list[int], truncated: bool) -> None:
        """Merge what the store returned with what fan-out pushed meanwhile, give the list
        its full TTL and release the lock, in one round trip."""
        args = [pack(reversed(ids)), "1" if truncated else "0", self.cap, self.ttl_seconds * 1000]

        def build(pipe: Pipeline) -> None:
            self.call(pipe, "merge", [self.key(owner)], args)
            pipe.delete(self.lock_key(owner))

        await self.run(build, transaction=True)

    async def abandon_rebuild(self, owner: int) -> None:
        await self.redis.delete(self.key(owner), self.lock_key(owner))

    async def drop(self, owner: int) -> None:
        await self.redis.delete(self.key(owner))


def queue_reads(
    pipe: Pipeline, sources: list[tuple[TimelineCache, int]], before: int, since: int,
    count: int, renew_first: bool = False,
) -> None:
    """Queue one script call reading the same window of several lists (any families);
    its reply holds one reply per source, in order, each for that cache's `parse`.
    `renew_first` gives the first list its cache's full TTL again."""
    keys: list[str] = []
    for cache, owner in sources:
        keys += (cache.key(owner), cache.lock_key(owner))
    ttl = sources[0][0].ttl_seconds if renew_first else 0
    caps = [cache.cap for cache, _ in sources]
    TimelineCache.call(pipe, "read", keys, [_id8(before), _id8(since), count, ttl, *caps])
