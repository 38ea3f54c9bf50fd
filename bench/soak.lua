-- wrk script for bench/soak.sh: a mix of device requests, each from a seeded device. Of every
-- ten requests, seven are check-ins, two are status-event batches and one is a download of
-- the offered artifact. Each wrk thread owns its own share of the devices, so every device's
-- event seq numbers rise in order. FERRY_BENCH_DIR holds what `ferry-bench seed` wrote.
dofile("bench/status.lua")
local dir = os.getenv("FERRY_BENCH_DIR")
local nthreads = tonumber(os.getenv("THREADS") or "2")
local function read(name)
  local f = assert(io.open(dir .. "/" .. name))
  local text = f:read("*a")
  f:close()
  return (text:gsub("%s+$", ""))
end
local all_tokens = {}
for line in io.lines(dir .. "/tokens.txt") do
  if #line > 0 then all_tokens[#all_tokens + 1] = line end
end
local checkin_body = read("checkin.json")
local sha = read("artifact.sha256")
local release = read("offered-release.txt")

local thread_id = 0
function setup(thread)
  status_setup(thread)
  thread:set("thread_id", thread_id)
  thread_id = thread_id + 1
end

local tokens, seqs, counter = {}, {}, 0
function init(args)
  for i = 1 + thread_id, #all_tokens, nthreads do
    tokens[#tokens + 1] = all_tokens[i]
  end
end

local function next_device()
  counter = counter + 1
  local i = (counter % #tokens) + 1
  return i, tokens[i]
end

local kind = 0
function request()
  kind = (kind + 1) % 10
  local i, token = next_device()
  local auth = "Bearer " .. token
  if kind == 0 then
    return wrk.format("GET", "/device/v1/content/" .. sha, { ["Authorization"] = auth })
  elseif kind <= 2 then
    seqs[i] = (seqs[i] or 0) + 1
    local body = string.format(
      '{"events":[{"seq":%d,"release":%s,"state":"downloading","progress":%d,"at":1700000000}]}',
      seqs[i], release, seqs[i] * 1024)
    return wrk.format("POST", "/device/v1/events",
      { ["Authorization"] = auth, ["Content-Type"] = "application/json" }, body)
  else
    return wrk.format("POST", "/device/v1/checkin",
      { ["Authorization"] = auth, ["Content-Type"] = "application/json" }, checkin_body)
  end
end
