//! `discern serve` against a real Postgres driver (tokio-postgres + rustls) over real TLS:
//! security (TLS required, SCRAM, users, grants, certificates), SQLSTATEs, cancel, timeouts,
//! the audit log, and robustness against bad clients.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use common::pg::{Server, code};
use common::{discern, run};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A query that runs for minutes, to be cancelled. (A scan-driven query: DataFusion's
/// operators yield between batches, so a cancelled one stops at once. A cross join can keep
/// computing its current batch for a while after the cancel; see the README.)
const LONG_QUERY: &str = "SELECT sum(v % 7) FROM generate_series(1, 20000000000) AS t(v)";

/// One backend message: its type byte and body.
async fn read_message(tls: &mut tokio_rustls::client::TlsStream<TcpStream>) -> (u8, Vec<u8>) {
    let mut head = [0u8; 5];
    tls.read_exact(&mut head).await.unwrap();
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize - 4;
    let mut rest = vec![0u8; len];
    tls.read_exact(&mut rest).await.unwrap();
    (head[0], rest)
}

/// Starts a SCRAM exchange by hand over TLS and returns the salt of the server-first message.
async fn scram_salt(server: &Server, user: &str) -> String {
    use tokio_rustls::rustls::pki_types::ServerName;
    let mut tcp = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    tcp.write_all(&[0, 0, 0, 8, 4, 210, 22, 47]).await.unwrap();
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"S");
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(
        common::pg::rustls_config(&server.cert),
    ));
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let mut body = vec![0, 3, 0, 0];
    body.extend_from_slice(b"user\0");
    body.extend_from_slice(user.as_bytes());
    body.extend_from_slice(b"\0\0");
    let mut startup = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    startup.extend_from_slice(&body);
    tls.write_all(&startup).await.unwrap();
    let (tag, sasl) = read_message(&mut tls).await;
    assert_eq!(tag, b'R');
    assert_eq!(&sasl[..4], &10u32.to_be_bytes());
    let first = b"n,,n=,r=fyko+d2lbbFgONRv9qkxdawL";
    let mut msg = b"SCRAM-SHA-256\0".to_vec();
    msg.extend_from_slice(&(first.len() as u32).to_be_bytes());
    msg.extend_from_slice(first);
    let mut packet = vec![b'p'];
    packet.extend_from_slice(&((msg.len() + 4) as u32).to_be_bytes());
    packet.extend_from_slice(&msg);
    tls.write_all(&packet).await.unwrap();
    let (tag, cont) = read_message(&mut tls).await;
    assert_eq!(tag, b'R');
    assert_eq!(&cont[..4], &11u32.to_be_bytes());
    let server_first = String::from_utf8(cont[4..].to_vec()).unwrap();
    server_first
        .split(',')
        .find_map(|a| a.strip_prefix("s="))
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_scram_are_required_and_work() {
    let server = Server::start(&[]);
    // The printed first user logs in over TLS with SCRAM (tokio-postgres prefers
    // SCRAM-SHA-256-PLUS with channel binding when the server offers it).
    let client = server.connect().await;
    let row = client.query_one("SELECT version()", &[]).await.unwrap();
    let version: String = row.get(0);
    assert!(version.starts_with("PostgreSQL 16."), "{version}");
    for sql in ["SHOW is_superuser", "SHOW transaction_read_only"] {
        let messages = client.simple_query(sql).await.unwrap();
        let value = messages.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        });
        let expected = if sql.contains("superuser") {
            "off"
        } else {
            "on"
        };
        assert_eq!(value.as_deref(), Some(expected), "{sql}");
    }
    let row = client.query_one("SELECT current_user", &[]).await.unwrap();
    let user: String = row.get(0);
    assert_eq!(user, server.user);
    // current_database() is the database the client named (the config says "discern"), per
    // connection, as PostgreSQL answers it.
    let row = client
        .query_one("SELECT current_database()", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "discern");
    let mut config = server.config(&server.user, &server.password);
    config
        .dbname("lab_results")
        .ssl_mode(tokio_postgres::config::SslMode::Require);
    let (lab, conn) = config.connect(server.tls()).await.unwrap();
    tokio::spawn(conn);
    let row = lab
        .query_one("SELECT current_database()", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "lab_results");
    let row = lab
        .query_one("SELECT pg_size_pretty(CAST(1000000 AS BIGINT))", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "977 kB");
    let row = client
        .query_one("SELECT current_database()", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "discern");

    // Channel binding required by the client: works because the server offers PLUS.
    let mut config = server.config(&server.user, &server.password);
    config
        .ssl_mode(tokio_postgres::config::SslMode::Require)
        .channel_binding(tokio_postgres::config::ChannelBinding::Require);
    let (c2, conn) = config.connect(server.tls()).await.unwrap();
    tokio::spawn(conn);
    c2.simple_query("SELECT 1").await.unwrap();

    // Wrong password and unknown user: the same error class and wording.
    let wrong = server
        .connect_as(&server.user, "not-the-password")
        .await
        .err()
        .unwrap();
    assert_eq!(code(&wrong), "28P01");
    let unknown = server
        .connect_as("mallory", "whatever")
        .await
        .err()
        .unwrap();
    assert_eq!(code(&unknown), "28P01");
    let msg = |e: &tokio_postgres::Error| e.as_db_error().unwrap().message().to_string();
    assert_eq!(
        msg(&wrong).replace(&server.user, "U"),
        msg(&unknown).replace("mallory", "U")
    );

    // An unknown user gets the same exchange: a salt, stable from one attempt to the next
    // like a real user's (its secret is kept in the data directory), and different per name.
    let ghost = scram_salt(&server, "ghost").await;
    assert_eq!(ghost, scram_salt(&server, "ghost").await);
    assert_ne!(ghost, scram_salt(&server, "phantom").await);
    let real = scram_salt(&server, &server.user).await;
    assert_eq!(real, scram_salt(&server, &server.user).await);
    assert_eq!(ghost.len(), real.len());
    let mock_key = server.data_dir.path().join("scram-mock.key");
    assert_eq!(std::fs::read(&mock_key).unwrap().len(), 32);

    // Plaintext is refused before any password exchange, with a message that says why.
    let plain = server.connect_plain().await.err().unwrap();
    assert_eq!(code(&plain), "28000");
    assert!(msg(&plain).contains("TLS"), "{}", msg(&plain));

    // The audit log has the logins and the statements, and never a password.
    let audit = server.audit();
    assert!(audit.contains("\"event\":\"login\""), "{audit}");
    assert!(audit.contains("\"outcome\":\"refused\""), "{audit}");
    assert!(audit.contains("SELECT version()"), "{audit}");
    assert!(!audit.contains(&server.password));
    assert!(!audit.contains("not-the-password"));
    for line in audit.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["time"].is_string() && v["user"].is_string() && v["client"].is_string());
    }
    // The password never reaches the users file either.
    let users = std::fs::read_to_string(server.users_file()).unwrap();
    assert!(users.contains("SCRAM-SHA-256$4096:"));
    assert!(!users.contains(&server.password));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_added_and_removed_without_a_restart() {
    let server = Server::start(&[]);
    let users = server.users_file();
    let add = |name: &str, password: &str| {
        let mut child = discern()
            .args(["user", "add", name, "--users"])
            .arg(&users)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    add("alice", "correct horse battery");
    let alice = server
        .connect_as("alice", "correct horse battery")
        .await
        .unwrap();
    alice.simple_query("SELECT 1").await.unwrap();
    assert_eq!(
        code(
            &server
                .connect_as("alice", "correct horse")
                .await
                .err()
                .unwrap()
        ),
        "28P01"
    );
    // A new password replaces the old one.
    add("alice", "new-password-2");
    assert!(server.connect_as("alice", "new-password-2").await.is_ok());
    assert!(
        server
            .connect_as("alice", "correct horse battery")
            .await
            .is_err()
    );
    let out = run(discern()
        .args(["user", "remove", "alice", "--users"])
        .arg(&users))
    .ok();
    assert!(out.stderr.contains("removed user alice"));
    assert_eq!(
        code(
            &server
                .connect_as("alice", "new-password-2")
                .await
                .err()
                .unwrap()
        ),
        "28P01"
    );
    run(discern()
        .args(["user", "remove", "alice", "--users"])
        .arg(&users))
    .fails_with(&["no user alice"]);
    let text = std::fs::read_to_string(&users).unwrap();
    assert!(!text.contains("new-password-2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_sqlstates_and_the_connection_survives() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    let cases = [
        ("SELEC 1", "42601"),
        ("SELECT * FROM no_such_table", "42P01"),
        ("SELECT no_such_column FROM samples", "42703"),
        ("SELECT aucc(value, is_case) FROM measurements", "42883"),
        (
            "SELECT auc_ci(value, is_case, 2.0) FROM measurements m JOIN samples s USING (sample_id)",
            "22023",
        ),
        ("CREATE TABLE t (x INT)", "42501"),
        ("INSERT INTO samples VALUES (1)", "42501"),
        ("SET datafusion.runtime.memory_limit = '1G'", "42501"),
        ("SELECT 1/0", "22012"),
    ];
    for (sql, expected) in cases {
        let e = client
            .simple_query(sql)
            .await
            .err()
            .unwrap_or_else(|| panic!("{sql} succeeded"));
        assert_eq!(code(&e), expected, "{sql}: {e:?}");
        // The connection is still usable.
        let row = client.query_one("SELECT 41 + 1 AS x", &[]).await.unwrap();
        assert_eq!(row.get::<_, i64>(0), 42);
    }
    // Parameters through the extended protocol.
    let row = client
        .query_one(
            "SELECT count(*) FROM measurements WHERE biomarker = $1",
            &[&"iron"],
        )
        .await
        .unwrap();
    assert!(row.get::<_, i64>(0) > 0);

    // A failed transaction refuses everything but ROLLBACK (25P02), as PostgreSQL does.
    client.batch_execute("BEGIN").await.unwrap();
    assert!(client.batch_execute("SELECT * FROM nope").await.is_err());
    let e = client.batch_execute("SELECT 1").await.err().unwrap();
    assert_eq!(code(&e), "25P02");
    client.batch_execute("ROLLBACK").await.unwrap();
    client.batch_execute("SELECT 1").await.unwrap();

    // Savepoints: ROLLBACK TO clears the error and keeps the transaction.
    client.batch_execute("BEGIN; SAVEPOINT a").await.unwrap();
    assert!(client.batch_execute("SELECT * FROM nope").await.is_err());
    client
        .batch_execute("ROLLBACK TO SAVEPOINT a")
        .await
        .unwrap();
    client
        .batch_execute("SELECT 1; RELEASE SAVEPOINT a; COMMIT")
        .await
        .unwrap();
    // Housekeeping statements that drivers and pools send.
    client
        .batch_execute("DISCARD ALL; RESET ALL; UNLISTEN *; SET application_name = 'x'")
        .await
        .unwrap();

    // The audit log records failures with their SQLSTATE.
    let audit = server.audit();
    assert!(audit.contains("\"sqlstate\":\"42P01\""), "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistical_results_and_types_come_through() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    // Binary results of the extended protocol: BIGINT, DOUBLE, TEXT, BOOLEAN.
    let rows = client
        .query(
            "SELECT m.biomarker, count(*) AS n, avg(m.value) AS mean, bool_or(s.is_case) AS any_case, \
                    auc(m.value, s.is_case) AS auc \
             FROM measurements m JOIN samples s USING (sample_id) \
             GROUP BY m.biomarker ORDER BY m.biomarker",
            &[],
        )
        .await
        .unwrap();
    assert!(rows.len() >= 10);
    for row in &rows {
        let n: i64 = row.get("n");
        let auc: f64 = row.get("auc");
        let any: bool = row.get("any_case");
        let _: String = row.get("biomarker");
        let _: f64 = row.get("mean");
        assert!(n > 0 && (0.0..=1.0).contains(&auc) && any);
    }
    // A STRUCT result is one column holding a PostgreSQL record, (u,z,p) in text.
    let messages = client
        .simple_query(
            "SELECT mann_whitney(m.value, s.is_case) AS mw FROM measurements m \
             JOIN samples s USING (sample_id) WHERE m.biomarker = 'iron'",
        )
        .await
        .unwrap();
    let text = messages
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .unwrap();
    let fields: Vec<f64> = text
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .map(|f| f.parse().unwrap())
        .collect();
    assert_eq!(fields.len(), 3, "{text}");
    assert!((0.0..=1.0).contains(&fields[2]), "{text}");
    // Field access gives plain numbers.
    let row = client
        .query_one(
            "SELECT (mann_whitney(m.value, s.is_case))['p'] AS p FROM measurements m \
             JOIN samples s USING (sample_id) WHERE m.biomarker = 'iron'",
            &[],
        )
        .await
        .unwrap();
    let p: f64 = row.get(0);
    assert!((0.0..=1.0).contains(&p));

    // EXPLAIN ANALYZE: the plan's metrics (spills included) and the memory each operator held.
    let rows = texts(
        client
            .simple_query(
                "EXPLAIN ANALYZE SELECT m.biomarker, auc(m.value, s.is_case) FROM measurements m \
                 JOIN samples s USING (sample_id) GROUP BY 1 ORDER BY 2",
            )
            .await
            .unwrap(),
    );
    let plan = rows.iter().find(|r| r[0] == "Plan with Metrics").unwrap();
    assert!(plan[1].contains("spilled_bytes"), "{}", plan[1]);
    let memory = rows.iter().find(|r| r[0] == "Memory").unwrap();
    assert!(memory[1].starts_with("peak "), "{}", memory[1]);
    assert!(memory[1].contains("BoundedAggregateExec"), "{}", memory[1]);

    // COPY (query) TO STDOUT, as psql's \copy and psycopg's copy() use it.
    use futures::StreamExt;
    let stream = client
        .copy_out("COPY (SELECT sample_id, is_case FROM samples ORDER BY sample_id LIMIT 3) TO STDOUT WITH (FORMAT csv, HEADER)")
        .await
        .unwrap();
    let chunks: Vec<_> = stream.collect().await;
    let mut out = Vec::new();
    for c in chunks {
        out.extend_from_slice(&c.unwrap());
    }
    let csv = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert_eq!(lines[0], "sample_id,is_case");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_hide_tables_and_refuse_reads() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("discern.toml");
    std::fs::write(
        &config,
        "[grants]\nalice = [\"samples\"]\n\"*\" = [\"*\"]\n",
    )
    .unwrap();
    let server = Server::start(&["--config", config.to_str().unwrap()]);
    let mut child = discern()
        .args(["user", "add", "alice", "--users"])
        .arg(server.users_file())
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "alice-pw").unwrap();
    assert!(child.wait().unwrap().success());

    let alice = server.connect_as("alice", "alice-pw").await.unwrap();
    let e = alice
        .simple_query("SELECT * FROM measurements")
        .await
        .err()
        .unwrap();
    assert_eq!(code(&e), "42501", "{e:?}");
    assert!(
        e.as_db_error()
            .unwrap()
            .message()
            .contains("permission denied for table")
    );
    let tables = |rows: Vec<tokio_postgres::SimpleQueryMessage>| -> Vec<String> {
        rows.into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            })
            .collect()
    };
    let listed = tables(
        alice
            .simple_query(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
            )
            .await
            .unwrap(),
    );
    assert_eq!(listed, ["samples"]);
    let listed = tables(
        alice
            .simple_query("SELECT relname FROM pg_catalog.pg_class WHERE relname IN ('samples', 'measurements')")
            .await
            .unwrap(),
    );
    assert_eq!(listed, ["samples"]);
    // The first user falls under "*" and reads everything.
    let admin = server.connect().await;
    admin
        .simple_query("SELECT count(*) FROM measurements")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_are_cancelled_by_request_timeout_and_hang_up() {
    let server = Server::start(&[]);
    // A CancelRequest inside TLS (psycopg 3, asyncpg) and in plaintext (psql, psycopg2,
    // node-postgres and JDBC send it unencrypted).
    for plaintext in [false, true] {
        // sslmode=prefer: the session is TLS, and tokio-postgres then sends its cancel in
        // plaintext when given no TLS connector, as libpq does.
        let mut config = server.config(&server.user, &server.password);
        config.ssl_mode(if plaintext {
            tokio_postgres::config::SslMode::Prefer
        } else {
            tokio_postgres::config::SslMode::Require
        });
        let (client, conn) = config.connect(server.tls()).await.unwrap();
        tokio::spawn(conn);
        let token = client.cancel_token();
        let tls = server.tls();
        let canceller = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(700)).await;
            if plaintext {
                token.cancel_query(tokio_postgres::NoTls).await.unwrap();
            } else {
                token.cancel_query(tls).await.unwrap();
            }
        });
        let e = client.simple_query(LONG_QUERY).await.err().unwrap();
        assert_eq!(code(&e), "57014", "{e:?}");
        canceller.await.unwrap();
        client.simple_query("SELECT 1").await.unwrap();
    }
    // statement_timeout, set per session.
    let client = server.connect().await;
    client
        .batch_execute("SET statement_timeout = 500")
        .await
        .unwrap();
    let e = client.simple_query(LONG_QUERY).await.err().unwrap();
    assert_eq!(code(&e), "57014");
    assert!(
        e.as_db_error()
            .unwrap()
            .message()
            .contains("statement timeout")
    );
    client
        .batch_execute("SET statement_timeout = 0")
        .await
        .unwrap();

    // A client that hangs up mid-query: the server cancels the query (the audit log says so).
    {
        let mut config = server.config(&server.user, &server.password);
        config.ssl_mode(tokio_postgres::config::SslMode::Require);
        let (gone, conn) = config.connect(server.tls()).await.unwrap();
        let socket = tokio::spawn(conn);
        let q = tokio::spawn(async move {
            let _ = gone.simple_query(LONG_QUERY).await;
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Dropping the connection task closes the socket, as a killed client would.
        socket.abort();
        q.abort();
    }
    let mut found = false;
    for _ in 0..100 {
        if server
            .audit()
            .lines()
            .any(|l| l.contains("generate_series") && l.contains("57014"))
            && server.audit().matches("57014").count() >= 4
        {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        found,
        "the abandoned query was not cancelled:\n{}",
        server.audit()
    );
    // And the server still answers.
    server
        .connect()
        .await
        .simple_query("SELECT 1")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_separate_and_limited() {
    let server = Server::start(&["--idle-timeout", "1500ms", "--memory-limit", "8MiB"]);
    // Views and settings belong to the connection that made them.
    let a = server.connect().await;
    let b = server.connect().await;
    a.batch_execute(
        "CREATE VIEW mine AS SELECT * FROM samples WHERE is_case; \
         SET datafusion.execution.batch_size = 7",
    )
    .await
    .unwrap();
    a.simple_query("SELECT count(*) FROM mine").await.unwrap();
    let e = b
        .simple_query("SELECT count(*) FROM mine")
        .await
        .err()
        .unwrap();
    assert_eq!(code(&e), "42P01");
    let show = |rows: Vec<tokio_postgres::SimpleQueryMessage>| {
        rows.into_iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(1).map(str::to_string),
                _ => None,
            })
            .unwrap()
    };
    let batch = "SELECT name, value FROM information_schema.df_settings \
                 WHERE name = 'datafusion.execution.batch_size'";
    assert_eq!(show(a.simple_query(batch).await.unwrap()), "7");
    assert_ne!(show(b.simple_query(batch).await.unwrap()), "7");

    // statement_timeout from the startup options (libpq's PGOPTIONS), enforced.
    let mut config = server.config(&server.user, &server.password);
    config
        .ssl_mode(tokio_postgres::config::SslMode::Require)
        .options("-c statement_timeout=300");
    let (c, conn) = config.connect(server.tls()).await.unwrap();
    tokio::spawn(conn);
    let e = c.simple_query(LONG_QUERY).await.err().unwrap();
    assert_eq!(code(&e), "57014");

    // A query that cannot fit in the memory limit fails alone, with 53200.
    let e = a
        .simple_query("SELECT biomarker, array_agg(value ORDER BY value) FROM measurements a CROSS JOIN samples GROUP BY biomarker")
        .await
        .err()
        .unwrap();
    assert_eq!(code(&e), "53200", "{e:?}");
    a.simple_query("SELECT 1").await.unwrap();
    // A sort that does not fit spills to disk and completes; the audit log says how much.
    let rows = texts(
        a.simple_query(
            "SELECT max(r) FROM (SELECT row_number() OVER (ORDER BY m.value, s.age) AS r \
             FROM measurements m CROSS JOIN samples s)",
        )
        .await
        .unwrap(),
    );
    assert!(rows[0][0].parse::<u64>().unwrap() > 1_000_000, "{rows:?}");
    let spilled = server
        .audit_events()
        .into_iter()
        .find(|e| {
            e["statement"]
                .as_str()
                .is_some_and(|s| s.contains("row_number"))
        })
        .unwrap()["spilled_bytes"]
        .as_u64()
        .unwrap();
    assert!(spilled > 1 << 20, "spilled {spilled} bytes");

    // An idle session is closed after the idle timeout.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(b.simple_query("SELECT 1").await.is_err());
    assert!(b.is_closed());
    server
        .connect()
        .await
        .simple_query("SELECT 1")
        .await
        .unwrap();
}

/// Rows of a simple query, as text.
fn texts(messages: Vec<tokio_postgres::SimpleQueryMessage>) -> Vec<Vec<String>> {
    messages
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("NULL").to_string())
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// The states in `discern.queries` of the other sessions' statements that mention `needle`,
/// polled (up to 2.5 s) until they are just `[want]`.
async fn wait_for_states(
    observer: &tokio_postgres::Client,
    needle: &str,
    want: &str,
) -> Vec<String> {
    let sql = format!(
        "SELECT pid, state, memory_bytes FROM discern.queries \
         WHERE statement LIKE '%{needle}%' AND statement NOT LIKE '%discern.queries%'"
    );
    let mut seen = Vec::new();
    for _ in 0..50 {
        seen = texts(observer.simple_query(&sql).await.unwrap())
            .into_iter()
            .map(|r| r[1].clone())
            .collect();
        if seen == [want] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_wait_for_memory_in_a_queue() {
    // One slot: a 256 MiB limit and 256 MiB per query.
    let server = Server::start(&[
        "--memory-limit",
        "256MiB",
        "--query-memory",
        "256MiB",
        "--queue-timeout",
        "1s",
    ]);
    let a = server.connect().await;
    let a_cancel = a.cancel_token();
    let running = tokio::spawn(async move { a.simple_query(LONG_QUERY).await });
    let observer = server.connect().await;
    // Catalog queries and discern.queries never wait.
    assert_eq!(
        wait_for_states(&observer, "generate_series", "running").await,
        ["running"]
    );
    observer
        .simple_query("SELECT count(*) FROM pg_catalog.pg_class")
        .await
        .unwrap();

    // A data query waits; past the queue timeout it fails with 53000, naming the wait.
    let e = observer
        .simple_query("SELECT count(*) FROM samples")
        .await
        .err()
        .unwrap();
    assert_eq!(code(&e), "53000", "{e:?}");
    assert!(e.as_db_error().unwrap().message().contains("waited"));

    // A queued query shows as queued and can be cancelled while it waits.
    let d = server.connect().await;
    let d_cancel = d.cancel_token();
    let queued = tokio::spawn(async move {
        d.batch_execute("SET statement_timeout = 0").await.unwrap();
        d.simple_query("SELECT count(*) FROM measurements").await
    });
    assert_eq!(
        wait_for_states(&observer, "measurements", "queued").await,
        ["queued"]
    );
    d_cancel.cancel_query(server.tls()).await.unwrap();
    let e = queued.await.unwrap().err().unwrap();
    assert_eq!(code(&e), "57014");

    // When the slot frees, the next query runs at once.
    a_cancel.cancel_query(server.tls()).await.unwrap();
    assert_eq!(code(&running.await.unwrap().err().unwrap()), "57014");
    let rows = texts(
        observer
            .simple_query("SELECT count(*) FROM samples")
            .await
            .unwrap(),
    );
    assert_eq!(rows, [["240"]]);
    // The audit log has each statement's peak memory.
    assert!(server.audit().contains("\"peak_memory_bytes\":"));
}

/// Issue 5's admission test: eight clients each run the discrimination report on M data
/// (20,000 samples × 1,000 biomarkers, 19.2M rows) against a server with a 1 GiB memory limit.
/// Every one finishes with the same result as `discern query`, and the server's peak RSS stays
/// within the limit plus the stated margin (README, "Memory"): 256 MiB for the binary, the
/// runtime and what DataFusion does not account for (Parquet decoding, batches in flight).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_reports_under_one_gib_all_finish() {
    eight_reports_under_one_gib(Some(3)).await;
}

/// Issue 13: the same with full-precision values, whose states are as large as the data
/// (eight reports would hold about 1.6 GiB of them): the group states spill by group, and
/// every report still finishes with the single run's answer within 1 GiB + 256 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_full_precision_reports_under_one_gib_all_finish() {
    eight_reports_under_one_gib(None).await;
}

async fn eight_reports_under_one_gib(digits: Option<usize>) {
    const MIB: u64 = 1 << 20;
    let data = tempfile::tempdir().unwrap();
    let spec = discern::demo_data::DemoSpec {
        samples: 20_000,
        biomarkers: 1_000,
        shards: 10,
        case_fraction: 0.1,
        seed: 5,
        digits,
    };
    common::generate(data.path(), &spec);
    let tables = [
        format!(
            "measurements={}",
            data.path().join("measurements").display()
        ),
        format!("samples={}", data.path().join("samples").display()),
    ];
    let report_file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sql")
        .join("reports")
        .join("discrimination.sql");
    let report = std::fs::read_to_string(&report_file).unwrap();

    // The reference: the same report from `discern query`, as CSV.
    let reference = data.path().join("reference.csv");
    run(discern()
        .args(["query", "-f"])
        .arg(&report_file)
        .args(["--table", &tables[0], "--table", &tables[1], "--output"])
        .arg(&reference))
    .ok();
    let reference: Vec<Vec<String>> = std::fs::read_to_string(&reference)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    assert_eq!(reference.len(), 1_000);

    let server = Server::start(&[
        "--memory-limit",
        "1GiB",
        "--table",
        &tables[0],
        "--table",
        &tables[1],
    ]);
    let idle = server.rss();
    let mut clients = Vec::new();
    for _ in 0..8 {
        let client = server.connect().await;
        let report = report.clone();
        clients.push(tokio::spawn(async move {
            texts(client.simple_query(&report).await.unwrap())
        }));
    }
    for client in clients {
        let rows = client.await.unwrap();
        assert_eq!(rows.len(), reference.len());
        for (got, want) in rows.iter().zip(&reference) {
            assert_eq!(got.len(), want.len());
            assert_eq!(got[0], want[0], "the order of the biomarkers");
            for (g, w) in got.iter().zip(want).skip(1) {
                // Text and CSV print doubles alike. Moment statistics depend in their last
                // bits on the order partial states merge in, and a tiny p-value amplifies
                // that (seen: 1e-13 relative on Welch p near 1e-267); 1e-9 leaves room.
                let (g, w) = (g.parse::<f64>().ok(), w.parse::<f64>().ok());
                match (g, w) {
                    (Some(g), Some(w)) => assert!(
                        g == w || (g - w).abs() <= 1e-9 * w.abs(),
                        "{} {g} against {w}",
                        got[0]
                    ),
                    (None, None) => {}
                    other => panic!("{}: {other:?}", got[0]),
                }
            }
        }
    }
    let peak = server.peak_rss();
    eprintln!(
        "idle RSS {} MiB, peak RSS {} MiB with 8 reports under 1 GiB",
        idle / MIB,
        peak / MIB
    );
    assert!(
        peak <= 1024 * MIB + 256 * MIB,
        "peak RSS {} MiB exceeds 1 GiB + 256 MiB",
        peak / MIB
    );
    // The audit log has each report with its rows and its peak memory, within the per-query
    // share of the limit that admission control gave it.
    let reports: Vec<serde_json::Value> = server
        .audit_events()
        .into_iter()
        .filter(|e| e["event"] == "statement" && e["rows"] == 1_000)
        .collect();
    assert_eq!(reports.len(), 8, "{reports:?}");
    for e in &reports {
        assert_eq!(e["outcome"], "ok");
        let peak = e["peak_memory_bytes"].as_u64().unwrap();
        assert!(peak > 0 && peak <= 1024 * MIB, "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_clients_do_not_hurt_the_others() {
    let server = Server::start(&["--max-connections", "250"]);
    let good = server.connect().await;
    let addr = format!("127.0.0.1:{}", server.port);

    // Garbage bytes instead of a startup packet.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    // A truncated startup packet, then hang up.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(&[0, 0, 0, 40, 0, 3, 0, 0, b'u']).await.unwrap();
    drop(s);
    // An absurd length.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(&[0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0])
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    // Garbage after a TLS login.
    good.simple_query("SELECT 1").await.unwrap();

    // 200 concurrent sessions, each running a query.
    let mut tasks = Vec::new();
    for i in 0..200 {
        let config = {
            let mut c = server.config(&server.user, &server.password);
            c.ssl_mode(tokio_postgres::config::SslMode::Require);
            c
        };
        let tls = server.tls();
        tasks.push(tokio::spawn(async move {
            let (client, conn) = config.connect(tls).await.unwrap();
            tokio::spawn(conn);
            let row = client
                .query_one("SELECT $1::BIGINT * 2", &[&(i as i64)])
                .await
                .unwrap();
            assert_eq!(row.get::<_, i64>(0), 2 * i as i64);
            client
        }));
    }
    let mut clients = Vec::new();
    for t in tasks {
        clients.push(t.await.unwrap());
    }
    assert_eq!(clients.len(), 200);
    drop(clients);

    // A slow reader: a large result nobody reads for a while, while others are served.
    let slow = server.connect().await;
    let slow_task = tokio::spawn(async move {
        slow.simple_query("SELECT * FROM measurements a CROSS JOIN samples b LIMIT 200000")
            .await
            .map(|r| r.len())
    });
    for _ in 0..5 {
        good.simple_query("SELECT count(*) FROM samples")
            .await
            .unwrap();
    }
    let n = slow_task.await.unwrap().unwrap();
    assert!(n > 200_000);
    good.simple_query("SELECT 1").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_limit_is_a_clear_error() {
    let server = Server::start(&["--max-connections", "2"]);
    let a = server.connect().await;
    let b = server.connect().await;
    let e = server
        .connect_as(&server.user.clone(), &server.password.clone())
        .await
        .err()
        .unwrap();
    let text = e.to_string();
    assert!(
        code(&e) == "53300" || text.contains("too many clients"),
        "{text}"
    );
    drop(a);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A slot is free again.
    server
        .connect()
        .await
        .simple_query("SELECT 1")
        .await
        .unwrap();
    drop(b);
}

#[test]
fn broken_tls_configuration_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    run(discern()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .arg("--tls-cert")
        .arg(&missing)
        .arg("--tls-key")
        .arg(&missing))
    .fails_with(&["TLS", "missing.pem"]);

    // A certificate with somebody else's key.
    let a = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let b = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, a.cert.pem()).unwrap();
    std::fs::write(&key, b.signing_key.serialize_pem()).unwrap();
    run(discern()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key))
    .fails_with(&["do not work together"]);

    // Not a key at all.
    std::fs::write(&key, "hello").unwrap();
    run(discern()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key))
    .fails_with(&["private key"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_certificate_is_used_and_client_certificates_log_in() {
    // A CA, a server certificate and a client certificate for user "carol".
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    client_params
        .distinguished_name
        .push(DnType::CommonName, "carol");
    let client_cert = client_params.signed_by(&client_key, &issuer).unwrap();
    let write = |name: &str, text: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let ca_pem = write("ca.pem", ca.pem());
    let cert = write("server.pem", server_cert.pem());
    let key = write("server.key", server_key.serialize_pem());
    let server = Server::start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--client-ca",
        ca_pem.to_str().unwrap(),
    ]);
    assert_eq!(server.cert, cert);

    // carol logs in with her certificate, no password.
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(&ca_pem).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots.clone())
    .with_client_auth_cert(
        vec![CertificateDer::from_pem_slice(client_cert.pem().as_bytes()).unwrap()],
        PrivateKeyDer::from_pem_slice(client_key.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    let mut pg = server.config("carol", "");
    pg.ssl_mode(tokio_postgres::config::SslMode::Require);
    let (client, conn) = pg
        .connect(tokio_postgres_rustls::MakeRustlsConnect::new(
            config.clone(),
        ))
        .await
        .unwrap();
    tokio::spawn(conn);
    let row = client.query_one("SELECT current_user", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "carol");
    // The same certificate does not make anyone else.
    let mut pg = server.config("dave", "");
    pg.ssl_mode(tokio_postgres::config::SslMode::Require);
    let e = pg
        .connect(tokio_postgres_rustls::MakeRustlsConnect::new(config))
        .await
        .err()
        .unwrap();
    assert_eq!(code(&e), "28000");
    // Without a certificate, the first user still uses SCRAM.
    let plain_tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut pg = server.config(&server.user, &server.password);
    pg.ssl_mode(tokio_postgres::config::SslMode::Require);
    let (c, conn) = pg
        .connect(tokio_postgres_rustls::MakeRustlsConnect::new(plain_tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    c.simple_query("SELECT 1").await.unwrap();
}
