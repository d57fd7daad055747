//! Errors at the edges of the process: configuration, table registration, queries and output.
//!
//! Every variant names its culprit (the config file, the table and its location, the output
//! path) so that the single line printed by the CLI is enough to act on.

use std::path::PathBuf;

use datafusion::error::DataFusionError;

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can stop a Discern command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration file or a flag is wrong.
    #[error("config: {0}")]
    Config(String),

    /// The configuration file could not be read.
    #[error("config file {path}: {source}")]
    ConfigFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A table could not be registered (its location is missing, unreachable or unreadable).
    #[error("table '{table}' at {location}: {message}")]
    Table {
        table: String,
        location: String,
        message: String,
    },

    /// A SQL file could not be read.
    #[error("SQL file {path}: {source}")]
    SqlFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Planning or executing a statement failed.
    #[error("{}", query_message(.0))]
    Query(#[from] DataFusionError),

    /// A Parquet file failed to decode in the middle of a query.
    #[error("{0}")]
    CorruptFile(String),

    /// One statement of several failed.
    #[error("statement {index} of {count}: {source}")]
    Statement {
        index: usize,
        count: usize,
        source: Box<Error>,
    },

    /// Writing a result or a generated file failed.
    #[error("{path}: {message}")]
    Output { path: PathBuf, message: String },
}

/// A query error's line: DataFusion's, or the cluster's own message for a statement the
/// cluster could not run (without DataFusion's "External error: " prefix).
fn query_message(error: &DataFusionError) -> String {
    match crate::cluster::ClusterError::find(error) {
        Some(cluster) => one_line(cluster),
        None => one_line(error),
    }
}

impl Error {
    /// A table error from any displayable cause.
    pub fn table(table: &str, location: &str, cause: impl std::fmt::Display) -> Self {
        Error::Table {
            table: table.to_string(),
            location: location.to_string(),
            message: one_line(&cause),
        }
    }

    /// An output error from any displayable cause.
    pub fn output(path: impl Into<PathBuf>, cause: impl std::fmt::Display) -> Self {
        Error::Output {
            path: path.into(),
            message: one_line(&cause),
        }
    }
}

/// Renders an error on one line: DataFusion and object_store messages may span several lines
/// (the memory pool lists its top consumers, S3 errors carry response bodies).
pub fn one_line(cause: &impl std::fmt::Display) -> String {
    let text = cause.to_string();
    let mut out = String::with_capacity(text.len());
    for (i, line) in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        if i > 0 {
            out.push_str("; ");
        }
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_messages_become_one_line() {
        let e = DataFusionError::ResourcesExhausted(
            "Failed to allocate\nTop consumers:\n  ExternalSorter: 10MB\n".into(),
        );
        let shown = Error::from(e).to_string();
        assert!(!shown.contains('\n'), "{shown}");
        assert!(
            shown.contains("Failed to allocate; Top consumers:; ExternalSorter: 10MB"),
            "{shown}"
        );
    }

    #[test]
    fn table_errors_name_table_and_location() {
        let e = Error::table("measurements", "s3://lab/m/", "bucket does not exist");
        assert_eq!(
            e.to_string(),
            "table 'measurements' at s3://lab/m/: bucket does not exist"
        );
    }
}
