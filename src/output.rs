//! Query results: an aligned table on the terminal, or a CSV, JSON or Parquet file.
//!
//! Results are streamed: a file is written batch by batch, and the terminal shows the first
//! `--max-rows` rows and counts the rest, so printing never holds a large result in memory.
//! A file is written under a temporary name and renamed when complete, so a failed query
//! never leaves a truncated file or clobbers the previous one.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::arrow::util::pretty::pretty_format_batches_with_schema;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use futures::StreamExt;

use crate::error::{Error, Result};

/// An output file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Comma-separated values with a header; nested values (STRUCT, LIST) as text.
    Csv,
    /// One JSON array of objects.
    Json,
    /// Newline-delimited JSON, one object per line.
    Ndjson,
    /// Parquet, zstd-compressed, types preserved.
    Parquet,
}

impl Format {
    /// The format named by a file's extension.
    pub fn from_path(path: &Path) -> Result<Self> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("csv") => Ok(Format::Csv),
            Some("json") => Ok(Format::Json),
            Some("ndjson" | "jsonl") => Ok(Format::Ndjson),
            Some("parquet") => Ok(Format::Parquet),
            _ => Err(Error::output(
                path,
                "cannot tell the format from the extension: use .csv, .json, .ndjson or \
                 .parquet, or pass --format",
            )),
        }
    }
}

/// Prints up to `max_rows` rows as an aligned table and returns the total row count.
pub async fn print_table(
    mut stream: SendableRecordBatchStream,
    max_rows: usize,
    out: &mut impl Write,
) -> Result<u64> {
    let schema = stream.schema();
    let mut shown = Vec::new();
    let mut kept = 0usize;
    let mut total = 0u64;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        total += batch.num_rows() as u64;
        if kept < max_rows {
            let take = batch.num_rows().min(max_rows - kept);
            kept += take;
            shown.push(batch.slice(0, take));
        }
    }
    if schema.fields().is_empty() {
        return Ok(total);
    }
    let table = pretty_format_batches_with_schema(schema, &shown)
        .map_err(|e| Error::output("standard output", e))?;
    let io = |e: std::io::Error| Error::output("standard output", e);
    writeln!(out, "{table}").map_err(io)?;
    let noun = if total == 1 { "row" } else { "rows" };
    if total > kept as u64 {
        writeln!(
            out,
            "({total} {noun}, first {kept} shown: use --max-rows N or --output FILE for more)"
        )
        .map_err(io)?;
    } else {
        writeln!(out, "({total} {noun})").map_err(io)?;
    }
    Ok(total)
}

/// Writes the whole result to `path` and returns the row count.
pub async fn write_file(
    mut stream: SendableRecordBatchStream,
    path: &Path,
    format: Format,
) -> Result<u64> {
    let partial = partial_name(path);
    let result = async {
        let file = File::create(&partial).map_err(|e| Error::output(path, e))?;
        let mut writer = Writer::new(BufWriter::new(file), stream.schema(), format)
            .map_err(|e| Error::output(path, e))?;
        let mut rows = 0u64;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            rows += batch.num_rows() as u64;
            writer.write(&batch).map_err(|e| Error::output(path, e))?;
        }
        writer.finish().map_err(|e| Error::output(path, e))?;
        std::fs::rename(&partial, path).map_err(|e| Error::output(path, e))?;
        Ok(rows)
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

fn partial_name(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".partial-{}", std::process::id()));
    path.with_file_name(name)
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

enum Writer<W: Write + Send> {
    Csv(Box<datafusion::arrow::csv::Writer<W>>),
    Json(datafusion::arrow::json::ArrayWriter<W>),
    Ndjson(datafusion::arrow::json::LineDelimitedWriter<W>),
    Parquet(Box<ArrowWriter<W>>),
}

impl<W: Write + Send> Writer<W> {
    fn new(out: W, schema: SchemaRef, format: Format) -> Result<Self, BoxError> {
        Ok(match format {
            Format::Csv => Writer::Csv(Box::new(
                datafusion::arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(out),
            )),
            Format::Json => Writer::Json(datafusion::arrow::json::ArrayWriter::new(out)),
            Format::Ndjson => {
                Writer::Ndjson(datafusion::arrow::json::LineDelimitedWriter::new(out))
            }
            Format::Parquet => {
                let props = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
                    .build();
                Writer::Parquet(Box::new(ArrowWriter::try_new(out, schema, Some(props))?))
            }
        })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), BoxError> {
        match self {
            Writer::Csv(w) => w.write(&nested_as_text(batch)?)?,
            Writer::Json(w) => w.write(batch)?,
            Writer::Ndjson(w) => w.write(batch)?,
            Writer::Parquet(w) => w.write(batch)?,
        }
        Ok(())
    }

    fn finish(self) -> Result<(), BoxError> {
        match self {
            Writer::Csv(w) => w.into_inner().flush()?,
            Writer::Json(mut w) => {
                w.finish()?;
                w.into_inner().flush()?
            }
            Writer::Ndjson(mut w) => {
                w.finish()?;
                w.into_inner().flush()?
            }
            Writer::Parquet(w) => {
                w.close()?;
            }
        }
        Ok(())
    }
}

/// CSV has no nested values: STRUCT, LIST and MAP columns are written as their text form
/// (`{auc: 0.81, se: 0.03, …}`), the same form the terminal table shows.
fn nested_as_text(batch: &RecordBatch) -> Result<RecordBatch, BoxError> {
    let schema = batch.schema();
    if !schema.fields().iter().any(|f| f.data_type().is_nested()) {
        return Ok(batch.clone());
    }
    let options = FormatOptions::default().with_null("");
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        if !field.data_type().is_nested() {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
            continue;
        }
        let formatter = ArrayFormatter::try_new(column.as_ref(), &options)?;
        let mut text = StringBuilder::new();
        for i in 0..column.len() {
            if column.is_null(i) {
                text.append_null();
            } else {
                text.append_value(formatter.value(i).to_string());
            }
        }
        fields.push(Field::new(field.name(), DataType::Utf8, true));
        columns.push(Arc::new(text.finish()));
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}
