-- Live notices on one server (storage/live.py): the hubs (API processes) holding a session
-- of a changed list's owner, from the owner's presence hash (hub id -> expiry ms), collected
-- over the whole call and published once per hub by flush. A script changing lists takes
-- them alone as KEYS; their owners' presence keys are named here, not declared (on a
-- cluster they are: live_shards.lua): declaring them cost a fan-out page 1,000 more
-- arguments to pack and parse (docs/production.md).
local HUB_CHANNEL_HEAD = '${HUB_CHANNEL_HEAD}'
local PRESENCE_HEAD, PRESENCE_TAIL = '${PRESENCE_HEAD}', '${PRESENCE_TAIL}'
-- how many of KEYS are lists
local function list_count(live) return #KEYS end
local live_hubs, live_now = {}, nil
local function notify_one(owner, presence)
  local present = redis.call('HGETALL', presence)
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
-- the presence keys among pkeys[lo..hi] that exist, found by halving: one EXISTS for a
-- whole page when none of its owners is online (the usual case)
local function notify_range(owners, pkeys, lo, hi)
  if redis.call('EXISTS', unpack(pkeys, lo, hi)) == 0 then return end
  if lo == hi then notify_one(owners[lo], pkeys[lo]); return end
  local mid = math.floor((lo + hi) / 2)
  notify_range(owners, pkeys, lo, mid)
  notify_range(owners, pkeys, mid + 1, hi)
end
-- changed: indices into KEYS of the lists changed; n: the number of lists
local function notify(changed, n)
  local owners, pkeys = {}, {}
  for _, i in ipairs(changed) do
    local owner = string.match(KEYS[i], '{(%d+)}')
    if owner then
      owners[#owners + 1] = owner
      pkeys[#pkeys + 1] = PRESENCE_HEAD .. owner .. PRESENCE_TAIL
    end
  end
  if #pkeys > 0 then notify_range(owners, pkeys, 1, #pkeys) end
end
local function flush(kind, id)
  for hub, owners in pairs(live_hubs) do
    redis.call('PUBLISH', HUB_CHANNEL_HEAD .. hub,
               kind .. ':' .. id .. ':' .. table.concat(owners, ','))
  end
end
