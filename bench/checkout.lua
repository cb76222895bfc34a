-- wrk script for bench/checkout.py (one thread). With a file argument (`-- paths.txt 0`), each
-- request takes the next path of the file from the given offset: a fresh signed link per
-- request, wrapping around (replays) only if the runs outlast the file, which the bench
-- reports from paths_used. Without one, wrk sends its URL's path as usual. done() prints one JSON line for the bench to parse: requests,
-- duration, latency percentiles (µs), socket errors, answers by status, paths used.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

statuses = {}
used = 0
size = 0

function init(args)
  if args[1] then
    local requests = {}
    for path in io.lines(args[1]) do
      requests[#requests + 1] = wrk.format(nil, path)
    end
    size = #requests
    local offset = tonumber(args[2] or "0")
    -- Built ahead (wrk.format is costly): request() only picks the next one.
    request = function()
      used = used + 1
      return requests[(offset + used - 1) % size + 1]
    end
  end
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local codes, parts, spent, total = {}, {}, 0, 0
  for _, thread in ipairs(threads) do
    for code, n in pairs(thread:get("statuses")) do
      codes[code] = (codes[code] or 0) + n
    end
    spent = spent + thread:get("used")
    total = total + thread:get("size")
  end
  for code, n in pairs(codes) do
    parts[#parts + 1] = string.format('"%d": %d', code, n)
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
      .. '"max_us": %d, "errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, '
      .. '"statuses": {%s}, "paths_used": %d, "paths": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect, e.read, e.write, e.timeout, table.concat(parts, ", "), spent, total
  ))
end
