# pqshim for interactive shells: every connection psql opens is logged
# (null policy: nothing else changes). Source this file from ~/.bashrc
# (or /etc/bash.bashrc for every user).
if command -v pqshim >/dev/null 2>&1; then
    # The log goes to a file, not into psql's screen; an existing
    # PQSHIM_LOG is kept.
    : "${PQSHIM_LOG:=$HOME/.pqshim.log}"
    export PQSHIM_LOG
    alias psql='pqshim -- psql'
fi
