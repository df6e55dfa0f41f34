-- wrk script: GET a random product from the ids in $IDS_FILE (one per line) with a bearer token.
local ids = {}
local token = os.getenv("TOKEN")
for line in io.lines(os.getenv("IDS_FILE")) do ids[#ids + 1] = line end
math.randomseed(os.time())
request = function()
  local id = ids[math.random(#ids)]
  return wrk.format("GET", "/api/v1/products/" .. id, { ["Authorization"] = "Bearer " .. token })
end
