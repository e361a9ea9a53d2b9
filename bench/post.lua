-- wrk script for the webhook benchmark (bench/run.sh): POSTs the AdmissionReview in
-- $BODY_FILE to every connection, optionally paces each connection with $DELAY_MS between a
-- response and its next request (closed-loop pacing: the rate is connections * 1000 /
-- (DELAY_MS + latency)), and prints one machine-readable RESULT line. Non-2xx answers count
-- as errors (wrk's errors.status).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.body = f:read("*a")
f:close()

local pause = tonumber(os.getenv("DELAY_MS") or "0")
if pause > 0 then
  function delay()
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
