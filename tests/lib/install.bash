# install_missing WHAT PACKAGE...: install the Debian packages with apt-get
# when root, else print the exact command and fail. Sourced by deps.sh and
# compat-deps.sh.
install_missing() {
    local what=$1; shift
    [ $# -eq 0 ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "pqshim: installing $*"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
            || { echo "pqshim: apt-get install $* failed" >&2; return 1; }
        return 0
    fi
    echo "pqshim: missing packages$what: $*" >&2
    echo "pqshim: install them with: sudo apt-get install $*" >&2
    return 1
}
