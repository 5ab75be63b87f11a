/*
 * term.c — the terminal for top: raw input, restored on every way out
 * (exit, a fatal signal), its width, and waiting for a key.
 */
#define _GNU_SOURCE
#include "term.h"

#include "util.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

static struct termios saved_tio;
static volatile sig_atomic_t tio_saved;
static volatile sig_atomic_t resized;

void restore_terminal(void)
{
    if (tio_saved) {
        tcsetattr(STDIN_FILENO, TCSANOW, &saved_tio);
        tio_saved = 0;
    }
    if (isatty(STDOUT_FILENO)) {
        ssize_t ignored = write(STDOUT_FILENO, "\033[?25h", 6); /* cursor back on */
        (void)ignored;
    }
}

static void on_fatal_signal(int sig)
{
    restore_terminal(); /* tcsetattr and write are async-signal-safe */
    signal(sig, SIG_DFL);
    raise(sig);
}

static void on_winch(int sig)
{
    (void)sig;
    resized = 1;
}

void raw_terminal(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);
    sa.sa_handler = on_winch;
    sigaction(SIGWINCH, &sa, NULL);
    atexit(restore_terminal);
    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_tio) != 0)
        return;
    struct termios raw = saved_tio;
    raw.c_lflag &= (tcflag_t) ~(ICANON | ECHO);
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    tio_saved = 1;
    tcsetattr(STDIN_FILENO, TCSANOW, &raw);
}

int term_columns(void)
{
    struct winsize ws;
    if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20)
        return ws.ws_col;
    return 0; /* not a terminal: no truncation */
}

/* Wait up to ms for a key; true when the user asked to quit. */
bool term_wait_quit(int ms, bool *stdin_open)
{
    double deadline = now_mono() + ms / 1000.0;
    for (;;) {
        int left = (int)((deadline - now_mono()) * 1000);
        if (left <= 0 || resized) {
            resized = 0;
            return false;
        }
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        int pr = poll(&pfd, *stdin_open ? 1 : 0, left);
        if (pr <= 0)
            continue;
        char keys[64];
        ssize_t n = read(STDIN_FILENO, keys, sizeof keys);
        if (n <= 0) {
            *stdin_open = n < 0 && (errno == EINTR || errno == EAGAIN);
            continue;
        }
        for (ssize_t k = 0; k < n; k++)
            if (keys[k] == 'q' || keys[k] == 'Q' || keys[k] == 4 /* ^D */)
                return true;
    }
}

