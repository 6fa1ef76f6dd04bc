-- One single-line reservation per request, each with its own Idempotency-Key,
-- spread over the bench consignees so LPP buckets keep accepting.
local key = os.getenv("BENCH_KEY")
local run = os.getenv("BENCH_RUN")
local consignees = tonumber(os.getenv("BENCH_CONSIGNEES"))
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
  counter = counter + 1
  local c = (counter * 7 + thread_id) % consignees
  local body = '{"lines":[{"destination_country":"SG","operator_id":"bench-op",' ..
    '"consignee_id":"bench-c' .. c .. '","tpp":' .. tpp .. '}],"hold_seconds":86400}'
  wrk.headers["Idempotency-Key"] = run .. "-" .. thread_id .. "-" .. counter
  return wrk.format(nil, "/v1/reservations", nil, body)
end

dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
