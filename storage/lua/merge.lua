--! include lib plain ${LISTS}
-- The lists as apply takes them; ARGV[1] packed ids newest first, ARGV[2] '1' if that list
-- is itself truncated (more exist below its last entry), ARGV[3] cap, ARGV[4] ttl ms or '0'
-- to keep.
-- Keeps only what both sides know exactly: entries at or above the higher of the floors.
-- Returns the number of lists that existed and were merged into (see apply).
local function one(key)
  local v = get_plain(key)
  if not v then return 0 end
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
  return 1
end
return apply(one, false, '', '', 4)
