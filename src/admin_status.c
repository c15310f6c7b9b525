/*
 * admin_status: owns the HTML of the admin port's status page (GET /).
 *
 * Pure: a filled struct admin_status in, bytes out, through a buf_fixed so
 * the caller learns the size it needs.  No script, no external style or
 * font: the page must load from a browser with no network and read as
 * text under curl, one fact per line.  Every number sits in an element
 * with a stable id (listed in admin.h) and, where it is rounded for
 * people, the exact value in a data- attribute, so a headless browser or
 * a script can check it against /metrics.  Log lines are the only text
 * that does not come from us, so they alone are escaped.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <inttypes.h>
#include <string.h>

#include "admin.h"
#include "buf.h"

static const char admin_status_style[] =
    "body{font:15px/1.5 system-ui,sans-serif;margin:1.5em auto;"
    "max-width:52em;padding:0 1em;color:#222}"
    "h1{font-size:1.4em;margin:0 0 .6em}"
    "h2{font-size:1.1em;margin:1.4em 0 .4em}"
    "table{border-collapse:collapse}"
    "th{text-align:left;font-weight:normal;color:#555;padding:.15em 1.5em"
    " .15em 0;vertical-align:top}"
    "td{font-variant-numeric:tabular-nums}"
    ".up{color:#176b24;font-weight:bold}.down{color:#b3261e;font-weight:bold}"
    "meter{width:10em;margin-left:.6em;vertical-align:middle}"
    "ol{padding-left:1.4em}li{font:13px/1.4 monospace;margin:.2em 0;"
    "overflow-wrap:anywhere}"
    ".none{color:#555}";

/* Text from a log line, safe inside an element. */
static void
admin_status_escape(struct buf_fixed *o, const char *s)
{
    for (; *s != '\0'; s++) {
        switch (*s) {
        case '<':
            buf_fixed_printf(o, "&lt;");
            break;
        case '>':
            buf_fixed_printf(o, "&gt;");
            break;
        case '&':
            buf_fixed_printf(o, "&amp;");
            break;
        case '"':
            buf_fixed_printf(o, "&quot;");
            break;
        default:
            buf_fixed_bytes(o, s, 1);
            break;
        }
    }
}

/* "3d 4h 5m 6s", dropping leading zero units. */
static void
admin_status_duration(struct buf_fixed *o, uint64_t seconds)
{
    uint64_t d = seconds / 86400, h = seconds / 3600 % 24;
    uint64_t m = seconds / 60 % 60, s = seconds % 60;

    if (d > 0) {
        buf_fixed_printf(o, "%" PRIu64 "d %" PRIu64 "h %" PRIu64 "m", d, h, m);
    } else if (h > 0) {
        buf_fixed_printf(o, "%" PRIu64 "h %" PRIu64 "m %" PRIu64 "s", h, m, s);
    } else if (m > 0) {
        buf_fixed_printf(o, "%" PRIu64 "m %" PRIu64 "s", m, s);
    } else {
        buf_fixed_printf(o, "%" PRIu64 "s", s);
    }
}

/* "<span id=a>n</span> of <span id=b>cap</span> <meter>" */
static void
admin_status_fill(struct buf_fixed *o, const char *label, const char *id,
                  uint64_t n, const char *cap_id, uint64_t cap)
{
    buf_fixed_printf(o,
                     "<tr><th>%s</th><td><span id=\"%s\">%" PRIu64
                     "</span> of <span id=\"%s\">%" PRIu64 "</span>",
                     label, id, n, cap_id, cap);
    if (cap > 0) {
        buf_fixed_printf(o,
                         " (%.1f%%)<meter min=\"0\" max=\"%" PRIu64
                         "\" high=\"%" PRIu64 "\" value=\"%" PRIu64
                         "\"></meter>",
                         100.0 * (double) n / (double) cap, cap,
                         cap - cap / 10, n);
    }
    buf_fixed_printf(o, "</td></tr>\n");
}

size_t
admin_status_html(const struct admin_status *st, char *buf, size_t cap)
{
    struct buf_fixed o = { .buf = buf, .cap = cap, .len = 0 };
    uint64_t         lookups = st->hits + st->misses;
    int64_t          connections = st->connections < 0 ? 0 : st->connections;

    buf_fixed_printf(
        &o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head>"
        "<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width\">\n"
        "<title>redis-cache-proxy %s</title>\n<style>%s</style>"
        "</head>\n<body>\n<h1>redis-cache-proxy</h1>\n<table>\n",
        st->version, admin_status_style);
    buf_fixed_printf(&o,
                     "<tr><th>Version</th><td id=\"version\">%s</td>"
                     "</tr>\n",
                     st->version);
    buf_fixed_printf(&o,
                     "<tr><th>Uptime</th><td id=\"uptime\" "
                     "data-seconds=\"%" PRIu64 "\">",
                     st->uptime_seconds);
    admin_status_duration(&o, st->uptime_seconds);
    buf_fixed_printf(&o, "</td></tr>\n");
    buf_fixed_printf(&o,
                     "<tr><th>Workers</th><td><span id=\"workers\">%" PRIu32
                     "</span> of %" PRIu32 " running, <span "
                     "id=\"restarts\">%" PRIu64 "</span> restarted</td>"
                     "</tr>\n",
                     st->workers_alive, st->workers_configured,
                     st->worker_restarts);
    buf_fixed_printf(&o,
                     "<tr><th>Redis</th><td><span id=\"redis\" "
                     "class=\"%s\">%s</span> ",
                     st->redis_up ? "up" : "down",
                     st->redis_up ? "up" : "down");
    admin_status_escape(&o, st->redis_addr);
    buf_fixed_printf(&o, "</td></tr>\n");
    if (lookups > 0) {
        buf_fixed_printf(&o,
                         "<tr><th>Hit ratio</th><td id=\"hit-ratio\" "
                         "data-hits=\"%" PRIu64 "\" data-misses=\"%" PRIu64
                         "\">%.1f%%</td></tr>\n",
                         st->hits, st->misses,
                         100.0 * (double) st->hits / (double) lookups);
    } else {
        buf_fixed_printf(&o, "<tr><th>Hit ratio</th><td id=\"hit-ratio\" "
                             "data-hits=\"0\" data-misses=\"0\">no lookups yet"
                             "</td></tr>\n");
    }
    admin_status_fill(&o, "Entries", "entries", st->entries,
                      "capacity-entries", st->capacity_entries);
    admin_status_fill(&o, "Bytes", "bytes", st->bytes, "capacity-bytes",
                      st->capacity_bytes);
    admin_status_fill(&o, "Connections", "connections", (uint64_t) connections,
                      "max-clients", st->max_clients);
    buf_fixed_printf(&o,
                     "<tr><th>Cache</th><td id=\"cache\" class=\"%s\">%s"
                     "</td></tr>\n",
                     st->poisoned ? "down" : "up",
                     st->poisoned ? "poisoned: bypassed until the supervisor "
                                    "rebuilds it"
                                  : "ok");
    buf_fixed_printf(&o,
                     "<tr><th>Redis errors</th><td id=\"backend-errors\">"
                     "unreachable <span id=\"errors-unreachable\">%" PRIu64
                     "</span>, timeout <span id=\"errors-timeout\">%" PRIu64
                     "</span>, reply <span id=\"errors-reply\">%" PRIu64
                     "</span>, tls <span id=\"errors-tls\">%" PRIu64
                     "</span></td></tr>\n</table>\n",
                     st->backend_unreachable, st->backend_timeout,
                     st->backend_reply, st->backend_tls);

    if (st->backend != NULL && st->backend->nnodes > 0) {
        const struct admin_health *h = st->backend;

        /* Which nodes are up: the same list as /health's "members". */
        buf_fixed_printf(&o, "<h2>Redis nodes</h2>\n<table id=\"nodes\">\n"
                             "<tr><th>Node</th><th>Role</th><th>Slots</th>"
                             "<th>State</th></tr>\n");
        for (uint32_t i = 0; i < h->nnodes; i++) {
            buf_fixed_printf(&o, "<tr><td>");
            admin_status_escape(&o, h->nodes[i].addr);
            buf_fixed_printf(&o,
                             "</td><td>%s</td><td>%" PRIu32 "</td>"
                             "<td class=\"%s\">%s</td></tr>\n",
                             h->nodes[i].replica ? "replica" : "primary",
                             h->nodes[i].slots,
                             strcmp(h->nodes[i].state, "down") == 0 ? "down"
                                                                    : "up",
                             h->nodes[i].state);
        }
        if (h->nodes_more > 0) {
            buf_fixed_printf(&o,
                             "<tr><td colspan=\"4\">and %" PRIu32
                             " more</td></tr>\n",
                             h->nodes_more);
        }
        buf_fixed_printf(&o, "</table>\n");
    }
    buf_fixed_printf(&o, "<h2>Last errors and warnings</h2>\n");
    if (st->nerrors == 0) {
        buf_fixed_printf(&o, "<p id=\"errors\" class=\"none\">none since "
                             "start</p>\n");
    } else {
        buf_fixed_printf(&o, "<ol id=\"errors\">\n");
        for (size_t i = 0; i < st->nerrors; i++) {
            buf_fixed_printf(&o, "<li>");
            admin_status_escape(&o, st->errors[i]);
            buf_fixed_printf(&o, "</li>\n");
        }
        buf_fixed_printf(&o, "</ol>\n");
    }
    buf_fixed_printf(&o,
                     "<p>Also: <a href=\"/metrics\">/metrics</a> "
                     "(Prometheus), <a href=\"/health\">/health</a> (JSON)."
                     "</p>\n</body></html>\n");
    return o.len;
}
