//! The audit log: one JSON line per login and per statement (time, user, client address,
//! statement, rows, duration, outcome, SQLSTATE). Passwords never reach it: they travel only
//! inside the SCRAM exchange, which is not logged.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Instant;

use serde_json::json;

/// Where audit lines go.
pub struct Audit {
    sink: Option<Mutex<Box<dyn Write + Send>>>,
}

impl Audit {
    /// `"stdout"`, `"off"`, or a file path (appended to).
    pub fn open(target: &str) -> crate::error::Result<Self> {
        let sink: Option<Box<dyn Write + Send>> = match target {
            "off" => None,
            "stdout" | "-" => Some(Box::new(std::io::stdout())),
            path => Some(Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| crate::error::Error::Config(format!("audit log {path}: {e}")))?,
            )),
        };
        Ok(Self {
            sink: sink.map(Mutex::new),
        })
    }

    /// A login attempt.
    pub fn login(&self, user: &str, client: SocketAddr, method: &str, outcome: &str) {
        self.write(json!({
            "time": now(),
            "event": "login",
            "user": user,
            "client": client.to_string(),
            "method": method,
            "outcome": outcome,
        }));
    }

    /// A finished statement.
    pub fn statement(&self, entry: &Statement, outcome: &Outcome) {
        let (result, sqlstate) = match outcome {
            Outcome::Ok => ("ok", None),
            Outcome::Error(code) => ("error", Some(code.as_str())),
        };
        self.write(json!({
            "time": now(),
            "event": "statement",
            "user": entry.user,
            "client": entry.client.to_string(),
            "pid": entry.pid,
            "statement": entry.text,
            "rows": entry.rows,
            "peak_memory_bytes": entry.peak_memory,
            "spilled_bytes": entry.spilled_bytes,
            "cluster": entry.cluster.as_ref().map(|run| json!({
                "workers": run.workers(),
                "stages": run.stages(),
                "tasks": run.tasks(),
                "retries": run.retries(),
                "shuffled_bytes": run.shuffled_bytes(),
            })),
            "duration_ms": (entry.started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
            "outcome": result,
            "sqlstate": sqlstate,
        }));
    }

    fn write(&self, line: serde_json::Value) {
        if let Some(sink) = &self.sink
            && let Ok(mut out) = sink.lock()
        {
            // An audit sink that fails (disk full) must not take queries down with it.
            let _ = writeln!(out, "{line}").and_then(|()| out.flush());
        }
    }
}

/// A statement being audited.
pub struct Statement {
    pub user: String,
    pub client: SocketAddr,
    pub pid: i32,
    pub text: String,
    pub rows: u64,
    /// The most the statement held in the memory pool.
    pub peak_memory: usize,
    /// Bytes its operators spilled to disk.
    pub spilled_bytes: usize,
    /// What it did on the cluster, if it ran there.
    pub cluster: Option<std::sync::Arc<crate::cluster::ClusterRun>>,
    pub started: Instant,
}

/// How a statement ended.
pub enum Outcome {
    Ok,
    Error(String),
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
