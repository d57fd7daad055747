//! Runs every `sql/*.slt` file over the Postgres wire, against `discern serve` through a real
//! driver over TLS: the same files udfs/tests/slt.rs runs in-process, so the SQL surface is
//! the same either way. Text results are normalised to the in-process formatting by column
//! type (booleans t/f → true/false, floats re-printed the way Arrow prints them). Records
//! that cannot apply over the wire are marked `skipif wire` in the files, each with the
//! reason next to it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;

use common::pg::Server;
use datafusion::arrow::array::{Float32Array, Float64Array};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use sqllogictest::{DBOutput, DefaultColumnType};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, SimpleQueryMessage};

struct Wire {
    client: Client,
}

#[derive(Debug)]
struct WireError(String);

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WireError {}

impl From<tokio_postgres::Error> for WireError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => WireError(format!("{} (SQLSTATE {})", db.message(), db.code().code())),
            None => WireError(e.to_string()),
        }
    }
}

fn arrow_text(value: &str, ty: &Type) -> String {
    let options = FormatOptions::default();
    let format = |array: &dyn datafusion::arrow::array::Array| {
        ArrayFormatter::try_new(array, &options)
            .map(|f| f.value(0).to_string())
            .unwrap_or_else(|_| value.to_string())
    };
    match *ty {
        Type::BOOL => match value {
            "t" => "true".into(),
            "f" => "false".into(),
            other => other.into(),
        },
        Type::FLOAT8 => match value.parse::<f64>() {
            Ok(v) => format(&Float64Array::from(vec![v])),
            Err(_) => value.into(),
        },
        Type::FLOAT4 => match value.parse::<f32>() {
            Ok(v) => format(&Float32Array::from(vec![v])),
            Err(_) => value.into(),
        },
        _ if value.is_empty() => "(empty)".into(),
        _ => value.into(),
    }
}

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for Wire {
    type Error = WireError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, WireError> {
        // Column types come from Describe (extended protocol); values from the simple
        // protocol, in text, as psql shows them.
        let types: Option<Vec<Type>> = match self.client.prepare(sql).await {
            Ok(statement) => Some(
                statement
                    .columns()
                    .iter()
                    .map(|c| c.type_().clone())
                    .collect(),
            ),
            Err(_) => None,
        };
        let messages = self.client.simple_query(sql).await?;
        let mut rows = Vec::new();
        let mut width = None;
        for message in messages {
            match message {
                SimpleQueryMessage::RowDescription(columns) => width = Some(columns.len()),
                SimpleQueryMessage::Row(row) => {
                    width = Some(row.len());
                    rows.push(
                        (0..row.len())
                            .map(|i| match row.get(i) {
                                None => "NULL".to_string(),
                                Some(v) => match types.as_ref().and_then(|t| t.get(i)) {
                                    Some(ty) => arrow_text(v, ty),
                                    None if v.is_empty() => "(empty)".to_string(),
                                    None => v.to_string(),
                                },
                            })
                            .collect::<Vec<_>>(),
                    );
                }
                _ => {}
            }
        }
        match width {
            None | Some(0) => Ok(DBOutput::StatementComplete(0)),
            Some(n) => Ok(DBOutput::Rows {
                types: vec![DefaultColumnType::Any; n],
                rows,
            }),
        }
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "wire"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_slt_file_passes_over_the_wire() {
    let server = Server::start(&[]);
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/sql"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "no .slt files found in {}", dir.display());
    for file in files {
        // A fresh connection per file: views and settings are per connection.
        let client = server.connect().await;
        let mut client = Some(client);
        let mut runner = sqllogictest::Runner::new(move || {
            let client = client.take();
            async move {
                match client {
                    Some(client) => Ok(Wire { client }),
                    None => Err(WireError("one connection per file".into())),
                }
            }
        });
        runner.add_label("wire");
        if let Err(e) = runner.run_file_async(&file).await {
            panic!("{} over the wire: {e}", file.display());
        }
    }
}
