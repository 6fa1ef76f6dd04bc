-- A batch of BENCH_BATCH single-line reservations per request.
local key = os.getenv("BENCH_KEY")
local run = os.getenv("BENCH_RUN")
local consignees = tonumber(os.getenv("BENCH_CONSIGNEES"))
local size = tonumber(os.getenv("BENCH_BATCH"))
local tpp = os.getenv("BENCH_LINE_TPP")
local counter = 0
local thread_id = 0
local next_thread = 0

function setup(thread)
  thread:set("thread_id", next_thread)
  next_thread = next_thread + 1
end

wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. key
wrk.headers["Content-Type"] = "application/json"

function request()
  local items = {}
  for i = 1, size do
    counter = counter + 1
    local c = (counter * 7 + thread_id) % consignees
    items[i] = '{"idempotency_key":"' .. run .. "-" .. thread_id .. "-" .. counter ..
      '","lines":[{"destination_country":"SG","operator_id":"bench-op",' ..
      '"consignee_id":"bench-c' .. c .. '","tpp":' .. tpp .. '}],"hold_seconds":86400}'
  end
  local body = '{"reservations":[' .. table.concat(items, ",") .. ']}'
  return wrk.format(nil, "/v1/reservations:batch", nil, body)
end

dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
