-- KEYS[1] presence key; ARGV[1] channel (in KEYS[1]'s slot), ARGV[2] payload: publish only
-- if someone listens. ${PUBLISH}: PUBLISH on one server, SPUBLISH on a cluster.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('${PUBLISH}', ARGV[1], ARGV[2])
end
return 0
