-- KEYS: per viewer, its presence hash then its cached home timeline; ARGV[1] hub id,
-- ARGV[2] presence ttl ms, ARGV[3] the timeline's ttl s. For each viewer: marks the hub
-- present until now + ttl on the server's clock (publishers compare with the same clock),
-- keeps the hash at least that long, drops fields of hubs that stopped renewing, and
-- renews the timeline's TTL. Replies per viewer 1 if its timeline exists, else 0.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local found = {}
for k = 1, #KEYS, 2 do
  local key = KEYS[k]
  local fields = redis.call('HGETALL', key)
  for i = 1, #fields, 2 do
    if tonumber(fields[i + 1]) <= now then redis.call('HDEL', key, fields[i]) end
  end
  redis.call('HSET', key, ARGV[1], now + ttl)
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
  found[#found + 1] = redis.call('EXPIRE', KEYS[k + 1], ARGV[3])
end
return found
