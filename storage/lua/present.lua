-- KEYS[1] presence hash; ARGV[1] hub id, ARGV[2] ttl ms. Marks the hub present for the
-- viewer until now + ttl on the server's clock (publishers compare with the same clock),
-- keeps the key at least that long, and drops fields of hubs that stopped renewing.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if tonumber(fields[i + 1]) <= now then redis.call('HDEL', KEYS[1], fields[i]) end
end
redis.call('HSET', KEYS[1], ARGV[1], now + ttl)
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
