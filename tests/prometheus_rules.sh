#!/bin/sh
# Checks etc/prometheus/redis-cache-proxy-rules.yml with promtool: `check
# rules` must pass, and `test rules` runs its unit tests (one firing and
# one quiet case per alert, redis-cache-proxy-rules.test.yml).  Exit 77
# is automake's SKIP, for machines without promtool (Debian's prometheus
# package has it; .ci/run installs it without starting the service).
set -eu

PROMTOOL=${PROMTOOL:-promtool}
dir=${srcdir:-.}/etc/prometheus

if ! command -v "$PROMTOOL" >/dev/null 2>&1; then
    echo "promtool not found: skipped" >&2
    exit 77
fi
"$PROMTOOL" check rules "$dir/redis-cache-proxy-rules.yml"
# test rules resolves rule_files relative to the test file.
"$PROMTOOL" test rules "$dir/redis-cache-proxy-rules.test.yml"
