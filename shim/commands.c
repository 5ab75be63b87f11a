/*
 * commands.c — what the control socket answers. One handler per command,
 * dispatched through a NULL-terminated table.
 */
#define _GNU_SOURCE
#include "control.h"
#include "control_protocol.h"
#include "config.h"
#include "hostlimit.h"
#include "log.h"
#include "pool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cap(void)
{
    const struct pqshim_config *c = config_get();
    return c->pool_size + c->max_overflow;
}

static void json_pool(struct buf *b, const struct pool_view *v)
{
    const struct pool_stats *s = &v->stats;
    buf_printf(b, "{\"target\":");
    buf_json_string(b, v->name);
    if (v->capped)
        buf_printf(b, ",\"cap\":%d", cap());
    else
        buf_printf(b, ",\"cap\":null");
    buf_printf(b,
               ",\"open\":%d,\"checked_out\":%d,\"idle\":%d,\"waiting\":%d,"
               "\"connects_total\":%llu,\"connect_errors_total\":%llu,"
               "\"closes_total\":%llu,\"checkouts_total\":%llu,"
               "\"reuses_total\":%llu,\"waits_total\":%llu,"
               "\"timeouts_total\":%llu,\"deadlocks_total\":%llu,"
               "\"wait_ms_total\":%.3f,\"oldest_checkout_s\":%.3f",
               v->open, v->checked_out, v->idle, v->waiting,
               (unsigned long long)s->connects_total,
               (unsigned long long)s->connect_errors_total,
               (unsigned long long)s->closes_total,
               (unsigned long long)s->checkouts_total,
               (unsigned long long)s->reuses_total,
               (unsigned long long)s->waits_total,
               (unsigned long long)s->timeouts_total,
               (unsigned long long)s->deadlocks_total, s->wait_ms_total,
               v->oldest_checkout_s);
    struct hostlimit_view h;
    if (v->pool && hostlimit_view(v->name, &h))
        buf_printf(b, ",\"host\":{\"limit\":%d,\"held\":%d,\"held_here\":%d,"
                   "\"waiting\":%d,\"longest_wait_s\":%.3f,\"handoffs_total\":%llu,"
                   "\"yields_total\":%llu}}", h.limit, h.held, h.held_here, h.waiting,
                   h.longest_wait_s, (unsigned long long)s->host_handoffs_total,
                   (unsigned long long)s->host_yields_total);
    else
        buf_printf(b, ",\"host\":null}");
}

static void cmd_status(struct buf *b)
{
    const struct pqshim_config *c = config_get();
    struct pool_view *views = NULL;
    int n = pool_snapshot(&views);
    if (n < 0) {
        b->failed = true;
        return;
    }
    buf_printf(b, "{\"pid\":%d,\"program\":", (int)pqshim_pid);
    buf_json_string(b, program_invocation_short_name);
    buf_printf(b, ",\"policy\":\"%s\",\"paused\":%s,\"uptime_s\":%.3f,"
               "\"host_limit\":",
               config_policy_name(c->policy), pool_paused() ? "true" : "false",
               control_uptime());
    if (c->host_limit > 0) {
        char path[4096];
        hostlimit_path(path, sizeof path);
        buf_printf(b, "{\"limit\":%d,\"file\":", c->host_limit);
        buf_json_string(b, path);
        buf_printf(b, "}");
    } else {
        buf_printf(b, "null");
    }
    buf_printf(b, ",\"settings\":{");
    for (const struct setting *s = config_settings(); s->name; s++) {
        char value[SETTING_PATH_MAX];
        config_value_string(c, s->name, value, sizeof value);
        buf_printf(b, "%s\"%s\":", s == config_settings() ? "" : ",", s->name);
        buf_json_string(b, value);
    }
    struct pool_view total = {.capped = false};
    for (int i = 0; i < n; i++) {
        total.open += views[i].open;
        total.checked_out += views[i].checked_out;
        total.idle += views[i].idle;
        total.waiting += views[i].waiting;
        total.stats.connects_total += views[i].stats.connects_total;
        total.stats.connect_errors_total += views[i].stats.connect_errors_total;
        total.stats.closes_total += views[i].stats.closes_total;
        total.stats.checkouts_total += views[i].stats.checkouts_total;
        total.stats.reuses_total += views[i].stats.reuses_total;
        total.stats.waits_total += views[i].stats.waits_total;
        total.stats.timeouts_total += views[i].stats.timeouts_total;
        total.stats.deadlocks_total += views[i].stats.deadlocks_total;
        total.stats.wait_ms_total += views[i].stats.wait_ms_total;
        if (views[i].oldest_checkout_s > total.oldest_checkout_s)
            total.oldest_checkout_s = views[i].oldest_checkout_s;
    }
    snprintf(total.name, sizeof total.name, "all");
    buf_printf(b, "},\"totals\":");
    json_pool(b, &total);
    buf_printf(b, ",\"pools\":[");
    for (int i = 0; i < n; i++) {
        if (i)
            buf_printf(b, ",");
        json_pool(b, &views[i]);
    }
    buf_printf(b, "]}\n");
    free(views);
}

/* Prometheus label values: valid UTF-8, backslash, quote and newline
 * escaped, no other control character. */
static void prom_label(struct buf *b, const char *s)
{
    buf_escaped(b, s, ESC_PROM, "");
}

struct metric {
    const char *name, *type, *help;
};

static void cmd_metrics(struct buf *b)
{
    static const struct metric metrics[] = {
        {"pqshim_connections_open", "gauge", "Server connections open (idle, checked out or being opened)."},
        {"pqshim_connections_checked_out", "gauge", "Connections held by the program."},
        {"pqshim_connections_idle", "gauge", "Idle pooled connections."},
        {"pqshim_waiting", "gauge", "Connect calls waiting at the cap."},
        {"pqshim_cap", "gauge", "Connections allowed per target (size + overflow); absent under the null policy."},
        {"pqshim_connects_total", "counter", "Server connections established."},
        {"pqshim_connect_errors_total", "counter", "Server connections that failed to establish."},
        {"pqshim_closes_total", "counter", "Server connections closed."},
        {"pqshim_checkouts_total", "counter", "Connect calls served."},
        {"pqshim_reuses_total", "counter", "Connect calls served with a pooled connection."},
        {"pqshim_waits_total", "counter", "Connect calls that had to wait."},
        {"pqshim_timeouts_total", "counter", "Connect calls that timed out waiting."},
        {"pqshim_wait_seconds_total", "counter", "Time spent waiting at the cap."},
        {"pqshim_oldest_checkout_seconds", "gauge", "Age of the oldest checked-out connection."},
        {"pqshim_host_limit", "gauge", "Server connections allowed per target host-wide (PQSHIM_HOST_LIMIT); absent when off."},
        {"pqshim_host_slots_held", "gauge", "Host-wide slots taken for the target, by every process."},
        {"pqshim_host_slots_held_here", "gauge", "Host-wide slots taken for the target by this process."},
        {"pqshim_host_waiting", "gauge", "Connect calls queued host-wide for a slot of the target."},
        {"pqshim_host_longest_wait_seconds", "gauge", "The longest current wait host-wide for a slot of the target."},
        {"pqshim_host_handoffs_total", "counter", "Checkins handed to another caller of this process, keeping their slot, while callers waited host-wide."},
        {"pqshim_host_yields_total", "counter", "Connections closed to give their slot to a caller of another process."},
        {NULL, NULL, NULL},
    };
    struct pool_view *views = NULL;
    int n = pool_snapshot(&views);
    if (n < 0) {
        b->failed = true;
        return;
    }
    struct hostlimit_view *hosts = calloc((size_t)n + 1, sizeof *hosts);
    bool *has_host = calloc((size_t)n + 1, sizeof *has_host);
    if (!hosts || !has_host) {
        free(hosts);
        free(has_host);
        free(views);
        b->failed = true;
        return;
    }
    for (int i = 0; i < n; i++)
        has_host[i] = hostlimit_view(views[i].name, &hosts[i]);
    for (int m = 0; metrics[m].name; m++) {
        buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", metrics[m].name,
                   metrics[m].help, metrics[m].name, metrics[m].type);
        for (int i = 0; i < n; i++) {
            const struct pool_view *v = &views[i];
            const struct pool_stats *s = &v->stats;
            const struct hostlimit_view *h = &hosts[i];
            double values[] = {v->open, v->checked_out, v->idle, v->waiting,
                               cap(), (double)s->connects_total,
                               (double)s->connect_errors_total,
                               (double)s->closes_total, (double)s->checkouts_total,
                               (double)s->reuses_total, (double)s->waits_total,
                               (double)s->timeouts_total, s->wait_ms_total / 1000.0,
                               v->oldest_checkout_s, h->limit, h->held,
                               h->held_here, h->waiting, h->longest_wait_s,
                               (double)s->host_handoffs_total,
                               (double)s->host_yields_total};
            if ((m == 4 && !v->capped) || (m >= 14 && !has_host[i]))
                continue;
            buf_printf(b, "%s{pid=\"%d\",program=\"", metrics[m].name, (int)pqshim_pid);
            prom_label(b, program_invocation_short_name);
            buf_printf(b, "\",target=\"");
            prom_label(b, v->name);
            buf_printf(b, "\"} %.17g\n", values[m]);
        }
    }
    free(hosts);
    free(has_host);
    free(views);
}

static void cmd_dispose(struct buf *b)
{
    struct pool_view *views = NULL;
    int n = pool_snapshot(&views);
    int checked_out = 0;
    for (int i = 0; i < n; i++)
        checked_out += views[i].checked_out;
    free(views);
    int closed = pool_close_idle("disposed", false);
    buf_printf(b, "{\"closed_idle\":%d,\"close_at_checkin\":%d}\n", closed, checked_out);
}

static void cmd_pause(struct buf *b)
{
    pool_set_paused(true);
    LOG_EVENT(LOG_LVL_INFO, "pause", LF_S("detail", "new checkouts wait until resume"));
    buf_printf(b, "{\"paused\":true}\n");
}

static void cmd_resume(struct buf *b)
{
    pool_set_paused(false);
    LOG_EVENT(LOG_LVL_INFO, "resume", LF_S("detail", "checkouts proceed"));
    buf_printf(b, "{\"paused\":false}\n");
}

/* Run SELECT 1 on pg; false with the server's (or libpq's) error. */
static bool probe(PGconn *pg, char *error, size_t size)
{
    const struct real_libpq *pq = real_libpq();
    PGresult *res = pq->PQexec(pg, "SELECT 1");
    bool ok = res && pq->PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok)
        snprintf(error, size, "%s", pq->PQerrorMessage(pg));
    pq->PQclear(res);
    return ok;
}

static bool probe_open(struct pool *p, char *error, size_t size);

/* A fresh connection from the pool's parameters, bounded in time, opened
 * only within the pool's cap and the host limit. False with *at_cap set
 * when every connection allowed is in use (the target is not probed). */
static bool probe_new(struct pool *p, const char *name, bool *at_cap,
                      char *error, size_t size)
{
    *at_cap = false;
    if (!pool_reserve_probe(p)) {
        *at_cap = true;
        return false;
    }
    struct hostlimit_view hv;
    int slot = HOST_SLOT_NONE;
    if (hostlimit_view(name, &hv) && hv.held >= hv.limit) {
        *at_cap = true;
    } else {
        static struct target t; /* only the control thread runs commands */
        double waited;
        snprintf(t.name, sizeof t.name, "%s", name);
        slot = hostlimit_acquire(&t, &waited);
        *at_cap = slot == HOST_SLOT_TIMEOUT;
    }
    bool ok = !*at_cap && probe_open(p, error, size);
    pool_unreserve(p, slot, false);
    return ok;
}

static bool probe_open(struct pool *p, char *error, size_t size)
{
    const struct real_libpq *pq = real_libpq();
    char params[TARGET_KEY_MAX];
    pool_params(p, params, sizeof params);
    if (!params[0]) {
        snprintf(error, size, "no idle connection, and its parameters are too long to open one");
        return false;
    }
    const char *kw[100], *val[100];
    int n = 0;
    bool has_timeout = false;
    for (const char *s = params; *s && n < 98;) {
        kw[n] = s;
        s += strlen(s) + 1;
        val[n] = s;
        s += strlen(s) + 1;
        has_timeout |= strcmp(kw[n], "connect_timeout") == 0;
        n++;
    }
    if (!has_timeout) {
        kw[n] = "connect_timeout";
        val[n++] = "5";
    }
    kw[n] = val[n] = NULL;
    PGconn *pg = pq->PQconnectdbParams(kw, val, 0);
    bool ok = pg && pq->PQstatus(pg) == CONNECTION_OK;
    if (!ok)
        snprintf(error, size, "%s", pg ? pq->PQerrorMessage(pg) : "out of memory");
    else
        ok = probe(pg, error, size);
    pq->PQfinish(pg);
    return ok;
}

static void cmd_health(struct buf *b)
{
    struct pool_view *views = NULL;
    int n = pool_snapshot(&views);
    if (n < 0) {
        b->failed = true;
        return;
    }
    bool all_ok = true;
    buf_printf(b, "{\"targets\":[");
    for (int i = 0; i < n; i++) {
        char error[512] = "";
        double t0 = now_monotonic();
        struct shim_conn *sc = pool_borrow_idle(views[i].pool);
        const char *via = sc ? "idle" : "new";
        bool ok, at_cap = false;
        if (sc) {
            const struct real_libpq *prev = real_use(sc->pq);
            ok = conn_alive(sc, false) && probe(sc->pg, error, sizeof error);
            real_use(prev);
            pool_return_borrowed(sc, ok);
        } else {
            ok = probe_new(views[i].pool, views[i].name, &at_cap, error,
                           sizeof error);
        }
        /* Every connection allowed is busy: nothing is opened past the
         * limits to check it, and busy is not failing. */
        if (at_cap) {
            via = "at_cap";
            ok = true;
        }
        all_ok &= ok;
        size_t el = strlen(error);
        while (el > 0 && (error[el - 1] == '\n' || error[el - 1] == ' '))
            error[--el] = '\0';
        buf_printf(b, "%s{\"target\":", i ? "," : "");
        buf_json_string(b, views[i].name);
        buf_printf(b, ",\"ok\":%s,\"via\":\"%s\",\"ms\":%.3f,\"error\":",
                   ok ? "true" : "false", via, (now_monotonic() - t0) * 1000.0);
        buf_json_string(b, error);
        buf_printf(b, "}");
    }
    buf_printf(b, "],\"ok\":%s}\n", all_ok ? "true" : "false");
    free(views);
}

static void cmd_help(struct buf *b);

struct command {
    const char *word;
    void (*handler)(struct buf *);
    const char *help;
};

#define COMMAND_ROW(word, name, help) {word, cmd_##name, help},
static const struct command commands[] = {
    CONTROL_COMMANDS(COMMAND_ROW)
    {NULL, NULL, NULL},
};
#undef COMMAND_ROW

static void cmd_help(struct buf *b)
{
    for (const struct command *c = commands; c->word; c++)
        buf_printf(b, "%-8s %s\n", c->word, c->help);
}

void control_dispatch(const char *line, struct buf *reply)
{
    for (const struct command *c = commands; c->word; c++) {
        if (strcmp(line, c->word) == 0) {
            c->handler(reply);
            return;
        }
    }
    char shown[64];
    size_t i = 0;
    for (; line[i] && i < sizeof shown - 1; i++)
        shown[i] = (line[i] >= ' ' && line[i] < 0x7f) ? line[i] : '?';
    shown[i] = '\0';
    char message[128];
    snprintf(message, sizeof message, "unknown command '%s'; try help", shown);
    buf_printf(reply, "{\"" CONTROL_KEY_ERROR "\":");
    buf_json_string(reply, message);
    buf_printf(reply, "}\n");
}
