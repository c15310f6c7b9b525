#!/bin/sh
# `make format-check`, run by `make check` too: src/*.[ch] must be laid
# out as .clang-format says (`make format` fixes it).  The layout is
# clang-format 14's (Debian 12's, CI's): another version places some
# lines differently, so without clang-format 14 this skips (exit 77).
set -eu

if ! command -v clang-format >/dev/null 2>&1; then
    echo "format_check: SKIP: no clang-format (apt-get install clang-format)"
    exit 77
fi
major=$(clang-format --version | sed -n 's/.*version \([0-9][0-9]*\)\..*/\1/p')
if [ "$major" != 14 ]; then
    echo "format_check: SKIP: clang-format ${major:-?} is not 14, whose" \
         "layout .clang-format describes"
    exit 77
fi
cd "${srcdir:-.}"
clang-format --dry-run --Werror src/*.[ch]
echo "format_check: src/*.[ch] as .clang-format lays them out"
