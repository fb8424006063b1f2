-- A writing script's lists on one node of a cluster, all in one call (the call's header
-- flag allows keys of many slots): ARGV[fixed + 1..], undeclared. Each list, with its
-- owner's presence key when `live` (same slot), is checked by one EXISTS in redis.pcall
-- before it is touched: a key whose slot this node does not serve (moved away, or missing
-- here while its slot migrates) is an error there, and that list is skipped untouched.
-- Returns {sum of `one`'s results, positions (1-based) of the lists skipped}, which the
-- caller sends again the per-slot way, with declared keys, so the client follows MOVED
-- and ASK. No command here spans slots: on Valkey 9.1 one multi-slot command from a script
-- breaks every later script on that node until it restarts.
local HOME_CHANNEL_HEAD, HOME_CHANNEL_TAIL = '${HOME_CHANNEL_HEAD}', '${HOME_CHANNEL_TAIL}'
local PRESENCE_HEAD, PRESENCE_TAIL = '${PRESENCE_HEAD}', '${PRESENCE_TAIL}'
local function apply(one, live, kind, id, fixed)
  local out, total = {0}, 0
  for i = fixed + 1, #ARGV do
    local key, owner, found = ARGV[i], nil, nil
    if live then
      owner = string.match(key, '{(%d+)}')
      found = redis.pcall('EXISTS', key, PRESENCE_HEAD .. owner .. PRESENCE_TAIL)
    else
      found = redis.pcall('EXISTS', key)
    end
    if type(found) == 'table' then
      out[#out + 1] = i - fixed
    elseif found > 0 then  -- the list, or only the presence key: one() finds no list
      local r = one(key)
      total = total + r
      if r > 0 and found == 2 then
        redis.call('SPUBLISH', HOME_CHANNEL_HEAD .. owner .. HOME_CHANNEL_TAIL,
                   kind .. ':' .. id .. ':' .. owner)
      end
    end
  end
  out[1] = total
  return out
end
