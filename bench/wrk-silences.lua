-- wrk script: raftmq's 100-byte PUT /message (as bench/wrk-compare.sh sends it), and on each
-- wrk thread a list of the silences of 15 ms or more between two responses, as
-- "end:length" in ms, the end on CLOCK_MONOTONIC, so that they can be lined up with
-- `perf record -k CLOCK_MONOTONIC` or `perf sched record -k CLOCK_MONOTONIC` of the nodes.
-- Stamping every response costs wrk some throughput: use it to look at the tail, not to
-- measure the rate.
--   wrk -t2 -c64 -d15s --latency -s bench/wrk-silences.lua http://LEADER/message
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } wrk_timespec;
  int clock_gettime(int clock, wrk_timespec *ts);
]]
local ts = ffi.new("wrk_timespec")
local CLOCK_MONOTONIC = 1

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

wrk.method = "PUT"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"topic":"wrk","message":"' .. string.rep("x", 100) .. '"}'

local threads = {}
function setup(thread) table.insert(threads, thread) end

-- Globals, so that done() can read them from each thread with thread:get.
last, silences, count = nil, "", 0

function response(status, headers, body)
  local t = now_ms()
  if last ~= nil and t - last >= 15 then
    count = count + 1
    if count <= 3000 then silences = silences .. string.format("%.3f:%.1f ", t, t - last) end
  end
  last = t
end

function done(summary, latency, requests)
  for i, thread in ipairs(threads) do
    print("thread " .. i .. " silences >= 15 ms: " .. tostring(thread:get("count")))
    print(thread:get("silences"))
  end
end
