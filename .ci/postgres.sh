#!/usr/bin/env bash
# Makes sure the PostgreSQL server binaries (initdb, pg_ctl) are installed:
# the `postgres` feature's tests start a private throwaway cluster from them
# (tests/common/pg.rs, which does the same check itself). As root on Debian
# it installs the `postgresql` package; otherwise it says what to install
# and fails: a missing server is never a silent skip.
set -euo pipefail
have_server() {
    ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 \
        || { command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/pg_ctl" ]; }
}
if have_server; then
    echo "PostgreSQL server binaries: $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | tail -1)"
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian's postgresql package"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    have_server && exit 0
fi
echo "The PostgreSQL tests need the server binaries (initdb, pg_ctl): install them," >&2
echo "e.g. 'sudo apt-get install postgresql' (Debian/Ubuntu), then run CI again." >&2
exit 1
