-- wrk script for scripts/load.sh: POSTs searches of one collection with
-- queries drawn at random from a file (one JSON string per line), in the
-- mode of $QUARRY_MODE, and reports p50, p99, req/s and responses by status
-- as one line.
local queries = {}
for line in io.lines(os.getenv("QUARRY_QUERIES")) do
  queries[#queries + 1] = line
end
local mode = os.getenv("QUARRY_MODE") or "hybrid"
local path = "/v1/collections/" .. (os.getenv("QUARRY_COLLECTION") or "scifact") .. "/search"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  math.randomseed(os.time() + id)
end

function request()
  local q = queries[math.random(#queries)]
  return wrk.format(nil, path, nil, '{"query": ' .. q .. ', "mode": "' .. mode .. '", "top_k": 10}')
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local all = {}
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses")) do
      all[code] = (all[code] or 0) + n
    end
  end
  local parts = {}
  for code, n in pairs(all) do
    parts[#parts + 1] = code .. ":" .. n
  end
  table.sort(parts)
  io.write(string.format("p50_ms=%.1f p99_ms=%.1f rps=%.1f statuses=%s errors=%d\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests / (summary.duration / 1e6), table.concat(parts, ","),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
