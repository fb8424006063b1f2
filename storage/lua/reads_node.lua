-- A read's lists on one node of a cluster, in one call (the header flag allows keys of
-- many slots): pairs of list and rebuild lock in ARGV[5..], undeclared; ARGV[4] applies to
-- the first pair. A pair whose slot this node does not serve (moved away, or its lock
-- missing here while the slot migrates: an error in redis.pcall) is answered {1}, as if
-- being rebuilt, so the caller reads that list on its own, with declared keys.
-- Only single-key commands (see apply_node.lua).
local function read_all(read)
  local out = {}
  for i = 5, #ARGV, 2 do
    if type(redis.pcall('EXISTS', ARGV[i + 1])) == 'table' then out[#out + 1] = {1}
    else out[#out + 1] = read(ARGV[i], ARGV[i + 1], i == 5 and ARGV[4] or '0') end
  end
  return out
end
