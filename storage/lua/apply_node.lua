-- A writing script's lists on one node of a cluster, all in one call (the call's header
-- flag allows keys of many slots): ARGV[fixed + 1..], undeclared. Each list, and when
-- `live` its owner's presence key, is checked with redis.pcall before it is touched: a
-- key whose slot this node does not serve (moved away, or missing here while its slot
-- migrates) is an error there, and that list is skipped untouched. Returns {sum of
-- `one`'s results, positions (1-based) of the lists skipped}, which the caller sends
-- again the per-slot way, with declared keys, so the client follows MOVED and ASK.
-- Only single-key commands: on Valkey 9.1 one multi-slot command from a script breaks
-- every later script on that node until it restarts.
local HOME_CHANNEL_HEAD, HOME_CHANNEL_TAIL = '${HOME_CHANNEL_HEAD}', '${HOME_CHANNEL_TAIL}'
local PRESENCE_HEAD, PRESENCE_TAIL = '${PRESENCE_HEAD}', '${PRESENCE_TAIL}'
-- 1 or 0 as the key exists, nil if this node does not serve its slot
local function served(key)
  local r = redis.pcall('EXISTS', key)
  if type(r) == 'table' then return nil end
  return r
end
local function apply(one, live, kind, id, fixed)
  local out, total = {0}, 0
  for i = fixed + 1, #ARGV do
    local key = ARGV[i]
    local here, owner, present = served(key), nil, 0
    if here == 1 and live then
      owner = string.match(key, '{(%d+)}')
      present = served(PRESENCE_HEAD .. owner .. PRESENCE_TAIL)
      here = present and here
    end
    if not here then
      out[#out + 1] = i - fixed
    elseif here == 1 then
      local r = one(key)
      total = total + r
      if r > 0 and present == 1 then
        redis.call('SPUBLISH', HOME_CHANNEL_HEAD .. owner .. HOME_CHANNEL_TAIL,
                   kind .. ':' .. id .. ':' .. owner)
      end
    end
  end
  out[1] = total
  return out
end
