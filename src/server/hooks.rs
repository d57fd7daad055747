//! Statements the server answers itself, before datafusion-postgres's own hooks:
//! the read-only policy, savepoints, `DISCARD`/`RESET`/`UNLISTEN` (driver housekeeping),
//! and `COPY (query) TO STDOUT` (psql's `\copy`, psycopg's `copy()`).

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::arrow::array::{Array, BooleanArray, RecordBatch};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::{DFSchema, ParamValues};
use datafusion::logical_expr::{EmptyRelation, LogicalPlan, LogicalPlanBuilder, lit};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, ObjectType,
    Statement,
};
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use futures::StreamExt;
use pgwire::api::ClientInfo;
use pgwire::api::Type;
use pgwire::api::results::{
    CopyResponse, DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response, Tag,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::copy::CopyData;
use pgwire::messages::response::TransactionStatus;

use super::errors::{INSUFFICIENT_PRIVILEGE, error};

/// The server's own statement handling.
#[derive(Debug, Default)]
pub struct DiscernHook;

/// What the hook does with a statement.
enum Action {
    /// Not ours: datafusion-postgres plans and runs it.
    Pass,
    /// Refused by the read-only policy.
    Refuse(String),
    /// Answered with a command tag and nothing else.
    Tag(&'static str),
    /// `COPY (query) TO STDOUT`.
    CopyOut,
    /// `SHOW` of a setting the server answers itself.
    Show(&'static str, &'static str),
    /// Runs this statement instead (see [`super::pg_rewrite::rewrite`]).
    Rewrite(Box<Statement>),
    /// `EXPLAIN ANALYZE`, with the memory each operator held added to the metrics.
    ExplainAnalyze,
    /// `DECLARE name CURSOR FOR query` over the extended protocol, where the query may
    /// have parameters (psycopg 3's named cursors, SQLAlchemy's `stream_results`); over the
    /// simple protocol datafusion-postgres's cursor hook declares it.
    Declare(Box<datafusion::sql::sqlparser::ast::Query>),
}

/// Settings `SHOW` answers here (datafusion-postgres does not know them): what a read-only
/// PostgreSQL 16 without superuser rights reports.
fn show_value(name: &str) -> Option<(&'static str, &'static str)> {
    Some(match name {
        "is_superuser" => ("is_superuser", "off"),
        "server_version" => ("server_version", super::SERVER_VERSION),
        "server_version_num" => ("server_version_num", super::SERVER_VERSION_NUM),
        "default_transaction_read_only" => ("default_transaction_read_only", "on"),
        "transaction_read_only" => ("transaction_read_only", "on"),
        "server_encoding" => ("server_encoding", "UTF8"),
        "lc_collate" => ("lc_collate", "C"),
        "max_identifier_length" => ("max_identifier_length", "63"),
        "max_index_keys" => ("max_index_keys", "32"),
        "standard_conforming_strings" => ("standard_conforming_strings", "on"),
        "integer_datetimes" => ("integer_datetimes", "on"),
        "client_encoding" => ("client_encoding", "UTF8"),
        _ => return None,
    })
}

fn action(statement: &Statement) -> Action {
    match statement {
        Statement::Savepoint { .. } | Statement::ReleaseSavepoint { .. } => {
            let tag = if matches!(statement, Statement::Savepoint { .. }) {
                "SAVEPOINT"
            } else {
                "RELEASE"
            };
            Action::Tag(tag)
        }
        // ROLLBACK TO SAVEPOINT leaves the transaction open and clears its error state.
        Statement::Rollback {
            savepoint: Some(_), ..
        } => Action::Tag("ROLLBACK"),
        Statement::Discard { .. } => Action::Tag("DISCARD ALL"),
        // psycopg 3 after a rollback; its statements are protocol-level and renamed anyway.
        Statement::Deallocate { name, .. } if name.value.eq_ignore_ascii_case("all") => {
            Action::Tag("DEALLOCATE ALL")
        }
        Statement::ShowVariable { variable } => {
            let name = variable
                .iter()
                .map(|i| i.value.to_ascii_lowercase())
                .collect::<Vec<_>>()
                .join(" ");
            match show_value(&name) {
                Some((column, value)) => Action::Show(column, value),
                None => Action::Pass,
            }
        }
        Statement::Reset(_) => Action::Tag("RESET"),
        Statement::UNLISTEN { .. } => Action::Tag("UNLISTEN"),
        Statement::Copy {
            to: true,
            target: CopyTarget::Stdout,
            ..
        } => Action::CopyOut,
        Statement::Copy { .. } => Action::Refuse(
            "COPY is allowed only as COPY (query) TO STDOUT: Discern serves read-only data".into(),
        ),
        Statement::Explain { analyze: true, .. } => Action::ExplainAnalyze,
        Statement::Declare { stmts } => match stmts.as_slice() {
            [declare] => match &declare.for_query {
                Some(query) => Action::Declare(query.clone()),
                None => Action::Pass,
            },
            _ => Action::Pass,
        },
        // Views live in the connection's own session (like CREATE TEMP VIEW).
        Statement::CreateView(_)
        | Statement::Drop {
            object_type: ObjectType::View,
            ..
        } => Action::Pass,
        Statement::Set(set) if is_runtime_setting(&set.to_string()) => Action::Refuse(
            "SET datafusion.runtime.* and datafusion.catalog.* are not allowed: the memory \
             limit, spill directory and catalog are fixed by the server configuration"
                .into(),
        ),
        Statement::Query(_)
        | Statement::Explain { .. }
        | Statement::ExplainTable { .. }
        | Statement::Set(_)
        | Statement::ShowVariables { .. }
        | Statement::ShowStatus { .. }
        | Statement::ShowTables { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowCatalogs { .. }
        | Statement::ShowSchemas { .. }
        | Statement::ShowFunctions { .. }
        | Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Fetch { .. }
        | Statement::Close { .. }
        | Statement::Prepare { .. }
        | Statement::Execute { .. }
        | Statement::Deallocate { .. } => match super::pg_rewrite::rewrite(statement) {
            Some(rewritten) => Action::Rewrite(Box::new(rewritten)),
            None => Action::Pass,
        },
        other => {
            let text = other.to_string();
            let verb: String = text
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
                .to_uppercase();
            Action::Refuse(format!(
                "{verb} is not allowed: Discern serves read-only data (tables are declared in \
                 the server configuration)"
            ))
        }
    }
}

fn is_runtime_setting(set: &str) -> bool {
    let set = set.to_ascii_lowercase();
    set.contains("datafusion.runtime") || set.contains("datafusion.catalog")
}

fn empty_plan() -> LogicalPlan {
    LogicalPlan::EmptyRelation(EmptyRelation {
        produce_one_row: false,
        schema: Arc::new(DFSchema::empty()),
    })
}

#[async_trait]
impl QueryHook for DiscernHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let status = client.transaction_status();
        match action(statement) {
            Action::Pass | Action::Declare(_) => None,
            Action::Refuse(message) => Some(Err(error(INSUFFICIENT_PRIVILEGE, message))),
            Action::Tag(tag) if status == TransactionStatus::Error && tag != "ROLLBACK" => {
                Some(Err(error(
                    "25P02",
                    "current transaction is aborted, commands ignored until end of transaction block",
                )))
            }
            Action::Tag(tag) => {
                // Savepoints are accepted outside a transaction block too: within one
                // simple query ("BEGIN; SAVEPOINT a") the status is only known afterwards.
                if matches!(tag, "RESET" | "DISCARD ALL") {
                    // Back to the server's defaults (what pools send between borrowers).
                    client.metadata_mut().remove("statement_timeout_ms");
                }
                Some(Ok(Response::Execution(Tag::new(tag))))
            }
            Action::Show(column, value) => Some(show_response(column, value)),
            Action::Rewrite(_) if status == TransactionStatus::Error => Some(Err(error(
                "25P02",
                "current transaction is aborted, commands ignored until end of transaction block",
            ))),
            Action::Rewrite(rewritten) => Some(run_rewritten(&rewritten, ctx, client).await),
            Action::ExplainAnalyze => Some(explain_analyze(statement, ctx, client).await),
            Action::CopyOut => {
                if status == TransactionStatus::Error {
                    return Some(Err(error(
                        "25P02",
                        "current transaction is aborted, commands ignored until end of transaction block",
                    )));
                }
                Some(copy_out(statement, ctx).await)
            }
        }
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        match action(statement) {
            Action::Pass => None,
            Action::Refuse(message) => Some(Err(error(INSUFFICIENT_PRIVILEGE, message))),
            Action::Tag(..) | Action::CopyOut => Some(Ok(empty_plan())),
            Action::ExplainAnalyze => None,
            // (The parser around this hook types LIMIT/OFFSET parameters in every plan.)
            Action::Rewrite(rewritten) => Some(
                plan(ctx, *rewritten)
                    .await
                    .map_err(|e| PgWireError::ApiError(Box::new(e))),
            ),
            // The cursor's query, rewritten as any statement is and planned so that its
            // parameters are described and bound, under a projection of no columns: DECLARE
            // itself returns no rows.
            Action::Declare(query) => Some(
                plan(ctx, {
                    let statement = Statement::Query(query);
                    super::pg_rewrite::rewrite(&statement).unwrap_or(statement)
                })
                .await
                .and_then(|plan| {
                    LogicalPlanBuilder::from(plan)
                        .project(Vec::<datafusion::logical_expr::Expr>::new())?
                        .build()
                })
                .map_err(|e| PgWireError::ApiError(Box::new(e))),
            ),
            Action::Show(column, value) => Some(
                LogicalPlanBuilder::empty(true)
                    .project(vec![lit(value).alias(column)])
                    .and_then(|b| b.build())
                    .map_err(|e| PgWireError::ApiError(Box::new(e))),
            ),
        }
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        plan: &LogicalPlan,
        params: &ParamValues,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        match action(statement) {
            // The plan made at Parse is the rewritten statement's: datafusion-postgres binds
            // the parameters into it and runs it.
            Action::Rewrite(_) => None,
            Action::Declare(_) => Some(declare(statement, plan, params, ctx, client).await),
            _ => self.handle_simple_query(statement, ctx, client).await,
        }
    }
}

/// The logical plan of a parsed statement.
async fn plan(
    ctx: &SessionContext,
    statement: Statement,
) -> datafusion::error::Result<LogicalPlan> {
    ctx.state()
        .statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(
            statement,
        )))
        .await
}

/// `DECLARE name CURSOR FOR query` with bound parameters: runs the query and keeps its rows
/// in a portal that `FETCH` reads (datafusion-postgres's cursor hook does the same without
/// parameters).
async fn declare(
    statement: &Statement,
    plan: &LogicalPlan,
    params: &ParamValues,
    ctx: &SessionContext,
    client: &mut dyn HookClient,
) -> PgWireResult<Response> {
    use pgwire::api::portal::{Format, Portal};
    use pgwire::api::stmt::StoredStatement;
    use pgwire::api::store::PortalStore;
    let api = |e: datafusion::error::DataFusionError| PgWireError::ApiError(Box::new(e));
    if client.transaction_status() == TransactionStatus::Error {
        return Err(error(
            "25P02",
            "current transaction is aborted, commands ignored until end of transaction block",
        ));
    }
    let Statement::Declare { stmts } = statement else {
        return Err(error("XX000", "not a DECLARE statement"));
    };
    let Some(name) = stmts.first().and_then(|d| d.names.first()) else {
        return Err(error("42601", "cursor name is required"));
    };
    let Some(inner) = plan.inputs().first().map(|p| (*p).clone()) else {
        return Err(error("XX000", "DECLARE was not planned"));
    };
    let bound = inner.replace_params_with_values(params).map_err(api)?;
    let df = ctx.execute_logical_plan(bound.clone()).await.map_err(api)?;
    let options = Arc::new(pgwire::types::format::FormatOptions::from_client_metadata(
        client.metadata(),
    ));
    let rows = datafusion_postgres::arrow_pg::datatypes::df::encode_dataframe(
        df,
        &Format::UnifiedText,
        Some(options),
    )
    .await?;
    // With its plan, so that Describe of the cursor's portal gives the rows' columns
    // (psycopg 3 asks before its first FETCH).
    let stored = Arc::new(StoredStatement::new(
        name.value.clone(),
        (statement.to_string(), Some((statement.clone(), bound))),
        vec![],
    ));
    let portal = Portal::new_cursor(name.value.clone(), stored);
    portal.start(rows).await;
    client.portal_store().put_portal(Arc::new(portal));
    Ok(Response::Execution(Tag::new("DECLARE CURSOR")))
}

/// Runs `EXPLAIN ANALYZE` and adds a `Memory` row: the peak each memory consumer (an
/// operator instance: `GroupedHashAggregateStream[0]`, `ExternalSorter[1]`, …) held in the
/// pool, and the statement's total peak. Spills are in the plan's own metrics
/// (`spill_count`, `spilled_bytes`).
async fn explain_analyze(
    statement: &Statement,
    ctx: &SessionContext,
    client: &mut dyn HookClient,
) -> PgWireResult<Response> {
    use datafusion::arrow::array::StringArray;
    use datafusion::common::cast::as_string_array;
    let api = |e: datafusion::error::DataFusionError| PgWireError::ApiError(Box::new(e));
    let pool = ctx.runtime_env().memory_pool.clone();
    let session = pool.downcast_ref::<super::admission::SessionPool>();
    if let Some(p) = session {
        p.reset_peak();
    }
    let batches = ctx
        .sql(&statement.to_string())
        .await
        .map_err(api)?
        .collect()
        .await
        .map_err(api)?;
    let mut kinds: Vec<String> = Vec::new();
    let mut plans: Vec<String> = Vec::new();
    for batch in &batches {
        if batch.num_columns() < 2 {
            continue;
        }
        let k = as_string_array(batch.column(0)).map_err(api)?;
        let p = as_string_array(batch.column(1)).map_err(api)?;
        for i in 0..batch.num_rows() {
            kinds.push(k.value(i).to_string());
            plans.push(p.value(i).to_string());
        }
    }
    if let Some(p) = session {
        let mut text = format!(
            "peak {} for the statement (memory limit {})\n",
            crate::config::ByteSize(p.peak() as u64),
            match datafusion::execution::memory_pool::MemoryPool::memory_limit(p) {
                datafusion::execution::memory_pool::MemoryLimit::Finite(n) => {
                    crate::config::ByteSize(n as u64).to_string()
                }
                _ => "none".into(),
            }
        );
        for c in p.consumers() {
            text.push_str(&format!(
                "  {}: peak {}{}\n",
                c.name,
                crate::config::ByteSize(c.peak as u64),
                if c.can_spill { " (can spill)" } else { "" }
            ));
        }
        kinds.push("Memory".into());
        plans.push(text);
    }
    let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(vec![
        datafusion::arrow::datatypes::Field::new(
            "plan_type",
            datafusion::arrow::datatypes::DataType::Utf8,
            false,
        ),
        datafusion::arrow::datatypes::Field::new(
            "plan",
            datafusion::arrow::datatypes::DataType::Utf8,
            false,
        ),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(kinds)),
            Arc::new(StringArray::from(plans)),
        ],
    )
    .map_err(|e| api(e.into()))?;
    text_response(ctx.read_batch(batch).map_err(api)?, client).await
}

async fn run_rewritten(
    statement: &Statement,
    ctx: &SessionContext,
    client: &mut dyn HookClient,
) -> PgWireResult<Response> {
    let api = |e: datafusion::error::DataFusionError| PgWireError::ApiError(Box::new(e));
    let plan = plan(ctx, statement.clone()).await.map_err(api)?;
    let df = ctx.execute_logical_plan(plan).await.map_err(api)?;
    text_response(df, client).await
}

/// A DataFrame as a text-format query response, formatted with the client's settings.
async fn text_response(
    df: datafusion::dataframe::DataFrame,
    client: &dyn HookClient,
) -> PgWireResult<Response> {
    let options = Arc::new(pgwire::types::format::FormatOptions::from_client_metadata(
        client.metadata(),
    ));
    let response = datafusion_postgres::arrow_pg::datatypes::df::encode_dataframe(
        df,
        &pgwire::api::portal::Format::UnifiedText,
        Some(options),
    )
    .await?;
    Ok(Response::Query(response))
}

fn show_response(column: &str, value: &str) -> PgWireResult<Response> {
    let fields = Arc::new(vec![FieldInfo::new(
        column.to_string(),
        None,
        None,
        Type::TEXT,
        FieldFormat::Text,
    )]);
    let mut encoder = DataRowEncoder::new(fields.clone());
    encoder.encode_field(&Some(value))?;
    let row = encoder.take_row();
    Ok(Response::Query(QueryResponse::new(
        fields,
        futures::stream::iter([Ok(row)]),
    )))
}

/// `COPY (query) TO STDOUT [WITH (FORMAT csv|text, HEADER, DELIMITER 'c', NULL 's')]`, one
/// CopyData message per row, text or CSV as PostgreSQL writes them.
async fn copy_out(statement: &Statement, ctx: &SessionContext) -> PgWireResult<Response> {
    let Statement::Copy {
        source,
        options,
        legacy_options,
        ..
    } = statement
    else {
        return Err(error("XX000", "not a COPY statement"));
    };
    let mut csv = false;
    let mut header = false;
    let mut delimiter: Option<char> = None;
    let mut null: Option<String> = None;
    for option in options {
        match option {
            CopyOption::Format(f) => csv = f.value.eq_ignore_ascii_case("csv"),
            CopyOption::Header(h) => header = *h,
            CopyOption::Delimiter(d) => delimiter = Some(*d),
            CopyOption::Null(n) => null = Some(n.clone()),
            other => {
                return Err(error(
                    "0A000",
                    format!("COPY option {other} is not supported"),
                ));
            }
        }
    }
    for option in legacy_options {
        match option {
            CopyLegacyOption::Csv(csv_options) => {
                csv = true;
                for o in csv_options {
                    match o {
                        CopyLegacyCsvOption::Header => header = true,
                        other => {
                            return Err(error(
                                "0A000",
                                format!("COPY option {other} is not supported"),
                            ));
                        }
                    }
                }
            }
            CopyLegacyOption::Header => header = true,
            CopyLegacyOption::Delimiter(d) => delimiter = Some(*d),
            CopyLegacyOption::Null(n) => null = Some(n.clone()),
            CopyLegacyOption::Binary => {
                return Err(error("0A000", "COPY ... BINARY is not supported"));
            }
            other => {
                return Err(error(
                    "0A000",
                    format!("COPY option {other} is not supported"),
                ));
            }
        }
    }
    let sql = match source {
        CopySource::Query(query) => query.to_string(),
        CopySource::Table {
            table_name,
            columns,
        } => {
            let cols = if columns.is_empty() {
                "*".to_string()
            } else {
                columns
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!("SELECT {cols} FROM {table_name}")
        }
    };
    let df = ctx
        .sql(&sql)
        .await
        .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    let columns = df.schema().fields().len();
    let names: Vec<String> = df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let stream = df
        .execute_stream()
        .await
        .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    let writer = Arc::new(CopyWriter {
        csv,
        delimiter: delimiter.unwrap_or(if csv { ',' } else { '\t' }),
        null: null.unwrap_or_else(|| if csv { String::new() } else { "\\N".into() }),
    });
    let header_row = (header && csv).then(|| {
        let cells: Vec<String> = names.iter().map(|n| writer.csv_quote(n)).collect();
        Ok(CopyData::new(Bytes::from(format!(
            "{}\n",
            cells.join(&writer.delimiter.to_string())
        ))))
    });
    let rows = stream.flat_map(move |batch| {
        let lines: Vec<PgWireResult<CopyData>> = match batch {
            Ok(batch) => match writer.rows(&batch) {
                Ok(lines) => lines
                    .into_iter()
                    .map(|l| Ok(CopyData::new(Bytes::from(l))))
                    .collect(),
                Err(e) => vec![Err(e)],
            },
            Err(e) => vec![Err(PgWireError::ApiError(Box::new(e)))],
        };
        futures::stream::iter(lines)
    });
    let data = futures::stream::iter(header_row).chain(rows);
    Ok(Response::CopyOut(CopyResponse::new(0, columns, data)))
}

struct CopyWriter {
    csv: bool,
    delimiter: char,
    null: String,
}

impl CopyWriter {
    fn rows(&self, batch: &RecordBatch) -> PgWireResult<Vec<String>> {
        let options = FormatOptions::default().with_null("\u{0}NULL");
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        let mut out = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            let mut line = String::new();
            for (i, (f, column)) in formatters.iter().zip(batch.columns()).enumerate() {
                if i > 0 {
                    line.push(self.delimiter);
                }
                if column.is_null(row) {
                    line.push_str(&self.null);
                    continue;
                }
                // PostgreSQL writes booleans as t and f.
                let value = match column.as_any().downcast_ref::<BooleanArray>() {
                    Some(b) => if b.value(row) { "t" } else { "f" }.to_string(),
                    None => f.value(row).to_string(),
                };
                if self.csv {
                    line.push_str(&self.csv_quote(&value));
                } else {
                    self.text_escape(&value, &mut line);
                }
            }
            line.push('\n');
            out.push(line);
        }
        Ok(out)
    }

    fn csv_quote(&self, value: &str) -> String {
        let needs = value.is_empty()
            || value.contains(self.delimiter)
            || value.contains(['"', '\n', '\r'])
            || value == self.null;
        if needs {
            format!("\"{}\"", value.replace('"', "\"\""))
        } else {
            value.to_string()
        }
    }

    fn text_escape(&self, value: &str, out: &mut String) {
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c == self.delimiter => {
                    out.push('\\');
                    out.push(c);
                }
                c => out.push(c),
            }
        }
    }
}
