-- KEYS lease, high-water mark (one slot). Returns the floor (ms) the new holder must mint
-- above, or nil if the id is held. After a clean release the previous holder's last
-- millisecond is exact; after a crash it may have minted up to a lease lifetime past its
-- last renewal.
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local floor = 0
local last = redis.call('GET', KEYS[2])
if last then
  local clean, ms = string.match(last, '^(c?)(%d+)$$')
  floor = tonumber(ms) + 1
  if clean == '' then floor = floor + tonumber(ARGV[2]) end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return tostring(floor)
