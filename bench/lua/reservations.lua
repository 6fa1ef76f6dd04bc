-- Shared by reserve.lua and batch.lua: the bench key and POST headers, one
-- counter per wrk thread, and the next reservation line, spread over the bench
-- consignees so LPP buckets keep accepting. Globals on purpose: wrk's
-- thread:set() sets globals in each thread's own Lua state.
run = os.getenv("BENCH_RUN")
consignees = tonumber(os.getenv("BENCH_CONSIGNEES"))
tpp = os.getenv("BENCH_LINE_TPP")
counter = 0
thread_id = 0
local next_thread = 0

function setup(thread)
  thread:set("thread_id", next_thread)
  next_thread = next_thread + 1
end

wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")
wrk.headers["Content-Type"] = "application/json"

-- The next Idempotency-Key and the reservation's one line, as JSON.
function next_reservation()
  counter = counter + 1
  local c = (counter * 7 + thread_id) % consignees
  local line = '[{"destination_country":"SG","operator_id":"bench-op",' ..
    '"consignee_id":"bench-c' .. c .. '","tpp":' .. tpp .. '}]'
  return run .. "-" .. thread_id .. "-" .. counter, line
end

dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
