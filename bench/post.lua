-- wrk script for the webhook benchmark (bench/run.sh): POSTs the AdmissionReview in
-- $BODY_FILE to every connection, optionally paces each connection with $DELAY_MS between a
-- response and its next request (closed-loop pacing: the rate is connections * 1000 /
-- (DELAY_MS + latency)), and prints one machine-readable RESULT line. Non-2xx answers count
-- as errors (wrk's errors.status).
--
-- Paced runs use one connection per thread (`-t N -c N`) and stagger the threads: thread i
-- waits i * DELAY_MS / N before its first request, so the N connections send evenly spread
-- over each period instead of all at once (started together, unstaggered connections stay
-- in step and arrive as bursts of N, which measures queueing behind the burst, not the
-- latency at a steady rate).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.body = f:read("*a")
f:close()

local pause = tonumber(os.getenv("DELAY_MS") or "0")
local started = 0

function setup(thread)
  thread:set("index", started)
  started = started + 1
end

if pause > 0 then
  local first = true
  function delay()
    if first then
      first = false
      local threads = tonumber(os.getenv("PACED_THREADS") or "1")
      return math.floor((index or 0) * pause / threads)
    end
    return pause
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d errors=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d rps=%.1f\n",
    summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    summary.requests / (summary.duration / 1e6)))
end
