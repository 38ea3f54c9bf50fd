-- wrk script: POST /device/v1/checkin, rotating through the seeded device credentials.
-- FERRY_BENCH_DIR holds tokens.txt and checkin.json written by `ferry-bench seed`.
dofile("bench/status.lua")
local dir = os.getenv("FERRY_BENCH_DIR")
local tokens = {}
for line in io.lines(dir .. "/tokens.txt") do
  if #line > 0 then tokens[#tokens + 1] = line end
end
local f = assert(io.open(dir .. "/checkin.json"))
local body = f:read("*a")
f:close()

local counter = 0
local thread_id = 0
function setup(thread)
  status_setup(thread)
  thread:set("thread_id", thread_id)
  thread_id = thread_id + 1
end

function init(args)
  counter = thread_id * 7919
end

function request()
  counter = counter + 1
  local token = tokens[(counter % #tokens) + 1]
  return wrk.format("POST", "/device/v1/checkin",
    { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }, body)
end
