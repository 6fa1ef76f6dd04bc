-- A batch of BENCH_BATCH single-line reservations per request.
dofile(os.getenv("BENCH_LUA_DIR") .. "/reservations.lua")
local size = tonumber(os.getenv("BENCH_BATCH"))

function request()
  local items = {}
  for i = 1, size do
    local key, line = next_reservation()
    items[i] = '{"idempotency_key":"' .. key .. '","lines":' .. line ..
      ',"hold_seconds":86400}'
  end
  return wrk.format(nil, "/v1/reservations:batch", nil,
                    '{"reservations":[' .. table.concat(items, ",") .. ']}')
end
