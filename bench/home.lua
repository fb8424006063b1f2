-- wrk script: homeTimeline(first: 20) with author fields, rotating bearer tokens.
-- Usage: wrk -s bench/home.lua ... -- <tokens-file>
local tokens = {}
local n = 0
local body = '{"query":"query($f:Int!){homeTimeline(first:$f){edges{cursor node{id text createdAt author{id handle displayName}}} pageInfo{hasNextPage endCursor}}}","variables":{"f":20}}'

function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  n = math.random(#tokens)
end

function request()
  n = n % #tokens + 1
  return wrk.format("POST", "/graphql", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. tokens[n],
  }, body)
end

errors = 0
function response(status, headers, body)
  if status ~= 200 or string.find(body, '"errors"', 1, true) then errors = errors + 1 end
end
