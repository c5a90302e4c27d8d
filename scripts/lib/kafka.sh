# shellcheck shell=bash
# tansu, a Kafka-compatible broker, for the repository's commands (sourced by scripts/test).
#
#   source scripts/lib/kafka.sh
#   KAFKA_WHO=scripts/test kafka_ensure_installed
#
# The tests of cqrs-kafka start real tansu brokers (cqrs_kafka::testing), which need the
# binary. No Kafka broker is packaged for the machines of this project; tansu is one
# written in Rust and installs from crates.io. kafka_ensure_installed makes sure there is
# one and exports TANSU as its absolute path, so that the tests run that binary and no
# other: TANSU when it is already set, else tansu on PATH, else the one in cargo's bin
# directory, else the pinned release built with `cargo install` (about a quarter of an
# hour of compiling, once: later runs find the binary). KAFKA_WHO names the caller in
# messages.
#
# The features matter: `dynostore` brings the in-memory storage engine (memory://) and
# `libsql` the SQLite one (sqlite://, a file that survives a restart of the broker); the
# tests use both. A tansu built without them starts, then refuses the storage engine.

KAFKA_WHO="${KAFKA_WHO:-$(basename "$0")}"
KAFKA_TANSU_INSTALL=(cargo install tansu --version 0.6.0 --features "dynostore,libsql" --locked)

# "$1" as an absolute path (the tests run in each package's directory, not this one).
kafka_absolute() {
    (cd "$(dirname "$1")" && echo "$PWD/$(basename "$1")")
}

# Where `cargo install` puts binaries: $CARGO_INSTALL_ROOT/bin, else $CARGO_HOME/bin.
kafka_cargo_bin_dir() {
    if [[ -n "${CARGO_INSTALL_ROOT:-}" ]]; then
        echo "$CARGO_INSTALL_ROOT/bin"
    else
        echo "${CARGO_HOME:-$HOME/.cargo}/bin"
    fi
}

kafka_ensure_installed() {
    local binary=""
    local installed
    installed="$(kafka_cargo_bin_dir)/tansu"
    if [[ -n "${TANSU:-}" ]]; then
        binary="$TANSU"
        if [[ ! -f "$binary" || ! -x "$binary" ]]; then
            echo "$KAFKA_WHO: TANSU is $binary, which is not an executable file:" \
                "point it at the tansu binary, or unset it" >&2
            return 1
        fi
    elif binary="$(command -v tansu 2>/dev/null)" && [[ -x "$binary" ]]; then
        :
    elif [[ -x "$installed" ]]; then
        binary="$installed"
    else
        echo "$KAFKA_WHO: no tansu (Kafka-compatible broker) found: installing it with" \
            "\`${KAFKA_TANSU_INSTALL[*]}\`, which takes about a quarter of an hour, once" >&2
        if ! "${KAFKA_TANSU_INSTALL[@]}" >&2; then
            cat >&2 <<MSG
$KAFKA_WHO: could not install tansu with \`${KAFKA_TANSU_INSTALL[*]}\`.
It needs crates.io and a C compiler (for SQLite). Install it yourself with that command,
or set TANSU to a tansu binary built with the features dynostore and libsql.
MSG
            return 1
        fi
        if [[ ! -x "$installed" ]]; then
            echo "$KAFKA_WHO: cargo installed tansu, but there is no $installed;" \
                "set TANSU to the binary" >&2
            return 1
        fi
        binary="$installed"
    fi
    local version
    if ! version="$("$binary" --version 2>&1)"; then
        echo "$KAFKA_WHO: $binary --version failed: $version" >&2
        return 1
    fi
    binary="$(kafka_absolute "$binary")"
    echo "$KAFKA_WHO: using $binary ($version)" >&2
    export TANSU="$binary"
}
