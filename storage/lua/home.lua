--! include readlist
-- A home read on one server in one call: KEYS[1] the read caches' invalidation counter
-- (the fence), KEYS[2] the viewer's activity mark, then pairs of list and lock as in
-- read.lua; ARGV[1..4] as in read.lua, ARGV[5] the mark's lifetime in seconds. Replies:
-- the counter ('0' if unset), 1 if the mark was new (else 0), one reply per list.
local out = {redis.call('GET', KEYS[1]) or '0',
             redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[5]) and 1 or 0}
for i = 3, #KEYS, 2 do
  out[#out + 1] = read(KEYS[i], KEYS[i + 1], i == 3 and ARGV[4] or '0')
end
return out
