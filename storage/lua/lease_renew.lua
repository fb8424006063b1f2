-- KEYS lease, high-water mark; ARGV token, lease ms, hwm ('c' prefix: clean release).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[3])
if string.sub(ARGV[3], 1, 1) == 'c' then redis.call('DEL', KEYS[1])
else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
