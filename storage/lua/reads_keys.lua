-- A read's lists as its declared KEYS: pairs of list and rebuild lock (one server, or one
-- slot of a cluster); ARGV[4] applies to the first pair.
local function read_all(read)
  local out = {}
  for i = 1, #KEYS, 2 do
    out[#out + 1] = read(KEYS[i], KEYS[i + 1], i == 1 and ARGV[4] or '0')
  end
  return out
end
