--! include readlist
-- KEYS: pairs of list and its rebuild lock (a home timeline and the recents of the
-- celebrities its owner follows, in one call per slot: one command to pack and one reply
-- to parse per home read on one server, not one per source); ARGV[1] before (8 bytes,
-- exclusive), ARGV[2] since (8 bytes, exclusive), ARGV[3] count, ARGV[4] ttl seconds for
-- the first list ('0' = no renew). One reply per list: {0} missing, {1} being rebuilt,
-- {2, bytes} with the sentinel appended when reached.
local out = {}
for i = 1, #KEYS, 2 do
  out[#out + 1] = read(KEYS[i], KEYS[i + 1], i == 1 and ARGV[4] or '0')
end
return out
