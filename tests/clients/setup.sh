#!/usr/bin/env bash
# Installs the real clients that tests/clients.rs drives against `discern serve`, from the
# package registries, into $1 (a directory under target/). Idempotent: a stamp file per part
# records what was installed, so later runs cost nothing.
#
#   python/  a virtual environment with psycopg2, psycopg 3, asyncpg, SQLAlchemy, pandas
#   node/    node-postgres (pg) and pg-cursor
#   the PostgreSQL JDBC driver from Debian (libpostgresql-jdbc-java), for the machine's Java
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

py_stamp="$out/python/.installed"
if ! cmp -s "$here/requirements.txt" "$py_stamp" 2>/dev/null; then
    rm -rf "$out/python"
    python3 -m venv "$out/python"
    "$out/python/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"
    cp "$here/requirements.txt" "$py_stamp"
fi

node_stamp="$out/node/.installed"
if ! cmp -s "$here/package.json" "$node_stamp" 2>/dev/null; then
    rm -rf "$out/node"
    mkdir -p "$out/node"
    cp "$here/package.json" "$out/node/package.json"
    (cd "$out/node" && npm install --silent --no-audit --no-fund >/dev/null)
    cp "$here/package.json" "$node_stamp"
fi

java_stamp="$out/java/.installed"
if ! cmp -s "$here/JdbcClient.java" "$java_stamp" 2>/dev/null; then
    rm -rf "$out/java"
    mkdir -p "$out/java"
    javac -d "$out/java" -cp /usr/share/java/postgresql.jar "$here/JdbcClient.java"
    cp "$here/JdbcClient.java" "$java_stamp"
fi
