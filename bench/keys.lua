-- wrk script for bench/run: which path each request asks for, and a
-- machine-readable summary line at the end.
--
-- Arguments (after `--`):  NKEYS PREFIX SUFFIX MODE NTHREADS
--   NKEYS   keys key:000000000000 .. key:<NKEYS-1>, zero-padded to 12
--           digits as redis-benchmark's key:__rand_int__ names them;
--           0 means every request asks for PREFIX alone (a fixed path).
--   PREFIX  path before the key ("/" for the proxy and Varnish,
--           "/GET/" for webdis); SUFFIX after it ("" or webdis' "?type=").
--   MODE    "walk": each thread asks for its own share of the keys, in
--           order, twice over, then stops: the warm-up pass.  Twice,
--           because wrk calls request() once to check the script and
--           throws that request away, and stopping drops the answers
--           still in flight.  "cycle": threads cycle over all keys until
--           wrk's -d ends, each starting at its own offset so that
--           threads do not ask for the same key at the same moment.
--   NTHREADS the -t given to wrk: a thread's init() runs before the next
--           thread exists, so the count cannot be learnt in setup().
--
-- Every thread has its own Lua state; setup() runs in the main state and
-- hands each thread its index through thread:set().

local started = 0

function setup(thread)
    thread:set("tid", started)
    started = started + 1
end

local nkeys, prefix, suffix, walk
local first_key, share, sent

function init(args)
    nkeys = tonumber(args[1] or "0")
    prefix = args[2] or "/"
    suffix = args[3] or ""
    walk = args[4] == "walk"
    local count = tonumber(args[5] or "1")
    share = math.floor(nkeys / count)
    first_key = tid * share
    if tid == count - 1 then
        -- the last thread takes the remainder as well
        share = nkeys - first_key
    end
    sent = 0
end

function request()
    if nkeys == 0 then
        return wrk.format("GET", prefix)
    end
    local k
    if walk then
        if sent >= 2 * share then
            wrk.thread:stop()
        end
        k = first_key + sent % share
    else
        k = (first_key + sent) % nkeys
    end
    sent = sent + 1
    return wrk.format("GET", string.format("%skey:%012d%s", prefix, k,
                                           suffix))
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "RCPBENCH requests=%d duration_us=%d bytes=%d p50_us=%d p99_us=%d"
        .. " connect=%d read=%d write=%d status=%d timeout=%d\n",
        summary.requests, summary.duration, summary.bytes,
        latency:percentile(50), latency:percentile(99),
        e.connect, e.read, e.write, e.status, e.timeout))
end
