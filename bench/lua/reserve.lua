-- One single-line reservation per request, each with its own Idempotency-Key.
dofile(os.getenv("BENCH_LUA_DIR") .. "/reservations.lua")

function request()
  local key, line = next_reservation()
  wrk.headers["Idempotency-Key"] = key
  return wrk.format(nil, "/v1/reservations", nil,
                    '{"lines":' .. line .. ',"hold_seconds":86400}')
end
