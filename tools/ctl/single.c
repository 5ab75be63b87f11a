/*
 * single.c — one command to one process: find its socket (-s, -p or this
 * environment's PQSHIM_CONTROL), ask, and show the reply.
 */
#define _GNU_SOURCE
#include "single.h"

#include "discover.h"
#include "health.h"
#include "json.h"
#include "status.h"
#include "talk.h"
#include "util.h"
#include "../../shim/control_path.h"
#include "../../shim/control_protocol.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define COMMAND_WORD(word, name, help) word,
static const char *const single_commands[] = {CONTROL_COMMANDS(COMMAND_WORD) NULL};
#undef COMMAND_WORD

bool single_command_known(const char *word)
{
    for (int i = 0; single_commands[i]; i++)
        if (strcmp(word, single_commands[i]) == 0)
            return true;
    return false;
}

int run_single(const struct options *o)
{
    struct entry e;
    memset(&e, 0, sizeof e);
    char who[SUN_PATH_SIZE + 32];
    /* Who must serve the socket: the owner of the process named, else
     * this user (root believes the socket file's owner). */
    uid_t owner = geteuid();
    if (o->socket) {
        if (strlen(o->socket) >= sizeof e.path) {
            errmsg("%s: path too long for a Unix socket", o->socket);
            return EXIT_USAGE;
        }
        snprintf(e.path, sizeof e.path, "%s", o->socket);
        snprintf(who, sizeof who, "%s", e.path);
    } else if (o->pid) {
        if (!pid_socket((pid_t)o->pid, e.path, sizeof e.path, &owner))
            return EXIT_USAGE;
        e.named_by = (pid_t)o->pid;
        snprintf(who, sizeof who, "process %ld (%s)", o->pid, e.path);
    } else {
        const char *pattern = getenv("PQSHIM_CONTROL");
        if (!pattern || !*pattern)
            usage_error("name the process: -p PID or -s SOCKET (or see '%s ls')", progname);
        if (strstr(pattern, "%p"))
            usage_error("PQSHIM_CONTROL (%s) names one socket per process: choose one with "
                        "-p PID (see '%s ls')", pattern, progname);
        if (!control_expand_path(pattern, getpid(), geteuid(), e.path, sizeof e.path)) {
            errmsg("PQSHIM_CONTROL expands to an empty or too long path");
            return EXIT_USAGE;
        }
        snprintf(who, sizeof who, "%s", e.path);
    }
    struct stat st;
    if (!o->pid && geteuid() == 0 && lstat(e.path, &st) == 0)
        owner = st.st_uid;
    e.owner = owner;
    bool is_health = strcmp(o->command, CONTROL_CMD_HEALTH) == 0;
    double timeout = o->timeout > 0 ? o->timeout : is_health ? HEALTH_TIMEOUT : DEFAULT_TIMEOUT;
    exchange_all(&e, 1, o->command, timeout, timeout);
    if (e.rc < 0) {
        errmsg("%s: %s", who, talk_error(&e, timeout));
        return EXIT_USAGE;
    }
    struct reply r = e.reply;
    if (o->pid && e.pid != (pid_t)o->pid)
        errmsg("%s: served by process %d (the same user), which shares the socket", who,
               (int)e.pid);
    struct json *j = r.data[0] == '{' ? json_parse(r.data, r.len) : NULL;
    const char *error = json_str(j, CONTROL_KEY_ERROR, NULL);
    bool text_reply = strcmp(o->command, CONTROL_CMD_METRICS) == 0 ||
                      strcmp(o->command, CONTROL_CMD_HELP) == 0;
    int status = EXIT_OK;
    if (!error && strcmp(o->command, CONTROL_CMD_STATUS) == 0 && j &&
        json_num(j, CONTROL_KEY_PID) != (double)e.pid) {
        errmsg("%s: the reply claims pid %.0f but pid %d serves the socket: not believed", who,
               json_num(j, CONTROL_KEY_PID), (int)e.pid);
        status = EXIT_REPLY;
    } else if (error) {
        if (o->json)
            print_text(r.data, r.len);
        else
            errmsg("%s: %s", who, error);
        status = EXIT_REPLY;
    } else if (text_reply || o->json) {
        print_text(r.data, r.len);
        if (!text_reply && !j) {
            errmsg("%s: malformed reply", who);
            status = EXIT_REPLY;
        } else if (is_health && !json_true(j, CONTROL_KEY_OK)) {
            status = EXIT_REPLY;
        }
    } else if (!j || j->type != J_OBJ) {
        errmsg("%s: malformed reply", who);
        status = EXIT_REPLY;
    } else if (strcmp(o->command, CONTROL_CMD_STATUS) == 0) {
        show_status(j);
    } else if (is_health) {
        status = show_health(j) ? EXIT_OK : EXIT_REPLY;
    } else if (strcmp(o->command, CONTROL_CMD_DISPOSE) == 0) {
        double closed = json_num(j, CONTROL_KEY_CLOSED_IDLE);
        double later = json_num(j, CONTROL_KEY_CLOSE_AT_CHECKIN);
        printf("Closed %.0f idle connection%s; %.0f checked-out connection%s will close at checkin.\n",
               closed, closed == 1 ? "" : "s", later, later == 1 ? "" : "s");
    } else if (json_true(j, CONTROL_KEY_PAUSED)) {
        printf("Paused: new checkouts wait (up to PQSHIM_POOL_TIMEOUT) until resume.\n");
    } else {
        printf("Resumed: checkouts proceed.\n");
    }
    json_free(j);
    reply_free(&r);
    return status;
}

