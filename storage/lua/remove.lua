--! include lib plain ${LISTS}
-- The lists as apply takes them; ARGV[1] packed ids to remove, ARGV[2] the deleted
-- tweet's decimal id to tell live owners about ('' for none), published like inserts.
-- Returns entries removed (see apply).
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
return apply(one, ARGV[2] ~= '', 'd', ARGV[2], 2)
