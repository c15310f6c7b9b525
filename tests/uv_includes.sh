#!/bin/sh
# Only the supervisor's files may include uv.h: the workers are forked
# from the supervisor and must never touch its libuv loop, so libuv stays
# out of everything that runs in them (and out of librcp.a, which the unit
# tests link).  Makefile.am gives LIBUV_CFLAGS to librcp_supervisor.a
# alone; this catches an include that happens to build anyway.
set -eu

src="${srcdir:-.}/src"
bad=$(grep -l '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]uv\.h[>"]' \
          "$src"/*.c "$src"/*.h | grep -v '/supervisor[^/]*$' || true)
if [ -n "$bad" ]; then
    echo "uv.h included outside src/supervisor*:" >&2
    echo "$bad" >&2
    exit 1
fi
users=$(grep -l '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]uv\.h[>"]' \
            "$src"/*.c "$src"/*.h | wc -l)
if [ "$users" -eq 0 ]; then
    echo "no file includes uv.h: is srcdir ($src) right?" >&2
    exit 1
fi
echo "uv.h: included by $users supervisor file(s) only"
