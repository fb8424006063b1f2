-- Shared helpers: entries compared as two 32-bit halves (exact in Lua's doubles, and
-- independent of the server's collation locale, which string comparison would not be).
local Z = '\0\0\0\0\0\0\0\0'
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
-- A full list keeps free slots in front of its entries (storage/timeline_cache.py), so a
-- new head is written in place: GAP - 1 of them when it is rewritten, one used per new
-- head, the oldest entry becoming padding after the sentinel each time. A free slot is
-- eight 255 bytes (no entry starts so: ids are below 2**63), except that the first, used
-- last, ends in the list's cap (3 bytes, big-endian): the cap decides which entry is the
-- oldest, and a list written under another cap is rewritten instead.
local GAP = 16
-- the number of free slots at the front of t (a value, or a prefix of GAP slots or more):
-- one pattern search in C (docs/timelines.md)
local function free_count(t)
  if string.byte(t, 1) ~= 255 then return 0 end
  return (string.find(t, '[^\255]', 9) - 1) / 8
end
-- index (0-based) of the first entry strictly below t, among the first n entries
local function first_below(v, n, t)
  -- the common case, a new id or a read from the head, without the search
  if n == 0 or cmp(v, 1, t) < 0 then return 0 end
  local lo, hi = 0, n
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cmp(v, mid * 8 + 1, t) >= 0 then lo = mid + 1 else hi = mid end
  end
  return lo
end
