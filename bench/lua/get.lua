-- GET with the bench key (path given on the command line).
local key = os.getenv("BENCH_KEY")
wrk.headers["Authorization"] = "Bearer " .. key
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
