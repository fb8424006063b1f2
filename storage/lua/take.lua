-- KEYS[1] bucket; ARGV capacity, period ms, now ms. Returns {ms to wait (0: allowed),
-- whole tokens left}.
local cap, period, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local per = period / cap
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(b[1]), tonumber(b[2])
if not tokens then tokens, at = cap, now end
if now > at then tokens = math.min(cap, tokens + (now - at) / per); at = now end
if tokens < 1 then return {math.ceil((1 - tokens) * per), 0} end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - 1), 'at', tostring(at))
redis.call('PEXPIRE', KEYS[1], math.ceil(period))
return {0, math.floor(tokens - 1)}
