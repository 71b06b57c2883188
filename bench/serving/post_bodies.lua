-- wrk script: POST pre-built bodies in rotation, count answers by HTTP status, stop each
-- thread after a request cap, and print one JSON line (prefixed "RESULT ") when done.
--
--   wrk -s post_bodies.lua URL -- LIST_FILE MAX_REQUESTS_PER_THREAD WARMUP_S
--
-- LIST_FILE holds one body per line: its file path, then tab-separated "Name: value" headers
-- (Content-Type among them), as bench/serving/bodies.py writes it.
-- Answers are also counted apart once WARMUP_S seconds have passed since the thread started:
-- the steady-state window, without the ramp while the first batches fill the server's queue.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *now);
]]
local CLOCK_MONOTONIC = 1
local clock = ffi.new("bench_timespec")

local function now()
   ffi.C.clock_gettime(CLOCK_MONOTONIC, clock)
   return tonumber(clock.tv_sec) + tonumber(clock.tv_nsec) * 1e-9
end

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

local function split_tabs(line)
   local fields = {}
   for part in string.gmatch(line, "[^\t]+") do
      table.insert(fields, part)
   end
   return fields
end

function init(args)
   local list, cap = args[1], tonumber(args[2])
   requests_built = {}
   for line in io.lines(list) do
      local fields = split_tabs(line)
      local file = assert(io.open(fields[1], "rb"))
      local body = file:read("*a")
      file:close()
      local headers = {}
      for index = 2, #fields do
         local name, value = string.match(fields[index], "^([^:]+):%s*(.*)$")
         headers[name] = value
      end
      table.insert(requests_built, wrk.format("POST", nil, headers, body))
   end
   assert(#requests_built > 0, "no bodies listed in " .. list)
   max_requests = cap
   answered = 0
   next_index = math.random(#requests_built)
   statuses = {}
   steady_statuses = {}
   steady_from = now() + tonumber(args[3] or 0)
end

function request()
   next_index = next_index % #requests_built + 1
   return requests_built[next_index]
end

function response(status, headers, body)
   local key = tostring(status)
   statuses[key] = (statuses[key] or 0) + 1
   if now() >= steady_from then
      steady_statuses[key] = (steady_statuses[key] or 0) + 1
   end
   answered = answered + 1
   if answered >= max_requests then
      wrk.thread:stop()
   end
end

local function summed(name)
   local totals = {}
   for _, thread in ipairs(threads) do
      for status, count in pairs(thread:get(name)) do
         totals[status] = (totals[status] or 0) + count
      end
   end
   local parts = {}
   for status, count in pairs(totals) do
      table.insert(parts, string.format('"%s": %d', status, count))
   end
   return table.concat(parts, ", ")
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'RESULT {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
      '"socket_errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, ' ..
      '"latency_us": {"p50": %d, "p90": %d, "p95": %d, "p99": %d, "mean": %.1f, "max": %d}, ' ..
      '"statuses": {%s}, "steady_statuses": {%s}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(95),
      latency:percentile(99), latency.mean, latency.max,
      summed("statuses"), summed("steady_statuses")))
end
