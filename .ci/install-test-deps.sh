#!/usr/bin/env bash
# Install the real peers the end-to-end tests start themselves:
#   kamailio + kamailio-presence-modules (presence server / call proxy),
#   sip-tester (sipp, SIP user agents for calls and PUBLISH),
#   chromium + chromium-driver (headless browser and its WebDriver server for
#   the web console's browser tests, tests/tests/console.rs);
#   openapi-core (Python, pinned in tests/rc_openapi/requirements.txt) in
#   target/openapi-venv: the RingCentral simulator checks every request
#   against RingCentral's OpenAPI description with it (tests/src/rc_sim.rs);
#   the toolchains of the example connectors in other languages (examples/):
#   componentize-py (pinned in examples/python-connector/requirements.txt) in
#   target/py-tools, and componentize-js (pinned by
#   examples/js-connector/package-lock.json) in examples/js-connector/node_modules.
#   `cargo xtask plugins` then builds those examples offline.
#   cargo-deb (pinned, crates.io) in target/tools: tests/tests/package.rs
#   builds the Debian package with it and, as root, installs and purges it.
#   postgresql (15): the test kit starts throw-away clusters with its
#   initdb/pg_ctl (tests/src/postgres.rs); the packaged cluster is not used.
# Idempotent. Debian packages (and the one pip requirement above). The Debian package's own service is
# neither started nor enabled: the tests run their own instances on
# 127.0.0.1 with private config, pid file and runtime dir.
set -euo pipefail

say() { echo "install-test-deps: $*"; }

module_dir() {
    local d
    for d in /usr/lib/x86_64-linux-gnu/kamailio/modules /usr/lib/aarch64-linux-gnu/kamailio/modules \
             /usr/lib/*/kamailio/modules /usr/lib/kamailio/modules /usr/lib64/kamailio/modules; do
        if [ -f "$d/presence.so" ]; then
            echo "$d"
            return 0
        fi
    done
    return 1
}

# kamailio lives in /usr/sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"

have_all() {
    command -v kamailio >/dev/null 2>&1 && command -v sipp >/dev/null 2>&1 && module_dir >/dev/null \
        && command -v sqlite3 >/dev/null 2>&1 && command -v xmllint >/dev/null 2>&1 \
        && command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 \
        && [ -x /usr/sbin/slapd ] && command -v ldapadd >/dev/null 2>&1 \
        && [ -x /usr/lib/postgresql/15/bin/initdb ] && [ -x /usr/lib/postgresql/15/bin/pg_ctl ]
}

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

if have_all; then
    say "kamailio ($(command -v kamailio)), sipp ($(command -v sipp)) and presence modules ($(module_dir)) already installed; apt skipped"
else
    if [ "$(id -u)" -ne 0 ] && [ -z "$SUDO" ]; then
        say "not root and no sudo: cannot install kamailio/sipp" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Forbid maintainer scripts from starting services (invoke-rc.d and
    # deb-systemd-invoke honour policy-rc.d exit code 101).
    POLICY=/usr/sbin/policy-rc.d
    POLICY_BACKUP=""
    if [ -e "$POLICY" ]; then
        POLICY_BACKUP="$(mktemp)"
        $SUDO cp -p "$POLICY" "$POLICY_BACKUP"
    fi
    restore_policy() {
        if [ -n "$POLICY_BACKUP" ]; then
            $SUDO cp -p "$POLICY_BACKUP" "$POLICY"
            rm -f "$POLICY_BACKUP"
            POLICY_BACKUP="restored"
        else
            $SUDO rm -f "$POLICY"
        fi
    }
    trap restore_policy EXIT
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod 755 "$POLICY"
    say "policy-rc.d installed: package services will not be started"

    say "apt-get update"
    $SUDO apt-get update -qq
    # sqlite3: the host-work test holds the hub's store locked with it.
    # libxml2-utils: xmllint, with which the EWS simulator validates every
    # request against tests/ews_xsd/ (tests/src/ews_sim.rs).
    # slapd + ldap-utils: a throw-away OpenLDAP server for the directory
    # sync test (tests/src/slapd.rs); its packaged service is not started.
    # postgresql: throw-away PostgreSQL 15 clusters for the shared store's
    # tests (tests/src/postgres.rs); its packaged service is not started.
    say "apt-get install kamailio kamailio-presence-modules sip-tester sqlite3 libxml2-utils chromium chromium-driver slapd ldap-utils postgresql"
    $SUDO apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        kamailio kamailio-presence-modules sip-tester sqlite3 libxml2-utils chromium chromium-driver slapd ldap-utils \
        postgresql
    restore_policy
    trap - EXIT
    if [ -n "$POLICY_BACKUP" ]; then say "previous policy-rc.d restored"; else say "policy-rc.d removed"; fi
    if ! have_all; then
        say "installation finished but kamailio/sipp/presence.so/sqlite3/chromium/chromedriver/slapd/ldapadd/postgresql 15 are still missing" >&2
        exit 1
    fi
    say "installed: $(command -v kamailio), $(command -v sipp), modules in $(module_dir)"
fi

# Make sure the packaged service is neither running nor enabled (it would
# hold port 5060 and is not what the tests use). Works with and without a
# running systemd: `systemctl disable` only edits symlinks.
if command -v systemctl >/dev/null 2>&1 && [ -e /lib/systemd/system/kamailio.service ]; then
    if [ -d /run/systemd/system ] && systemctl is-active --quiet kamailio 2>/dev/null; then
        say "stopping the kamailio system service"
        $SUDO systemctl stop kamailio || true
    fi
    if systemctl is-enabled --quiet kamailio 2>/dev/null; then
        say "disabling the kamailio system service"
        $SUDO systemctl disable kamailio >/dev/null 2>&1 || true
    fi
fi
for pidfile in /run/kamailio/kamailio.pid /var/run/kamailio/kamailio.pid; do
    if [ -s "$pidfile" ]; then
        pid="$(cat "$pidfile")"
        if kill -0 "$pid" 2>/dev/null; then
            say "stopping the system kamailio (pid $pid from $pidfile)"
            $SUDO kill "$pid" || true
        fi
    fi
done
say "kamailio $(kamailio -v 2>/dev/null | head -1 | awk '{print $3}'), $(sipp -v 2>/dev/null | grep -o 'SIPp v[^ ,]*' | head -1 || true)"

# The RingCentral simulator's OpenAPI check: a virtualenv under target/
# (found there by tests/src/rc_sim.rs), or the user's site-packages when the
# venv module is missing (then rc_sim.rs finds it through `python3`).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQS="$ROOT/tests/rc_openapi/requirements.txt"
VENV="$ROOT/target/openapi-venv"
openapi_ok() { "$1" -c 'import openapi_core, yaml; assert openapi_core.__version__ == "0.23.1"' >/dev/null 2>&1; }
if [ -x "$VENV/bin/python" ] && openapi_ok "$VENV/bin/python"; then
    say "openapi-core already installed in $VENV; pip skipped"
elif python3 -m venv "$VENV" >/dev/null 2>&1 || { rm -rf "$VENV"; false; }; then
    say "pip install -r tests/rc_openapi/requirements.txt into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQS"
    openapi_ok "$VENV/bin/python" || { say "openapi-core is still missing in $VENV" >&2; exit 1; }
elif openapi_ok python3; then
    say "no venv module; openapi-core already importable by python3; pip skipped"
else
    say "no venv module; pip install --user -r tests/rc_openapi/requirements.txt"
    python3 -m pip install -q --user --disable-pip-version-check -r "$REQS"
    openapi_ok python3 || { say "openapi-core is still missing for python3" >&2; exit 1; }
fi
# The example connectors in Python and JavaScript: their toolchains, pinned.
# Installing needs PyPI and npm; building with them afterwards needs nothing.
PY_TOOLS="$ROOT/target/py-tools"
PY_REQS="$ROOT/examples/python-connector/requirements.txt"
PY_WANT="componentize-py $(sed -n 's/^componentize-py==//p' "$PY_REQS")"
if [ -x "$PY_TOOLS/bin/componentize-py" ] && [ "$("$PY_TOOLS/bin/componentize-py" --version 2>/dev/null)" = "$PY_WANT" ]; then
    say "$PY_WANT already installed in $PY_TOOLS; pip skipped"
else
    say "pip install -r examples/python-connector/requirements.txt into $PY_TOOLS"
    python3 -m venv "$PY_TOOLS" || { say "python3 -m venv is needed for componentize-py (apt-get install python3-venv)" >&2; exit 1; }
    "$PY_TOOLS/bin/python" -m pip install -q --disable-pip-version-check -r "$PY_REQS"
    [ "$("$PY_TOOLS/bin/componentize-py" --version)" = "$PY_WANT" ] || { say "$PY_WANT is still missing in $PY_TOOLS" >&2; exit 1; }
fi
JS_DIR="$ROOT/examples/js-connector"
# npm ci leaves a copy of the lock it installed: unchanged lock, nothing to do.
JS_STAMP="$JS_DIR/node_modules/.installed-package-lock.json"
if [ -x "$JS_DIR/node_modules/.bin/componentize-js" ] && cmp -s "$JS_DIR/package-lock.json" "$JS_STAMP"; then
    say "examples/js-connector/node_modules matches its package-lock.json; npm skipped"
elif ! command -v npm >/dev/null 2>&1; then
    say "npm (Node.js 18 or later) is needed for componentize-js (apt-get install nodejs npm)" >&2
    exit 1
else
    say "npm ci in examples/js-connector (componentize-js, pinned by its package-lock.json)"
    (cd "$JS_DIR" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$JS_DIR/package-lock.json" "$JS_STAMP"
fi
# The Debian package's builder (tests/tests/package.rs), pinned; dpkg,
# adduser and systemd-analyze come with Debian itself.
CARGO_DEB_VERSION=3.8.0
TOOLS="$ROOT/target/tools"
if [ "$("$TOOLS/bin/cargo-deb" --version 2>/dev/null)" = "cargo-deb $CARGO_DEB_VERSION" ]; then
    say "cargo-deb $CARGO_DEB_VERSION already installed in $TOOLS; cargo install skipped"
else
    say "cargo install cargo-deb $CARGO_DEB_VERSION into $TOOLS"
    cargo install -q --locked --version "$CARGO_DEB_VERSION" --root "$TOOLS" cargo-deb
fi
say "done"
