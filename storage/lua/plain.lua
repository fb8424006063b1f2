-- For the scripts that rewrite lists (a script defines every function it includes on each
-- call: the reads, most of the calls, include only lib).
-- a list's value without its free slots (false if there is none)
local function get_plain(key)
  local v = redis.call('GET', key)
  if v then
    local f = free_count(v)
    if f > 0 then return string.sub(v, f * 8 + 1) end
  end
  return v
end
