-- KEYS[1] list, KEYS[2] lock; ARGV[1] lock ms. 'exists', 'busy' or 'started'. The list is
-- created empty with the lock's lifetime, so fan-out lands in it while the rebuild reads the
-- store, and a rebuilder that dies leaves nothing behind once the lock expires.
if redis.call('EXISTS', KEYS[1]) == 1 and redis.call('EXISTS', KEYS[2]) == 0 then
  return 'exists'
end
if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then return 'busy' end
redis.call('SET', KEYS[1], '', 'PX', ARGV[1])
return 'started'
