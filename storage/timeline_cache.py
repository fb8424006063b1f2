"""Capped, newest-first lists of tweet ids in Redis: home timelines and per-author recents.

Encoding (measured in docs/timelines.md): one Redis string per list holding 8-byte
big-endian tweet ids, newest first. About 8 bytes per entry, against ~20 for a listpack
sorted set and 60+ once a sorted set outgrows its listpack; and ids above 2**53 do not fit
a sorted-set score exactly. Byte order equals numeric order, so the Lua scripts below
binary-search the string directly.

A trailing all-zero entry is the truncation sentinel: the list was capped (or built from
a capped read), so nothing below its last real entry is known and reads must continue from
the tweet store. Without it, a capped list that later lost entries to deletes or unfollows
would pass for complete.

Free slots in front of a full list. Redis cannot prepend, and rewriting a full list (6.4 KB)
for every new head was most of fan-out's cost. So when a new head reaches a full list, the
list is rewritten once with 15 free slots (all-255 bytes, which sort above every id) before
its entries; each later new head is written into the last free slot, and the entry that
falls off the cap is overwritten with zeros, becoming padding after the sentinel: 16 bytes
written in place, the string never grown (Redis grows strings greedily when appended to).
When the free slots run out, or anything other than a new head arrives, the list is
rewritten plain. Reads see the same entries either way: a head read skips the free slots
(one `string.find`), a search passes them (they sort first), and the first zero entry ends
the list. Measured in docs/timelines.md (`python -m bench.timeline_scripts`): Valkey CPU
per delivery into full lists 28 -> 17 us, +1.5 % memory.

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
from storage import keys, notices

SENTINEL = bytes(ENTRY_BYTES)

# Shared Lua helpers: entries compared as two 32-bit halves (exact in Lua's doubles, and
# independent of the server's collation locale, which string comparison would not be).
_LIB = """
local Z = '\\0\\0\\0\\0\\0\\0\\0\\0'
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
-- number of real entries and whether the list is truncated: a list ends at its first
-- all-zero entry, the sentinel (a full list may carry more after it, as padding)
local function shape(v)
  local n = #v / 8
  if n == 0 or string.sub(v, -8) ~= Z then return n, false end
  n = n - 1
  while n > 0 and string.sub(v, n * 8 - 7, n * 8) == Z do n = n - 1 end
  return n, true
end
-- A full list keeps free slots in front of its entries (see the module docstring), so
-- a new head is written in place: GAP - 1 of them when it is rewritten, one used per new
-- head, the oldest entry becoming padding after the sentinel each time. A free slot is
-- eight 255 bytes (no entry starts so: ids are below 2**63), except that the first, used
-- last, ends in the list's cap (3 bytes, big-endian): the cap decides which entry is the
-- oldest, and a list written under another cap is rewritten instead.
local GAP = 16
-- the number of free slots at the front of t (a value, or a prefix of GAP slots or more):
-- one pattern search in C, as a search in Lua cost a read a microsecond
local function free_count(t)
  if string.byte(t, 1) ~= 255 then return 0 end
  return (string.find(t, '[^\\255]', 9) - 1) / 8
end
-- index (0-based) of the first entry strictly below t, among the first n entries
local function first_below(v, n, t)
  -- the common case, a new id or a read from the head, without the search: each cmp is
  -- two string.byte calls, and ten of them were half of a fan-out insert's cost
  if n == 0 or cmp(v, 1, t) < 0 then return 0 end
  local lo, hi = 0, n
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cmp(v, mid * 8 + 1, t) >= 0 then lo = mid + 1 else hi = mid end
  end
  return lo
end
"""

# For the scripts that rewrite lists (a script defines every function it includes on each
# call: the reads, most of the calls, include only _LIB).
_PLAIN = """
-- a list's value without its free slots (false if there is none)
local function get_plain(key)
  local v = redis.call('GET', key)
  if v then
    local f = free_count(v)
    if f > 0 then return string.sub(v, f * 8 + 1) end
  end
  return v
end
"""

# Live notices, for the scripts that change lists.
# Key templates from storage.keys: the owner's id goes between head and tail.
_KEYS = (
    f"local PRESENCE_HEAD, PRESENCE_TAIL = '{keys.PRESENCE_HEAD}', '{keys.PRESENCE_TAIL}'\n"
    f"local HUB_CHANNEL_HEAD = '{keys.HUB_CHANNEL_HEAD}'\n"
)
_LIVE = _KEYS + """
-- live notices: the hubs (API processes) holding a session of a changed list's owner,
-- from the owner's presence hash (hub id -> expiry ms), collected over the whole call and
-- published once per hub by flush (see storage/notices.py)
local live_hubs, live_now = {}, nil
local function notify_one(owner)
  local present = redis.call('HGETALL', PRESENCE_HEAD .. owner .. PRESENCE_TAIL)
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
-- the presence keys among keys[lo..hi] that exist, found by halving: one EXISTS for a
-- whole page when none of its owners is online (the usual case), instead of an HGETALL
-- per list (~1 us of Valkey per delivery less, measured with nobody online)
local function notify_range(owners, keys, lo, hi)
  if redis.call('EXISTS', unpack(keys, lo, hi)) == 0 then return end
  if lo == hi then notify_one(owners[lo]); return end
  local mid = math.floor((lo + hi) / 2)
  notify_range(owners, keys, lo, mid)
  notify_range(owners, keys, mid + 1, hi)
end
local function notify(changed)
  local owners, keys = {}, {}
  for _, key in ipairs(changed) do
    local owner = string.match(key, '{(%d+)}')
    if owner then
      owners[#owners + 1] = owner
      keys[#keys + 1] = PRESENCE_HEAD .. owner .. PRESENCE_TAIL
    end
  end
  if #keys > 0 then notify_range(owners, keys, 1, #keys) end
end
local function flush(kind, id)
  for hub, owners in pairs(live_hubs) do
    redis.call('PUBLISH', HUB_CHANNEL_HEAD .. hub,
               kind .. ':' .. id .. ':' .. table.concat(owners, ','))
  end
end
"""


# KEYS: lists (one script call per fan-out page: one command, one reply, instead of a
# thousand of each); ARGV[1] id (8 bytes), ARGV[2] cap, ARGV[3] the id in decimal to tell
# live owners about ('' for none): one PUBLISH per hub holding any of the lists changed;
# ARGV[4] '1' to give a full list free slots for new heads.
# Returns lists inserted into.
_INSERT = _LIB + _PLAIN + _LIVE + """
local FREE = string.rep('\\255', 8)
local function first_free(cap)
  return '\\255\\255\\255\\255\\255' .. string.char(math.floor(cap / 65536) % 256,
                                        math.floor(cap / 256) % 256, cap % 256)
end
local mark = first_free(tonumber(ARGV[2]))
local function one(key)
  local id, cap = ARGV[1], tonumber(ARGV[2])
  -- A full list's new head goes into its last free slot, and its oldest entry turns
  -- into padding: 16 bytes written in place, where a rewrite copies 6.4 KB into Lua and
  -- back. The same cap is required (it decides which entry is the oldest).
  local v
  if ARGV[4] == '1' then
    local t = redis.call('GETRANGE', key, 0, GAP * 8 + 7)
    local f = free_count(t)
    if f > 0 and string.sub(t, 1, 8) == mark then
      local c = cmp(t, f * 8 + 1, id)
      if c == 0 then return 0 end
      if c < 0 then
        redis.call('SETRANGE', key, (f - 1) * 8, id)
        redis.call('SETRANGE', key, (f + cap - 1) * 8, Z)
        return 1
      end
    end
    if f == 0 and #t < GAP * 8 + 8 and t ~= '' then v = t end  -- a short list, all read
  end
  v = v or get_plain(key)  -- anything else: the plain list, searched and rewritten
  if not v then return 0 end
  local n, trunc = shape(v)
  local pos = first_below(v, n, id)
  if pos > 0 and cmp(v, (pos - 1) * 8 + 1, id) == 0 then return 0 end
  -- below the last entry of a truncated list: other unknown entries may lie in between
  if trunc and pos >= n then return 0 end
  -- one concatenation (a timeline is ~6 KB when full): the first cap entries of the list
  -- with the id inserted at pos, then the sentinel if anything was cut or already was
  if n < cap then
    if pos == 0 then v = id .. v  -- v keeps its sentinel, if any
    else v = string.sub(v, 1, pos * 8) .. id .. string.sub(v, pos * 8 + 1) end
  elseif pos == 0 and ARGV[4] == '1' then  -- a full list's new head: with free slots
    v = mark .. string.rep(FREE, GAP - 2) .. id .. string.sub(v, 1, (cap - 1) * 8) .. Z
  elseif pos < cap then
    v = string.sub(v, 1, pos * 8) .. id .. string.sub(v, pos * 8 + 1, (cap - 1) * 8) .. Z
  else
    v = string.sub(v, 1, cap * 8) .. Z
  end
  redis.call('SET', key, v, 'KEEPTTL')
  return 1
end
local total, changed = 0, {}
for _, key in ipairs(KEYS) do
  local r = one(key)
  total = total + r
  if r > 0 then changed[#changed + 1] = key end
end
if ARGV[3] ~= '' then notify(changed); flush('a', ARGV[3]) end
return total
"""

# KEYS: lists; ARGV[1] packed ids to remove, ARGV[2] the deleted tweet's decimal id to tell
# live owners about ('' for none), published like inserts. Returns entries removed.
_REMOVE = _LIB + _PLAIN + _LIVE + """
local function one(key)
  local v = get_plain(key)
  if not v then return 0 end
  local doomed = {}
  for p = 1, #ARGV[1], 8 do doomed[string.sub(ARGV[1], p, p + 7)] = true end
  local n, trunc = shape(v)
  local out, removed = {}, 0
  for p = 1, n * 8, 8 do
    local e = string.sub(v, p, p + 7)
    if doomed[e] then removed = removed + 1 else out[#out + 1] = e end
  end
  if removed == 0 then return 0 end
  -- a truncated list emptied by removals no longer knows where it ends: rebuild it
  if trunc and #out == 0 then redis.call('DEL', key); return removed end
  if trunc then out[#out + 1] = Z end
  redis.call('SET', key, table.concat(out), 'KEEPTTL')
  return removed
end
local total, changed = 0, {}
for _, key in ipairs(KEYS) do
  local r = one(key)
  total = total + r
  if r > 0 then changed[#changed + 1] = key end
end
if ARGV[2] ~= '' then notify(changed); flush('d', ARGV[2]) end
return total
"""

# KEYS: lists; ARGV[1] packed ids newest first, ARGV[2] '1' if that list is itself
# truncated (more exist below its last entry), ARGV[3] cap, ARGV[4] ttl ms or '0' to keep.
# Keeps only what both sides know exactly: entries at or above the higher of the floors.
# Returns the number of lists that existed (and were merged into).
_MERGE = _LIB + _PLAIN + """
local function one(key)
  local v = get_plain(key)
  if not v then return -1 end
  local b, cap = ARGV[1], tonumber(ARGV[3])
  local an, atrunc = shape(v)
  local bn, btrunc = #b / 8, ARGV[2] == '1'
  local floor = nil
  if atrunc and an > 0 then floor = string.sub(v, an * 8 - 7, an * 8) end
  if btrunc and bn > 0 then
    local bf = string.sub(b, bn * 8 - 7, bn * 8)
    if not floor or cmp(bf, 1, floor) > 0 then floor = bf end
  end
  local trunc = (atrunc and an == 0) or (btrunc and bn == 0)
  local out, i, j = {}, 0, 0
  while i < an or j < bn do
    local e
    if j >= bn then e = string.sub(v, i * 8 + 1, i * 8 + 8); i = i + 1
    elseif i >= an then e = string.sub(b, j * 8 + 1, j * 8 + 8); j = j + 1
    else
      local c = cmp(v, i * 8 + 1, string.sub(b, j * 8 + 1, j * 8 + 8))
      if c >= 0 then
        e = string.sub(v, i * 8 + 1, i * 8 + 8); i = i + 1
        if c == 0 then j = j + 1 end
      else e = string.sub(b, j * 8 + 1, j * 8 + 8); j = j + 1 end
    end
    if floor and cmp(e, 1, floor) < 0 then trunc = true; break end
    if #out >= cap then trunc = true; break end
    out[#out + 1] = e
  end
  if floor and (atrunc or btrunc) then trunc = true end
  if trunc then out[#out + 1] = Z end
  if ARGV[4] ~= '0' then
    redis.call('SET', key, table.concat(out), 'PX', ARGV[4])
  else
    redis.call('SET', key, table.concat(out), 'KEEPTTL')
  end
  return #out
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
# renew). One reply per list: {0} missing, {1} being rebuilt, {2, bytes} with the sentinel
# appended when reached.
_READ = _LIB + """
local before, since, want = ARGV[1], ARGV[2], tonumber(ARGV[3])
-- up to want entries of v from index start, above since; the sentinel appended when the
-- read reaches the end of a truncated list with fewer than want
local function slice(v, start)
  local n, trunc = shape(v)
  -- ids descend, so one comparison of the last candidate with since usually settles it;
  -- otherwise search for the first entry at or below since (a cmp per entry was most of
  -- a read's cost)
  local stop = math.min(n, start + want)
  if stop > start and cmp(v, (stop - 1) * 8 + 1, since) <= 0 then
    local lo, hi = start, stop - 1
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if cmp(v, mid * 8 + 1, since) > 0 then lo = mid + 1 else hi = mid end
    end
    stop = lo
  end
  local out = string.sub(v, start * 8 + 1, stop * 8)
  if trunc and stop == n and stop - start < want then out = out .. Z end
  return out
end
local function read(list, lock, ttl)
  if redis.call('EXISTS', lock) == 1 then return {1} end
  -- The common read starts at the head: only the entries it may return leave the value,
  -- plus one, which is the sentinel if the list ends there (shape() then sees it), instead
  -- of a GET of the whole value (6.4 KB when full); and up to GAP - 1 free slots before
  -- them, so a full list is read in the same one call.
  local t = redis.call('GETRANGE', list, 0, (GAP + want) * 8 + 7)
  if t == '' and redis.call('EXISTS', list) == 0 then return {0} end
  if ttl ~= '0' then redis.call('EXPIRE', list, ttl) end
  local f = free_count(t)  -- the head entry is at slot f
  if #t == f * 8 or cmp(t, f * 8 + 1, before) < 0 then return {2, slice(t, f)} end
  -- paging below the head: the whole value, searched (free slots, all 255 bytes, sort
  -- above every id, so the search passes them without a copy of the value to strip them)
  local v = redis.call('GET', list)
  local n = shape(v)
  return {2, slice(v, first_below(v, n, before))}
end
local out = {}
for i = 1, #KEYS, 2 do
  out[#out + 1] = read(KEYS[i], KEYS[i + 1], i == 1 and ARGV[4] or '0')
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
             "begin": _BEGIN, "notify": _NOTIFY, "present": notices.PRESENT}.items()}


class TimelineCache:
    """One family of capped id lists under a key prefix (`tl` home, `ut` author recents)."""

    LOCK_MS = 10_000

    def __init__(
        self, redis: Redis, prefix: str, cap: int, ttl_seconds: int, live: bool = False,
        free_slots: bool = False,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.cap = cap
        self.ttl_seconds = ttl_seconds
        # Home timelines tell their owner's live subscriptions about inserts and deletes,
        # inside the same script call (no extra round trip, only for owners online).
        self.live = live
        # Full lists keep free slots for new heads (module docstring): for lists written
        # about as often as they are read (home timelines, by fan-out), not for lists read
        # far more often than written (an author's recents, read by every follower's home
        # read), as a read of a list with free slots costs Valkey ~1.6 us more.
        self.free_slots = free_slots

    def key(self, owner: int) -> str:
        # Braces are a cluster hash tag: a list and its lock share a slot.
        return keys.timeline(self.prefix, owner)

    def lock_key(self, owner: int) -> str:
        return keys.rebuild_lock(self.prefix, owner)

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
    def call(pipe: Pipeline, name: str, names: list[str], args: list) -> None:
        pipe.evalsha(_SCRIPTS[name].sha, len(names), *names, *args)

    async def _one(self, name: str, names: list[str], args: list):
        (reply,) = await self.run(lambda pipe: self.call(pipe, name, names, args))
        return reply

    # -- reads

    async def read(
        self, owner: int, before: int = NEWEST, since: int = 0, count: int = 20, renew: bool = True
    ) -> CachedSlice:
        (reply,) = await self.run(
            lambda pipe: queue_reads(pipe, [(self, owner)], before, since, count, renew)
        )
        return self.parse(reply[0])

    def parse(self, reply: list) -> CachedSlice:
        state, *rest = reply
        if state != ReadState.OK.value:
            return CachedSlice(ReadState(state), [], False)
        blob: bytes = rest[0]
        truncated = blob.endswith(SENTINEL)
        ids = unpack(blob[:-ENTRY_BYTES] if truncated else blob)
        return CachedSlice(ReadState.OK, ids, truncated)

    # -- writes (each touches only lists that exist)

    def _insert_args(self, tweet_id: int) -> list:
        return [_id8(tweet_id), self.cap, str(tweet_id) if self.live else "",
                "1" if self.free_slots else "0"]

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
        lists = [self.key(o) for o in owners]

        def build(pipe: Pipeline) -> None:
            self.call(pipe, "insert", lists, self._insert_args(tweet_id))
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
        return await self._one("remove", [self.key(o) for o in owners], [pack(tweet_ids), notice])

    async def merge(self, owner: int, ids: list[int], truncated: bool) -> bool:
        """Merge newest-first `ids` into an existing list; False if there is none."""
        return await self.merge_many([owner], ids, truncated) == 1

    async def merge_many(self, owners: list[int], ids: list[int], truncated: bool) -> int:
        """Returns how many of the lists existed and were merged into."""
        if not owners:
            return 0
        args = [pack(ids), "1" if truncated else "0", self.cap, 0]
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
        args = [pack(ids), "1" if truncated else "0", self.cap, self.ttl_seconds * 1000]

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
    names: list[str] = []
    for cache, owner in sources:
        names += (cache.key(owner), cache.lock_key(owner))
    ttl = sources[0][0].ttl_seconds if renew_first else 0
    TimelineCache.call(pipe, "read", names, [_id8(before), _id8(since), count, ttl])
