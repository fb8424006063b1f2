--! include lib plain ${LISTS}
-- The lists as apply takes them (one script call per fan-out page, or per node of a
-- cluster: one command, one reply, instead of one per list); ARGV[1] id (8 bytes), ARGV[2]
-- cap, ARGV[3] the id in decimal to tell live owners about ('' for none); ARGV[4] '1' to
-- give a full list free slots for new heads. Returns lists inserted into (see apply).
local FREE = string.rep('\255', 8)
local function first_free(cap)
  return '\255\255\255\255\255' .. string.char(math.floor(cap / 65536) % 256,
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
return apply(one, ARGV[3] ~= '', 'a', ARGV[3], 4)
