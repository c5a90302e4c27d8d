# shellcheck shell=bash
# PostgreSQL for the repository's commands (sourced by scripts/test and scripts/bench).
#
#   source scripts/lib/pg.sh
#   PG_WHO=scripts/test run_with_postgres COMMAND [ARGS...]
#
# With DATABASE_URL set, runs COMMAND against that database. Without it, starts a
# throwaway PostgreSQL cluster (initdb + pg_ctl from the machine's PostgreSQL
# installation) on a free port of 127.0.0.1 in a temporary directory, as a non-root user,
# exports DATABASE_URL, runs COMMAND, and stops and removes the cluster on exit, including
# on failure or Ctrl-C (stopping COMMAND too). COMMAND may be a shell function.
# PG_WHO names the caller in messages. COMMAND gets PG_BINDIR, the directory of the server
# binaries, so that cqrs_postgres::testing uses the ones found here.

PG_WHO="${PG_WHO:-$(basename "$0")}"

# The directory of initdb and pg_ctl: PG_BINDIR when set, else the first of PATH,
# `pg_config --bindir`, the newest /usr/lib/postgresql/*/bin (Debian's packages). The one
# search of the repository: .ci/run asks it too.
pg_find_bindir() {
    if [[ -n "${PG_BINDIR:-}" ]]; then
        [[ -x "$PG_BINDIR/initdb" && -x "$PG_BINDIR/pg_ctl" ]] && echo "$PG_BINDIR"
        return
    fi
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
        return 0
    fi
    if command -v pg_config >/dev/null 2>&1; then
        local dir
        dir="$(pg_config --bindir 2>/dev/null || true)"
        if [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
            echo "$dir"
            return 0
        fi
    fi
    local best=""
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5n); do
        if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
            best="$dir"
        fi
    done
    if [[ -n "$best" ]]; then
        echo "$best"
        return 0
    fi
    return 1
}

pg_free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
        return
    fi
    local port
    for _ in $(seq 1 100); do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    echo "$PG_WHO: found no free port" >&2
    exit 1
}

# Runs "$@" as the user the server runs as (see run_with_postgres).
pg_as_server_user() {
    if [[ ${#PG_AS_USER[@]} -eq 0 ]]; then
        "$@"
    elif [[ "${PG_AS_USER[0]}" == "su" ]]; then
        local quoted
        printf -v quoted '%q ' "$@"
        "${PG_AS_USER[@]}" "$quoted"
    else
        "${PG_AS_USER[@]}" "$@"
    fi
}

pg_cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [[ -n "${PG_CHILD:-}" ]] && kill -0 "$PG_CHILD" 2>/dev/null; then
        kill -TERM -- "-$PG_CHILD" 2>/dev/null || kill -TERM "$PG_CHILD" 2>/dev/null || true
        wait "$PG_CHILD" 2>/dev/null || true
    fi
    if [[ "${PG_STARTED:-0}" -eq 1 ]]; then
        pg_as_server_user "$PG_BINDIR/pg_ctl" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$PG_TMP"
    exit "$status"
}

run_with_postgres() {
    local bindir=""
    if bindir="$(pg_find_bindir)"; then
        # For the tests that start a cluster of their own, even with DATABASE_URL.
        export PG_BINDIR="$bindir"
    fi

    if [[ -n "${DATABASE_URL:-}" ]]; then
        echo "$PG_WHO: using the database of DATABASE_URL" >&2
        "$@"
        return $?
    fi

    if [[ -z "$bindir" ]]; then
        cat >&2 <<MSG
$PG_WHO: DATABASE_URL is not set and no PostgreSQL server binaries (initdb, pg_ctl)
were found in PG_BINDIR or, without it, on PATH, through pg_config, or under
/usr/lib/postgresql/*/bin.
Install them (Debian/Ubuntu: \`apt-get install postgresql\`), or set DATABASE_URL to a
database where $PG_WHO may create schemas.
MSG
        exit 1
    fi

    # PostgreSQL refuses to run as root: run it as the `postgres` OS user (created if
    # missing).
    PG_AS_USER=()
    if [[ "$(id -u)" -eq 0 ]]; then
        if ! id postgres >/dev/null 2>&1; then
            useradd --system --no-create-home --shell /usr/sbin/nologin postgres 2>/dev/null \
                || adduser --system --no-create-home postgres
        fi
        PG_AS_USER=(runuser -u postgres --)
        if ! command -v runuser >/dev/null 2>&1; then
            PG_AS_USER=(su postgres -s /bin/sh -c)
        fi
    fi

    PG_TMP="$(mktemp -d "${TMPDIR:-/tmp}/cqrs-pg-test.XXXXXX")"
    chmod 700 "$PG_TMP"
    if [[ "$(id -u)" -eq 0 ]]; then
        chown postgres "$PG_TMP"
    fi
    PG_DATA="$PG_TMP/data"
    PG_STARTED=0
    PG_CHILD=""
    trap pg_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    local port
    port="$(pg_free_port)"
    echo "$PG_WHO: starting a throwaway PostgreSQL ($PG_BINDIR) on 127.0.0.1:$port" >&2
    pg_as_server_user "$PG_BINDIR/initdb" -D "$PG_DATA" -U postgres --auth=trust --encoding=UTF8 --no-locale \
        >"$PG_TMP/initdb.log" 2>&1 \
        || { cat "$PG_TMP/initdb.log" >&2; exit 1; }
    PG_STARTED=1
    if ! pg_as_server_user "$PG_BINDIR/pg_ctl" -D "$PG_DATA" -l "$PG_TMP/server.log" -w -t 60 \
        -o "-h 127.0.0.1 -p $port -k $PG_TMP -c max_connections=200" start >/dev/null; then
        cat "$PG_TMP/server.log" >&2
        exit 1
    fi

    export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
    # In the background and waited for, so that a signal to the script runs the clean-up
    # at once (bash runs traps only between commands); the clean-up stops the command
    # too. `set -m` gives the command its own process group, so that the clean-up stops
    # cargo and the binaries it started.
    set -m
    "$@" &
    PG_CHILD=$!
    set +m
    wait "$PG_CHILD"
}
