#!/bin/sh
# Keeps doc/ARCHITECTURE.md's file map (section "8. File map") whole:
# every src/*.c and src/*.h has a row, and every file a row names
# exists.  A row names its files as `stem.c/.h`, `stem.c` or `stem.h`
# in its first column.
set -eu

top="${srcdir:-.}"
doc="$top/doc/ARCHITECTURE.md"
if [ ! -f "$doc" ] || [ ! -d "$top/src" ]; then
    echo "file_map: no $doc or $top/src: is srcdir right?" >&2
    exit 1
fi

# The first column of the map's table rows, one file per line.
named=$(sed -n '/^## 8\. File map/,/^## /p' "$doc" \
        | sed -n 's/^| `\([A-Za-z0-9_]*\)\.\(c\/\.h\|c\|h\)` |.*/\1 \2/p' \
        | while read -r stem ext; do
              case $ext in
              c/.h) echo "$stem.c"; echo "$stem.h" ;;
              *) echo "$stem.$ext" ;;
              esac
          done | sort -u)
if [ -z "$named" ]; then
    echo "file_map: no file map table found in $doc" >&2
    exit 1
fi
present=$(cd "$top/src" && ls -- *.c *.h | sort -u)

status=0
missing=$(printf '%s\n' "$present" | grep -Fxv "$named" || true)
if [ -n "$missing" ]; then
    echo "file_map: src/ files with no row in $doc, section 8:" >&2
    printf '  %s\n' $missing >&2
    status=1
fi
stale=$(printf '%s\n' "$named" | grep -Fxv "$present" || true)
if [ -n "$stale" ]; then
    echo "file_map: rows of $doc, section 8, naming no src/ file:" >&2
    printf '  %s\n' $stale >&2
    status=1
fi
[ "$status" -eq 0 ] || exit "$status"
echo "file_map: all $(printf '%s\n' "$present" | wc -l) files of src/ are in the map"
