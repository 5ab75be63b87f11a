/*
 * control_protocol.h — the words of the control socket's protocol, shared by
 * the shim (control.c, commands.c) and pqshimctl (tools/ctl/).
 *
 * A client sends one command word and a newline; the process answers with
 * one reply and closes. Replies are one JSON object ("status", "dispose",
 * "pause", "resume", "health", and every error), or text ("metrics" in the
 * Prometheus format, "help").
 */
#ifndef PQSHIM_CONTROL_PROTOCOL_H
#define PQSHIM_CONTROL_PROTOCOL_H

#define CONTROL_CMD_STATUS  "status"
#define CONTROL_CMD_METRICS "metrics"
#define CONTROL_CMD_DISPOSE "dispose"
#define CONTROL_CMD_PAUSE   "pause"
#define CONTROL_CMD_RESUME  "resume"
#define CONTROL_CMD_HEALTH  "health"
#define CONTROL_CMD_HELP    "help"

/* Every command, in the order "help" lists them: X(WORD, NAME, HELP LINE).
 * The shim binds NAME to its handler cmd_NAME; pqshimctl takes the words. */
#define CONTROL_COMMANDS(X)                                                           \
    X(CONTROL_CMD_STATUS, status, "settings, totals and per-target pool numbers (JSON)") \
    X(CONTROL_CMD_METRICS, metrics, "the same numbers in Prometheus text format")      \
    X(CONTROL_CMD_DISPOSE, dispose,                                                   \
      "close idle connections now; checked-out ones close at checkin")                \
    X(CONTROL_CMD_PAUSE, pause, "new checkouts wait (up to PQSHIM_POOL_TIMEOUT) until resume") \
    X(CONTROL_CMD_RESUME, resume, "end a pause")                                      \
    X(CONTROL_CMD_HEALTH, health, "SELECT 1 on every known target; latency and errors (JSON)") \
    X(CONTROL_CMD_HELP, help, "this list")

/* ---- reply keys ---------------------------------------------------------- */

/* Any reply that is an error: {"error": "what went wrong"}. */
#define CONTROL_KEY_ERROR "error"

/* status: the process, then "totals" and one object per target in "pools". */
#define CONTROL_KEY_PID        "pid"
#define CONTROL_KEY_PROGRAM    "program"
#define CONTROL_KEY_POLICY     "policy"
#define CONTROL_KEY_PAUSED     "paused"         /* also the reply to pause and resume */
#define CONTROL_KEY_UPTIME     "uptime_s"
#define CONTROL_KEY_HOST_LIMIT "host_limit"     /* null, or {"limit", "file"} */
#define CONTROL_KEY_LIMIT      "limit"
#define CONTROL_KEY_FILE       "file"
#define CONTROL_KEY_TOTALS     "totals"
#define CONTROL_KEY_POOLS      "pools"

/* A pool (and the totals). */
#define CONTROL_KEY_TARGET         "target"     /* also a health row's */
#define CONTROL_KEY_CAP            "cap"        /* null under the null policy */
#define CONTROL_KEY_OPEN           "open"
#define CONTROL_KEY_CHECKED_OUT    "checked_out"
#define CONTROL_KEY_IDLE           "idle"
#define CONTROL_KEY_WAITING        "waiting"
#define CONTROL_KEY_CONNECTS       "connects_total"
#define CONTROL_KEY_REUSES         "reuses_total"
#define CONTROL_KEY_TIMEOUTS       "timeouts_total"
#define CONTROL_KEY_WAIT_MS        "wait_ms_total"
#define CONTROL_KEY_OLDEST         "oldest_checkout_s"
#define CONTROL_KEY_HOST           "host"       /* null, or {"limit", "held", "waiting", ...} */
#define CONTROL_KEY_HELD           "held"

/* dispose */
#define CONTROL_KEY_CLOSED_IDLE      "closed_idle"
#define CONTROL_KEY_CLOSE_AT_CHECKIN "close_at_checkin"

/* health: {"targets": [{"target", "ok", "via", "ms", "error"}...], "ok"} */
#define CONTROL_KEY_TARGETS "targets"
#define CONTROL_KEY_OK      "ok"
#define CONTROL_KEY_VIA     "via"
#define CONTROL_KEY_MS      "ms"

#endif
