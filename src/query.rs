//! Runs SQL text (one or more statements) on an [`Engine`] and sends each result somewhere.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use datafusion::sql::parser::DFParserBuilder;
use datafusion::sql::sqlparser::dialect::dialect_from_str;

use crate::error::{Error, Result};
use crate::output::{self, Format};
use crate::session::{Engine, check_statement_allowed};

/// Where results go.
pub enum Sink {
    /// An aligned table on standard output, at most this many rows.
    Terminal { max_rows: usize },
    /// The last statement's result to a file; earlier results to the terminal.
    File {
        path: PathBuf,
        format: Format,
        max_rows: usize,
    },
}

/// What running the statements cost.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Statements run.
    pub statements: usize,
    /// Rows in the results.
    pub rows: u64,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// Bytes and files spilled to disk by sorts and aggregations.
    pub spilled_bytes: usize,
    /// Number of spill files written.
    pub spill_count: usize,
    /// What the last statement that ran on the cluster did there.
    pub cluster: Option<Arc<crate::cluster::ClusterRun>>,
}

/// Splits `sql` into statements and runs them in order, stopping at the first error.
pub async fn run(engine: &Engine, sql: &str, sink: &Sink) -> Result<Stats> {
    let started = Instant::now();
    let state = engine.ctx.state();
    let dialect_name = state.config().options().sql_parser.dialect.to_string();
    let dialect = dialect_from_str(&dialect_name)
        .ok_or_else(|| Error::Config(format!("unknown SQL dialect '{dialect_name}'")))?;
    let statements = DFParserBuilder::new(sql)
        .with_dialect(dialect.as_ref())
        .build()?
        .parse_statements()?;
    if statements.is_empty() {
        return Err(Error::Config("no SQL statement to run".into()));
    }
    let count = statements.len();
    let mut stats = Stats {
        statements: count,
        ..Stats::default()
    };
    for (i, statement) in statements.into_iter().enumerate() {
        let numbered = |e: Error| {
            if count > 1 {
                Error::Statement {
                    index: i + 1,
                    count,
                    source: Box::new(e),
                }
            } else {
                e
            }
        };
        let last = i + 1 == count;
        run_one(engine, statement, sink, last, &mut stats)
            .await
            .map_err(numbered)?;
    }
    stats.elapsed = started.elapsed();
    Ok(stats)
}

async fn run_one(
    engine: &Engine,
    statement: datafusion::sql::parser::Statement,
    sink: &Sink,
    last: bool,
    stats: &mut Stats,
) -> Result<()> {
    let state = engine.ctx.state();
    let plan = state.statement_to_plan(statement).await?;
    check_statement_allowed(&plan)?;
    let frame = engine.ctx.execute_logical_plan(plan).await?;
    let physical = frame.create_physical_plan().await?;
    let stream = execute_stream(physical.clone(), engine.ctx.task_ctx())?;
    let written = match sink {
        Sink::File { path, format, .. } if last => output::write_file(stream, path, *format).await,
        Sink::File { max_rows, .. } | Sink::Terminal { max_rows } => {
            output::print_table(stream, *max_rows, &mut std::io::stdout().lock()).await
        }
    };
    let rows = match written {
        Ok(rows) => rows,
        Err(Error::Query(e)) if e.to_string().contains("Parquet") => {
            // A data page that does not decode: say which file, not just what went wrong.
            return Err(match engine.files.find_corrupt_file(&engine.ctx).await {
                Some(culprit) => Error::CorruptFile(culprit),
                None => Error::Query(e),
            });
        }
        Err(e) => return Err(e),
    };
    stats.rows += rows;
    let (bytes, files) = spills(&physical);
    if let Some(run) = crate::cluster::run_of(&physical) {
        stats.cluster = Some(run);
    }
    stats.spilled_bytes += bytes;
    stats.spill_count += files;
    Ok(())
}

/// The bytes and files every operator of an executed plan spilled to disk.
pub fn spills(plan: &Arc<dyn ExecutionPlan>) -> (usize, usize) {
    let (mut bytes, mut files) = plan.metrics().map_or((0, 0), |m| {
        (m.spilled_bytes().unwrap_or(0), m.spill_count().unwrap_or(0))
    });
    for child in plan.children() {
        let (b, f) = spills(child);
        bytes += b;
        files += f;
    }
    (bytes, files)
}

/// The process's peak resident set size in bytes (Linux), if it can be read.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
