--! include lib ${READS}
-- Pairs of list and its rebuild lock, as read_all takes them (a home timeline and the
-- recents of the celebrities its owner follows, in one call, or one per node of a cluster:
-- one command to pack and one reply to parse per home read, not one per source); ARGV[1] before (8 bytes,
-- exclusive), ARGV[2] since (8 bytes, exclusive), ARGV[3] count, ARGV[4] ttl seconds for
-- the first list ('0' = no renew). One reply per list: {0} missing, {1} being rebuilt,
-- {2, bytes} with the sentinel appended when reached.
local before, since, want = ARGV[1], ARGV[2], tonumber(ARGV[3])
-- up to want entries of v from index start, above since; the sentinel appended when the
-- read reaches the end of a truncated list with fewer than want
local function slice(v, start)
  local n, trunc = shape(v)
  -- ids descend, so one comparison of the last candidate with since usually settles it;
  -- otherwise search for the first entry at or below since
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
  -- plus one, which is the sentinel if the list ends there (shape() then sees it), and up
  -- to GAP - 1 free slots before them, so a full list is read in the same one call.
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
return read_all(read)
