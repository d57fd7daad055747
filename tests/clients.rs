//! The real clients our users run, unmodified, against `discern serve` over TLS with the
//! server certificate verified: psql (meta-commands, the report, `\copy`, Ctrl-C), psycopg2,
//! psycopg 3, SQLAlchemy (psycopg2, psycopg and asyncpg dialects: reflection of every table)
//! with pandas, asyncpg, node-postgres, the PostgreSQL JDBC driver (`DatabaseMetaData`), and
//! the Dash dashboard in deploy/dash. The Python and Node clients run twice: at their current
//! releases and at the oldest Discern supports (tests/clients/{current,oldest}).
//! `tests/clients/setup.sh` installs them from the package registries into target/ on first
//! use.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use common::pg::Server;

/// Where the clients are installed (target/tmp/clients).
fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("clients")
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs setup.sh once per test process (tests run on several threads).
fn setup() -> PathBuf {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = clients_dir();
    if !*done {
        let out = Command::new("bash")
            .arg(repo().join("tests/clients/setup.sh"))
            .arg(&dir)
            .output()
            .expect("run tests/clients/setup.sh");
        assert!(
            out.status.success(),
            "installing the clients failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        *done = true;
    }
    dir
}

/// The connection settings every client script reads.
fn env(cmd: &mut Command, server: &Server) {
    cmd.env("DISCERN_HOST", "127.0.0.1")
        .env("DISCERN_PORT", server.port.to_string())
        .env("DISCERN_USER", &server.user)
        .env("DISCERN_PASSWORD", &server.password)
        .env("DISCERN_CERT", &server.cert)
        .env(
            "DISCERN_REPORT",
            repo().join("sql/reports/discrimination.sql"),
        );
}

fn run_ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{what} failed:\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// psql with the server's settings and certificate verification.
fn psql(server: &Server) -> Command {
    let mut cmd = Command::new("psql");
    cmd.arg(format!(
        "host=127.0.0.1 port={} user={} dbname=discern sslmode=verify-full sslrootcert={}",
        server.port,
        server.user,
        server.cert.display()
    ))
    .args(["-X", "-v", "ON_ERROR_STOP=1", "--pset", "pager=off"])
    .env("PGPASSWORD", &server.password)
    .env_remove("PGSERVICE")
    .stdin(Stdio::null());
    cmd
}

#[test]
fn psql_meta_commands_report_copy_and_cancel() {
    setup();
    let server = Server::start(&[]);
    let meta = |command: &str| run_ok(psql(&server).args(["-c", command]), command);
    // The database is the one psql connected to (the catalog inside is another name).
    let l = meta("\\l");
    assert!(l.contains("discern") && !l.contains("datafusion"), "{l}");
    assert!(meta("\\dn").contains("public"));
    let dt = meta("\\dt");
    assert!(
        dt.contains("measurements") && dt.contains("samples"),
        "{dt}"
    );
    let d = meta("\\d measurements");
    assert!(d.contains("biomarker") && d.contains("value"), "{d}");
    let d_plus = meta("\\d+ measurements");
    assert!(d_plus.contains("biomarker"), "{d_plus}");
    // \dt+ sizes are the bytes of each table's Parquet files.
    let dt_plus = meta("\\dt+");
    // (The demo tables are testdata/demo compiled in.)
    fn parquet_bytes(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| match e.metadata() {
                        Ok(m) if m.is_dir() => parquet_bytes(&e.path()),
                        Ok(m) if e.path().extension().is_some_and(|x| x == "parquet") => m.len(),
                        _ => 0,
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    let sizes = run_ok(
        psql(&server).args([
            "-At",
            "-c",
            "SELECT c.relname || ' ' || pg_table_size(c.oid) FROM pg_catalog.pg_class c \
             WHERE c.relname IN ('measurements', 'samples') ORDER BY 1",
        ]),
        "pg_table_size",
    );
    assert!(
        dt_plus.contains(" kB") || dt_plus.contains(" bytes"),
        "{dt_plus}"
    );
    for line in sizes.lines() {
        let (table, size) = line.split_once(' ').unwrap();
        let size: u64 = size.parse().unwrap();
        let files = parquet_bytes(&repo().join("testdata/demo").join(table));
        assert_eq!(
            size, files,
            "{table}: pg_table_size against its Parquet files"
        );
    }
    // Timestamps print as PostgreSQL prints them (no trailing zeros in the fraction).
    let ts = run_ok(
        psql(&server).args([
            "-At",
            "-c",
            "SELECT CAST('2024-02-29 13:45:30.25' AS TIMESTAMP), CAST('2024-02-29 13:45:30' AS TIMESTAMP)",
        ]),
        "timestamps",
    );
    assert_eq!(ts.trim(), "2024-02-29 13:45:30.25|2024-02-29 13:45:30");
    let df = meta("\\df auc*");
    assert!(df.contains("auc") && df.contains("auc_ci"), "{df}");

    let report = run_ok(
        psql(&server)
            .arg("-f")
            .arg(repo().join("sql/reports/discrimination.sql")),
        "the report",
    );
    assert!(
        report.contains("auc") && report.contains("rows)"),
        "{report}"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cases.csv");
    meta(&format!(
        "\\copy (SELECT sample_id, is_case FROM samples ORDER BY sample_id LIMIT 4) TO '{}' WITH CSV HEADER",
        file.display()
    ));
    let csv = std::fs::read_to_string(&file).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert_eq!(csv.lines().next(), Some("sample_id,is_case"));

    // Ctrl-C: psql sends a (plaintext) CancelRequest; the query stops with 57014.
    let child = psql(&server)
        .args([
            "-c",
            "SELECT sum(v % 7) FROM generate_series(1, 20000000000) AS t(v)",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("canceling statement due to user request"),
        "{stderr}"
    );
}

/// The client sets every Python and Node check runs with.
const SETS: [&str; 2] = ["current", "oldest"];

fn python(server: &Server, part: &str) {
    let dir = setup();
    for set in SETS {
        let mut cmd = Command::new(dir.join(set).join("python/bin/python"));
        cmd.arg(repo().join("tests/clients/python_clients.py"))
            .arg(part);
        env(&mut cmd, server);
        let out = run_ok(&mut cmd, &format!("{part} ({set} clients)"));
        assert!(out.contains("ok  "), "{out}");
    }
}

#[test]
fn psycopg2() {
    let server = Server::start(&[]);
    python(&server, "psycopg2");
}

#[test]
fn psycopg3() {
    let server = Server::start(&[]);
    python(&server, "psycopg3");
}

#[test]
fn sqlalchemy_reflection_and_pandas() {
    let server = Server::start(&[]);
    python(&server, "sqlalchemy");
}

#[test]
fn asyncpg() {
    let server = Server::start(&[]);
    python(&server, "asyncpg");
}

#[test]
fn node_postgres() {
    let dir = setup();
    let server = Server::start(&[]);
    for set in SETS {
        let mut cmd = Command::new("node");
        cmd.arg(repo().join("tests/clients/node_client.js")).env(
            "DISCERN_NODE_MODULES",
            dir.join(set).join("node/node_modules"),
        );
        env(&mut cmd, &server);
        let out = run_ok(&mut cmd, &format!("node-postgres ({set})"));
        assert!(
            out.contains("ok  node-pg cursor with a LIMIT parameter"),
            "{out}"
        );
    }
}

/// The Dash dashboard (deploy/dash/app.py), served by werkzeug on 127.0.0.1 and driven over
/// HTTP as a browser's Dash renderer does: its layout and the ROC callback.
#[test]
fn dash_dashboard() {
    let dir = setup();
    let server = Server::start(&[]);
    let mut cmd = Command::new(dir.join("dash/bin/python"));
    cmd.arg(repo().join("tests/clients/dash_check.py"))
        .env(
            "DISCERN_DSN",
            format!(
                "host=127.0.0.1 port={} dbname=discern user={} sslmode=verify-full sslrootcert={}",
                server.port,
                server.user,
                server.cert.display()
            ),
        )
        .env("PGPASSWORD", &server.password)
        .env_remove("PGSERVICE");
    let out = run_ok(&mut cmd, "the Dash dashboard");
    assert!(
        out.contains("ok  AUC in the title equals SELECT auc(...) to 1e-12"),
        "{out}"
    );
}

#[test]
fn jdbc() {
    let dir = setup();
    let server = Server::start(&[]);
    let mut cmd = Command::new("java");
    cmd.arg("-cp")
        .arg(format!(
            "{}:/usr/share/java/postgresql.jar",
            dir.join("java").display()
        ))
        .arg("JdbcClient");
    env(&mut cmd, &server);
    let out = run_ok(&mut cmd, "JDBC");
    assert!(out.contains("ok  jdbc getTypeInfo"), "{out}");
    assert!(out.contains("ok  jdbc LIMIT ? OFFSET ? run 5"), "{out}");
}
