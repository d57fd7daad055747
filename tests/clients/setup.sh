#!/usr/bin/env bash
# Installs the real clients that tests/clients.rs drives against `discern serve`, from the
# package registries, into $1 (a directory under target/). Idempotent: a stamp file per part
# records what was installed, so later runs cost nothing.
#
#   current/, oldest/  two client sets (today's releases, and the oldest Discern supports):
#       python/  a virtual environment with psycopg2, psycopg 3, asyncpg, SQLAlchemy, pandas
#       node/    node-postgres (pg) and pg-cursor
#   dash/    the Dash dashboard's requirements (deploy/dash/requirements.txt)
#   java/    the JDBC test compiled against the PostgreSQL JDBC driver from Debian
#            (libpostgresql-jdbc-java: the one pgjdbc this machine's registries carry)
#
# psql comes from Debian's postgresql-client, installed here when missing.
set -euo pipefail
out="$1"
here="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$out"

apt_install() {
    # Only when missing; needs root (CI and the development machines run as root).
    if ! dpkg -s "$@" >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ]; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1 ||
                { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; }
        else
            echo "setup.sh: please install the Debian packages: $*" >&2
            exit 1
        fi
    fi
}

apt_install postgresql-client libpostgresql-jdbc-java python3-venv

# A Python virtual environment in $1 with the requirements file $2, unless it is there already.
venv() {
    if ! cmp -s "$2" "$1/.installed" 2>/dev/null; then
        rm -rf "$1"
        python3 -m venv "$1"
        "$1/bin/pip" install -q --disable-pip-version-check -r "$2"
        cp "$2" "$1/.installed"
    fi
}

# One Python virtual environment and one node_modules per client set.
for set in current oldest; do
    venv "$out/$set/python" "$here/$set/requirements.txt"
    node="$out/$set/node"
    if ! cmp -s "$here/$set/package.json" "$node/.installed" 2>/dev/null; then
        rm -rf "$node"
        mkdir -p "$node"
        cp "$here/$set/package.json" "$node/package.json"
        (cd "$node" && npm install --silent --no-audit --no-fund >/dev/null)
        cp "$here/$set/package.json" "$node/.installed"
    fi
done

# The Dash dashboard's own requirements (deploy/dash), for its test.
venv "$out/dash" "$here/../../deploy/dash/requirements.txt"

java_stamp="$out/java/.installed"
if ! cmp -s "$here/JdbcClient.java" "$java_stamp" 2>/dev/null; then
    rm -rf "$out/java"
    mkdir -p "$out/java"
    javac -d "$out/java" -cp /usr/share/java/postgresql.jar "$here/JdbcClient.java"
    cp "$here/JdbcClient.java" "$java_stamp"
fi
