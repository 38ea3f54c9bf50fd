-- Counts wrk's answers per HTTP status: every bench script loads this (directly with -s, or
-- with dofile from its own script). done() prints one line, "statuses: 200=N 409=N ...",
-- which bench/lib.sh reports and checks.
local threads = {}
statuses = {}

-- Call from a script's own setup().
function status_setup(thread)
  table.insert(threads, thread)
end

function setup(thread)
  status_setup(thread)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses") or {}) do
      total[code] = (total[code] or 0) + n
    end
  end
  local codes = {}
  for code in pairs(total) do codes[#codes + 1] = code end
  table.sort(codes)
  local parts = {}
  for _, code in ipairs(codes) do parts[#parts + 1] = code .. "=" .. total[code] end
  io.write("statuses: " .. table.concat(parts, " ") .. "\n")
end
