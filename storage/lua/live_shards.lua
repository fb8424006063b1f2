-- Live notices on Redis Cluster (docs/production.md): a script may only publish within its
-- keys' slot, so each changed list's owner with a presence key gets one SPUBLISH on the
-- owner's own shard channel, which every hub holding a session of theirs subscribes to.
-- A script changing lists KEYS[1..N] declares their owners' presence keys as
-- KEYS[N + 1..2N].
local HOME_CHANNEL_HEAD, HOME_CHANNEL_TAIL = '${HOME_CHANNEL_HEAD}', '${HOME_CHANNEL_TAIL}'
local live_owners = {}
-- how many of KEYS are lists (the presence keys follow them when there are notices to send)
local function list_count(live) return live and #KEYS / 2 or #KEYS end
local function notify(changed, n)
  for _, i in ipairs(changed) do
    if redis.call('EXISTS', KEYS[n + i]) == 1 then
      live_owners[#live_owners + 1] = string.match(KEYS[i], '{(%d+)}')
    end
  end
end
local function flush(kind, id)
  for _, owner in ipairs(live_owners) do
    redis.call('SPUBLISH', HOME_CHANNEL_HEAD .. owner .. HOME_CHANNEL_TAIL,
               kind .. ':' .. id .. ':' .. owner)
  end
end
