-- wrk script: POST new products with unique SKUs; every 201 is a durable write.
-- `thread_id` is set per thread by setup(); a `local` here would hide it.
local token = os.getenv("TOKEN")
local counter = 0
local started = os.time()
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end
request = function()
  counter = counter + 1
  local body = string.format('{"sku":"W-%d-%d-%d","name":"Bench %d","price":"9.99","tax_rate":"0.16"}', started, thread_id, counter, counter)
  return wrk.format("POST", "/api/v1/products", { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }, body)
end
