-- wrk script: POST stock adjustments (+1) to random products from $IDS_FILE; every 200 is a durable write.
local ids = {}
local token = os.getenv("TOKEN")
for line in io.lines(os.getenv("IDS_FILE")) do ids[#ids + 1] = line end
math.randomseed(os.time())
request = function()
  local id = ids[math.random(#ids)]
  return wrk.format("POST", "/api/v1/products/" .. id .. "/stock",
    { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" },
    '{"delta":1,"reason":"receipt"}')
end
