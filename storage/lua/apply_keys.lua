-- A writing script's lists as its declared KEYS (one server, or one slot of a cluster):
-- `one(key)` changes a list and returns how much changed; the lists' live owners are told
-- (live_hubs.lua or live_shards.lua) when `live`. Returns the sum of `one`'s results.
local function apply(one, live, kind, id, _fixed)
  local n = live and list_count(live) or #KEYS
  local total, changed = 0, {}
  for i = 1, n do
    local r = one(KEYS[i])
    total = total + r
    if r > 0 then changed[#changed + 1] = i end
  end
  if live then notify(changed, n); flush(kind, id) end
  return total
end
