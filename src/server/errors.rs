//! SQLSTATEs for everything a query can fail with, so that drivers raise the right
//! exception class (psycopg `UndefinedTable`, asyncpg `PostgresSyntaxError`, JDBC states…).

use std::collections::BTreeSet;

use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::parser::ParserError;
use pgwire::error::{ErrorInfo, PgWireError};

/// Query cancelled (Ctrl-C, statement timeout, client gone).
pub const QUERY_CANCELED: &str = "57014";
/// Permission denied.
pub const INSUFFICIENT_PRIVILEGE: &str = "42501";

/// An `ERROR` with a code and a message.
pub fn error(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        code.into(),
        message.into(),
    )))
}

/// A `FATAL` (the connection closes after it).
pub fn fatal(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".into(),
        code.into(),
        message.into(),
    )))
}

/// Rewrites an error into the one the client should see. `hidden` are the tables that exist
/// but that this user may not read: asking for one is a permission error, not "not found".
pub fn translate(error: PgWireError, hidden: &BTreeSet<String>) -> PgWireError {
    match error {
        PgWireError::ApiError(inner) => {
            let (code, message) = classify_api(inner.as_ref(), hidden);
            error_with(code, message)
        }
        PgWireError::UserError(mut info) => {
            // datafusion-postgres answers statements in a failed transaction with 25P01
            // (no_active_sql_transaction); PostgreSQL, and every driver, expect 25P02.
            if info.code == "25P01" && info.message.starts_with("current transaction is aborted") {
                info.code = "25P02".into();
            }
            PgWireError::UserError(info)
        }
        PgWireError::QueryCanceled => error_with(
            QUERY_CANCELED,
            "canceling statement due to user request".into(),
        ),
        other => other,
    }
}

/// datafusion-postgres answers statements in a failed transaction with 25P01
/// (no_active_sql_transaction); PostgreSQL, and every driver, expect 25P02.
fn client_code<'a>(code: &'a str, message: &str) -> &'a str {
    if code == "25P01" && message.starts_with("current transaction is aborted") {
        "25P02"
    } else {
        code
    }
}

/// The SQLSTATE a client will see for an error (what [`translate`] makes of it), for the
/// audit log, without consuming the error.
pub fn sqlstate(error: &PgWireError, hidden: &BTreeSet<String>) -> String {
    match error {
        PgWireError::ApiError(inner) => classify_api(inner.as_ref(), hidden).0.to_string(),
        PgWireError::UserError(info) => client_code(&info.code, &info.message).to_string(),
        PgWireError::QueryCanceled => QUERY_CANCELED.into(),
        _ => "08P01".into(),
    }
}

fn error_with(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        code.into(),
        message,
    )))
}

/// The SQLSTATE and message of an error a handler returned.
pub fn classify_api(
    error: &(dyn std::error::Error + Send + Sync + 'static),
    hidden: &BTreeSet<String>,
) -> (&'static str, String) {
    if let Some(df) = error.downcast_ref::<DataFusionError>() {
        return classify(df, hidden);
    }
    if let Some(parse) = error.downcast_ref::<ParserError>() {
        let code = match parse {
            ParserError::RecursionLimitExceeded => "54001",
            _ => "42601",
        };
        return (
            code,
            format!("syntax error: {}", crate::error::one_line(parse)),
        );
    }
    ("XX000", crate::error::one_line(&error))
}

/// The SQLSTATE and one-line message of a DataFusion error.
pub fn classify(error: &DataFusionError, hidden: &BTreeSet<String>) -> (&'static str, String) {
    let root = root_cause(error);
    let message = crate::error::one_line(root);
    let code = match root {
        DataFusionError::SQL(e, _) => match e.as_ref() {
            ParserError::RecursionLimitExceeded => "54001",
            _ => "42601",
        },
        DataFusionError::SchemaError(e, _) => {
            use datafusion::common::SchemaError;
            match e.as_ref() {
                SchemaError::FieldNotFound { .. } => "42703",
                SchemaError::AmbiguousReference { .. } => "42702",
                _ => "42701",
            }
        }
        DataFusionError::ResourcesExhausted(_) => "53200",
        DataFusionError::NotImplemented(_) => "0A000",
        DataFusionError::IoError(_) | DataFusionError::ObjectStore(_) => "58030",
        DataFusionError::ParquetError(_) => "XX001",
        DataFusionError::ArrowError(e, _) => {
            use datafusion::arrow::error::ArrowError;
            match e.as_ref() {
                ArrowError::DivideByZero => "22012",
                ArrowError::CastError(_) | ArrowError::ParseError(_) => "22P02",
                ArrowError::ArithmeticOverflow(_) => "22003",
                ArrowError::MemoryError(_) => "53200",
                _ => "XX000",
            }
        }
        DataFusionError::Plan(m) => plan_code(m, hidden),
        DataFusionError::Execution(m) => {
            if m.contains("unrecognized configuration parameter") {
                "42704"
            } else if m.contains("must be") || m.contains("out of range") {
                "22023"
            } else if m.to_ascii_lowercase().contains("cancel") {
                QUERY_CANCELED
            } else {
                "XX000"
            }
        }
        DataFusionError::Configuration(_) => "22023",
        _ => "XX000",
    };
    if let Some(cluster) = crate::cluster::ClusterError::find(error) {
        return (cluster.sqlstate(), crate::error::one_line(cluster));
    }
    if let Some(table) = not_found_table(&message) {
        let table = table
            .strip_prefix("datafusion.public.")
            .unwrap_or(&table)
            .to_string();
        if code == INSUFFICIENT_PRIVILEGE {
            return (code, format!("permission denied for table {table}"));
        }
        if code == "42P01" {
            return (code, format!("relation \"{table}\" does not exist"));
        }
    }
    let message = message
        .strip_prefix("Error during planning: ")
        .unwrap_or(&message)
        .to_string();
    (code, message)
}

fn plan_code(message: &str, hidden: &BTreeSet<String>) -> &'static str {
    if let Some(table) = not_found_table(message) {
        let bare = table.rsplit('.').next().unwrap_or(&table).to_string();
        return if hidden.contains(&bare) {
            INSUFFICIENT_PRIVILEGE
        } else {
            "42P01"
        };
    }
    if message.contains("Invalid function") || message.contains("No function matches") {
        return "42883";
    }
    if message.contains("takes") && message.contains("argument") {
        return "42883";
    }
    if message.contains("must be") {
        let type_words = [
            "numeric",
            "BOOLEAN",
            "a string",
            "got Utf8",
            "got Int",
            "got Float",
        ];
        return if type_words.iter().any(|w| message.contains(w)) && message.contains(", got ") {
            "42804"
        } else {
            "22023"
        };
    }
    if message.contains("is not allowed") {
        return INSUFFICIENT_PRIVILEGE;
    }
    if message.contains("Cannot infer") || message.contains("type") && message.contains("coerc") {
        return "42804";
    }
    "42000"
}

/// "table 'datafusion.public.x' not found" → `x` (as written in the query).
fn not_found_table(message: &str) -> Option<String> {
    let start = message.find("table '")? + "table '".len();
    let rest = &message[start..];
    let end = rest.find("' not found")?;
    Some(rest[..end].to_string())
}

fn root_cause(error: &DataFusionError) -> &DataFusionError {
    match error {
        DataFusionError::Context(_, inner) => root_cause(inner),
        DataFusionError::Shared(inner) => root_cause(inner),
        DataFusionError::Diagnostic(_, inner) => root_cause(inner),
        DataFusionError::Collection(errors) => errors.first().map_or(error, root_cause),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_tables_are_permission_errors() {
        let hidden: BTreeSet<String> = ["secret".to_string()].into();
        let e = DataFusionError::Plan("table 'datafusion.public.secret' not found".into());
        assert_eq!(
            classify(&e, &hidden),
            ("42501", "permission denied for table secret".into())
        );
        let e = DataFusionError::Plan("table 'datafusion.public.nope' not found".into());
        assert_eq!(
            classify(&e, &hidden),
            ("42P01", "relation \"nope\" does not exist".into())
        );
    }

    #[test]
    fn function_errors() {
        let none = BTreeSet::new();
        let e = DataFusionError::Plan("Invalid function 'aucc'.\nDid you mean 'auc'?".into());
        assert_eq!(classify(&e, &none).0, "42883");
        let e = DataFusionError::Plan("auc_ci: level must be a constant in (0, 1)".into());
        assert_eq!(classify(&e, &none).0, "22023");
        let e = DataFusionError::Plan("auc: value must be numeric, got Utf8".into());
        assert_eq!(classify(&e, &none).0, "42804");
    }
}
