//! Statement rewrites: the forms PostgreSQL clients' catalog queries use that DataFusion
//! cannot plan, turned into forms it can, with PostgreSQL's result on Discern's catalog.
//! Each rewrite is narrow (it matches one construct) and keeps the statement's meaning; the
//! functions they call are in [`super::pg_compat`].
//!
//! | client sends | runs as |
//! | --- | --- |
//! | `x LIKE p ESCAPE 'c'` (SQLAlchemy's schema names) | `x LIKE like_escape(p, 'c')`, as PostgreSQL itself plans it |
//! | `(SELECT e FROM pg_catalog.t WHERE <correlated>)` (SQLAlchemy's collations, pgjdbc's type info) | `(SELECT first_value(e) …)`: at most one row matches in a catalog |
//! | `(SELECT e FROM pg_attrdef …)`, `(SELECT e FROM pg_sequence …)` | NULL: no column defaults or sequences exist here |
//! | `pg_get_serial_sequence(…)` | NULL: no serial columns |
//! | `(expr).field` | `get_field(expr, 'field')` (pgjdbc's `(_pg_expandarray(…)).n`) |
//! | `'name'::regproc` (on the text, before parsing) | `'name'`: `pg_type.typinput` holds names |
//! | `generate_subscripts(a, d)` in a select list | `unnest(generate_subscripts(a, d))` |
//! | `information_schema._pg_expandarray(a)` (pgjdbc's keys) | `unnest(_pg_expandarray(a))` |
//! | `information_schema.columns` | the same rows with PostgreSQL's type names (`data_type`, `udt_name`) |
//! | `pg_catalog.pg_database` | the connected database's name in place of the internal catalog's |
//! | `SELECT 1` | an `integer` column, as PostgreSQL types a literal that fits |
//! | `ARRAY(subquery)`, `reloptions` (psql's `\d+`) | NULL: no storage options or policies here |

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    AccessExpr, CastKind, DataType as SqlType, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArgumentList, FunctionArguments, Ident, ObjectName, Query, SelectItem, SetExpr,
    Statement, TableAlias, TableFactor, Value, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// The name of the catalog inside; clients see the database they connected to instead.
pub const INTERNAL_CATALOG: &str = "datafusion";

/// Rewrites what DataFusion cannot plan into what it can. Returns None when nothing changed.
pub fn rewrite(statement: &Statement) -> Option<Statement> {
    let mut rewritten = statement.clone();
    let mut visitor = Rewriter { changed: false };
    let _ = rewritten.visit(&mut visitor);
    if let Statement::Query(query) = &mut rewritten {
        visitor.changed |= integer_literals(query);
    }
    visitor.changed.then_some(rewritten)
}

struct Rewriter {
    changed: bool,
}

impl VisitorMut for Rewriter {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Some(new) = rewrite_expr(expr) {
            *expr = new;
            self.changed = true;
        }
        ControlFlow::Continue(())
    }

    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let Some(new) = rewrite_table(factor) {
            *factor = new;
            self.changed = true;
        }
        ControlFlow::Continue(())
    }
}

fn rewrite_expr(expr: &Expr) -> Option<Expr> {
    match expr {
        Expr::Function(f) if name_is(&f.name, "array") => {
            matches!(f.args, FunctionArguments::Subquery(_)).then(null_text_array)
        }
        Expr::Identifier(i) if i.value.eq_ignore_ascii_case("reloptions") => {
            Some(null_text_array())
        }
        Expr::CompoundIdentifier(parts)
            if parts
                .last()
                .is_some_and(|i| i.value.eq_ignore_ascii_case("reloptions")) =>
        {
            Some(null_text_array())
        }
        Expr::Like {
            negated,
            any,
            expr,
            pattern,
            escape_char: Some(escape),
        } => {
            let pattern = Box::new(like_escape(pattern, &escape.value)?);
            Some(Expr::Like {
                negated: *negated,
                any: *any,
                expr: expr.clone(),
                pattern,
                escape_char: None,
            })
        }
        Expr::ILike {
            negated,
            any,
            expr,
            pattern,
            escape_char: Some(escape),
        } => {
            let pattern = Box::new(like_escape(pattern, &escape.value)?);
            Some(Expr::ILike {
                negated: *negated,
                any: *any,
                expr: expr.clone(),
                pattern,
                escape_char: None,
            })
        }
        Expr::Function(f) if name_is(&f.name, "generate_subscripts") => {
            Some(call("unnest", vec![expr.clone()]))
        }
        Expr::Function(f) if name_is(&f.name, "_pg_expandarray") => {
            let mut inner = f.clone();
            inner.name = ObjectName::from(vec![Ident::new("_pg_expandarray")]);
            Some(call("unnest", vec![Expr::Function(inner)]))
        }
        // No sequences and no column defaults: a scalar subquery over pg_sequence or
        // pg_attrdef alone is NULL (SQLAlchemy's identity options and defaults, correlated
        // in ways DataFusion cannot decorrelate: through a regclass lookup, under an outer
        // join).
        Expr::Subquery(query)
            if reads_only(query, "pg_sequence") || reads_only(query, "pg_attrdef") =>
        {
            Some(null_text())
        }
        Expr::Subquery(query) => first_value_subquery(query).map(Expr::Subquery),
        // No serial columns: a NULL the planner can see (SQLAlchemy correlates a subquery on
        // it, which DataFusion cannot decorrelate through a function of outer columns).
        Expr::Function(f) if name_is(&f.name, "pg_get_serial_sequence") => Some(null_text()),
        // `(expr).field` on a composite (pgjdbc's `(_pg_expandarray(…)).n`).
        Expr::CompoundFieldAccess { root, access_chain }
            if matches!(root.as_ref(), Expr::Nested(_) | Expr::Function(_)) =>
        {
            let mut out = (**root).clone();
            for access in access_chain {
                let AccessExpr::Dot(Expr::Identifier(field)) = access else {
                    return None;
                };
                out = call(
                    "get_field",
                    vec![
                        out,
                        Expr::value(Value::SingleQuotedString(field.value.clone())),
                    ],
                );
            }
            Some(out)
        }
        _ => None,
    }
}

/// Rewrites on the statement's text, for what datafusion-pg-catalog's parser would turn
/// into something else first: `'name'::regproc` becomes the text `'name'`, because the
/// catalog's `pg_type.typinput` holds function names (pgjdbc's `getTypeInfo` compares it
/// with `'pg_catalog.array_in'::regproc`), while the parser looks the name up as an oid.
pub fn before_parse(sql: &str) -> std::borrow::Cow<'_, str> {
    const CAST: &str = "'::regproc";
    if !sql.to_ascii_lowercase().contains(CAST) {
        return std::borrow::Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.to_ascii_lowercase().find(CAST) {
        let (head, tail) = rest.split_at(at);
        match head.rfind('\'') {
            Some(open) if !head[open + 1..].contains(['\n', '\\']) => {
                let name = &head[open + 1..];
                out.push_str(&head[..open]);
                out.push('\'');
                out.push_str(name.strip_prefix("pg_catalog.").unwrap_or(name));
                out.push('\'');
            }
            _ => {
                out.push_str(head);
                out.push('\'');
            }
        }
        rest = &tail[CAST.len()..];
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// Whether a query reads nothing but the catalog relation `table`.
fn reads_only(query: &Query, table: &str) -> bool {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return false;
    };
    !select.from.is_empty()
        && select.from.iter().all(|t| {
            t.joins.is_empty()
                && matches!(&t.relation, TableFactor::Table { name, .. } if name_is(name, table))
        })
}

/// `CAST(NULL AS TEXT)`.
fn null_text() -> Expr {
    Expr::Cast {
        kind: CastKind::Cast,
        expr: Box::new(Expr::value(Value::Null)),
        data_type: SqlType::Text,
        array: false,
        format: None,
    }
}

/// `like_escape(pattern, 'c')` for an escape character other than the backslash (the one
/// DataFusion's LIKE knows).
fn like_escape(pattern: &Expr, escape: &Value) -> Option<Expr> {
    let Value::SingleQuotedString(c) = escape else {
        return None;
    };
    (c != "\\").then(|| {
        call(
            "like_escape",
            vec![
                pattern.clone(),
                Expr::value(Value::SingleQuotedString(c.clone())),
            ],
        )
    })
}

/// A correlated scalar subquery over catalog relations whose one column is not an
/// aggregate: DataFusion plans a correlated scalar subquery only when it is aggregated.
/// In a catalog at most one row matches (one default per column, one class per type), so
/// `first_value` of the column is the subquery's value; user queries are left alone.
fn first_value_subquery(query: &Query) -> Option<Box<Query>> {
    if query.order_by.is_some() || query.limit_clause.is_some() || query.with.is_some() {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let [item] = select.projection.as_slice() else {
        return None;
    };
    let (value, alias) = match item {
        SelectItem::UnnamedExpr(e) => (e, None),
        SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.clone())),
        _ => return None,
    };
    let catalog_only = !select.from.is_empty()
        && select.from.iter().all(|t| {
            std::iter::once(&t.relation)
                .chain(t.joins.iter().map(|j| &j.relation))
                .all(is_catalog_relation)
        });
    let grouped = !matches!(
        select.group_by,
        datafusion::sql::sqlparser::ast::GroupByExpr::Expressions(ref e, _) if e.is_empty()
    );
    if !catalog_only || grouped || select.having.is_some() || is_aggregate(value) {
        return None;
    }
    let mut rewritten = query.clone();
    if let SetExpr::Select(select) = rewritten.body.as_mut() {
        let expr = call("first_value", vec![value.clone()]);
        select.projection = vec![match alias {
            Some(alias) => SelectItem::ExprWithAlias { expr, alias },
            None => SelectItem::UnnamedExpr(expr),
        }];
    }
    Some(Box::new(rewritten))
}

fn is_catalog_relation(factor: &TableFactor) -> bool {
    let TableFactor::Table { name, .. } = factor else {
        return false;
    };
    let parts: Vec<String> = name
        .0
        .iter()
        .filter_map(|p| p.as_ident().map(|i| i.value.to_ascii_lowercase()))
        .collect();
    match parts.as_slice() {
        [schema, _] => schema == "pg_catalog" || schema == "information_schema",
        [table] => table.starts_with("pg_"),
        _ => false,
    }
}

fn is_aggregate(expr: &Expr) -> bool {
    const AGGREGATES: [&str; 14] = [
        "count",
        "sum",
        "min",
        "max",
        "avg",
        "array_agg",
        "string_agg",
        "bool_and",
        "bool_or",
        "every",
        "first_value",
        "last_value",
        "json_agg",
        "jsonb_agg",
    ];
    match expr {
        Expr::Function(f) => AGGREGATES.iter().any(|a| name_is(&f.name, a)),
        Expr::Nested(e) | Expr::Cast { expr: e, .. } => is_aggregate(e),
        _ => false,
    }
}

/// `information_schema.columns` and `pg_catalog.pg_database` as PostgreSQL shows them.
fn rewrite_table(factor: &TableFactor) -> Option<TableFactor> {
    let TableFactor::Table {
        name,
        alias,
        args: None,
        ..
    } = factor
    else {
        return None;
    };
    let parts: Vec<String> = name
        .0
        .iter()
        .filter_map(|p| p.as_ident().map(|i| i.value.to_ascii_lowercase()))
        .collect();
    let (sql, default_alias) = match parts.as_slice() {
        [schema, table] if schema == "information_schema" && table == "columns" => {
            (INFORMATION_SCHEMA_COLUMNS, "columns")
        }
        [schema, table] if schema == "pg_catalog" && table == "pg_database" => {
            (PG_DATABASE, "pg_database")
        }
        _ => return None,
    };
    let subquery = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_query())
        .ok()?;
    Some(TableFactor::Derived {
        lateral: false,
        subquery,
        alias: Some(alias.clone().unwrap_or(TableAlias {
            explicit: true,
            name: Ident::new(default_alias),
            columns: vec![],
            at: None,
        })),
        sample: None,
    })
}

/// DataFusion's `information_schema.columns` with PostgreSQL's names for the types
/// (`double precision`/`float8`, `text`/`text`, `bigint`/`int8`) and the database the
/// client connected to as the catalog.
const INFORMATION_SCHEMA_COLUMNS: &str = "SELECT \
    CASE WHEN table_catalog = 'datafusion' THEN current_database() ELSE table_catalog END AS table_catalog, \
    table_schema, table_name, column_name, ordinal_position, column_default, is_nullable, \
    pg_sql_type_name(data_type) AS data_type, character_maximum_length, \
    character_octet_length, numeric_precision, numeric_precision_radix, numeric_scale, \
    datetime_precision, interval_type, \
    CASE WHEN table_catalog = 'datafusion' THEN current_database() ELSE table_catalog END AS udt_catalog, \
    'pg_catalog' AS udt_schema, pg_udt_name(data_type) AS udt_name \
    FROM information_schema.columns";

/// `pg_database` with the connected database in place of the internal catalog (psql's `\l`).
const PG_DATABASE: &str = "SELECT oid, \
    CASE WHEN datname = 'datafusion' THEN current_database() ELSE datname END AS datname, \
    datdba, encoding, datlocprovider, datcollate, datctype, datistemplate, datallowconn, \
    datconnlimit, datlastsysoid, datfrozenxid, datminmxid, dattablespace, daticulocale, \
    daticurules, datacl \
    FROM pg_catalog.pg_database \
    WHERE datname = 'datafusion' OR datname <> current_database()";

/// Integer literals in the outermost select list typed `integer` when they fit, as
/// PostgreSQL types them (node-postgres returns a `bigint` as a string). Only bare literals
/// change: arithmetic stays 64-bit, so nothing can overflow that did not before. The
/// column keeps the name DataFusion gives the literal.
fn integer_literals(query: &mut Query) -> bool {
    let SetExpr::Select(select) = query.body.as_mut() else {
        return false;
    };
    let mut changed = false;
    for item in &mut select.projection {
        let (expr, alias) = match item {
            SelectItem::UnnamedExpr(e) => (e, None),
            SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.clone())),
            _ => continue,
        };
        let Expr::Value(v) = expr else { continue };
        let Value::Number(text, false) = &v.value else {
            continue;
        };
        let Ok(n) = text.parse::<i64>() else { continue };
        if i32::try_from(n).is_err() {
            continue;
        }
        let cast = Expr::Cast {
            kind: CastKind::Cast,
            expr: Box::new(expr.clone()),
            data_type: SqlType::Integer(None),
            array: false,
            format: None,
        };
        let alias = alias.unwrap_or_else(|| Ident::with_quote('"', format!("Int64({n})")));
        *item = SelectItem::ExprWithAlias { expr: cast, alias };
        changed = true;
    }
    changed
}

fn name_is(name: &ObjectName, wanted: &str) -> bool {
    name.0
        .last()
        .and_then(|p| p.as_ident())
        .is_some_and(|i| i.value.eq_ignore_ascii_case(wanted))
}

/// `name(args…)`.
fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

/// `CAST(NULL AS TEXT[])`: a NULL that `||` and `array_to_string` accept.
fn null_text_array() -> Expr {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql("CAST(NULL AS TEXT[])")
        .and_then(|mut p| p.parse_expr())
        .unwrap_or_else(|_| Expr::value(Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    fn rewritten(sql: &str) -> std::result::Result<Option<String>, Box<dyn std::error::Error>> {
        let statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)?
            .pop()
            .ok_or("no statement")?;
        Ok(rewrite(&statement).map(|s| s.to_string()))
    }

    #[test]
    fn like_with_another_escape_uses_like_escape() -> TestResult {
        let sql = rewritten(
            "SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname NOT LIKE 'pg/_' || '%' ESCAPE '/'",
        )?
        .ok_or("not rewritten")?;
        assert!(
            sql.contains("NOT LIKE like_escape('pg/_' || '%', '/')"),
            "{sql}"
        );
        assert!(!sql.contains("ESCAPE"), "{sql}");
        // The backslash is DataFusion's own escape: nothing to do.
        assert_eq!(
            rewritten("SELECT a FROM t WHERE a LIKE 'x\\_%' ESCAPE '\\'")?,
            None
        );
        Ok(())
    }

    #[test]
    fn correlated_catalog_subqueries_are_aggregated_and_user_ones_are_not() -> TestResult {
        let sql = rewritten(
            "SELECT t.oid FROM pg_catalog.pg_type t WHERE t.typrelid = 0 OR \
             (SELECT c.relkind = 'c' FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid)",
        )?
        .ok_or("not rewritten")?;
        assert!(
            sql.contains("(SELECT first_value(c.relkind = 'c') FROM pg_catalog.pg_class c WHERE"),
            "{sql}"
        );
        // Already aggregated, or over the user's tables: left as written.
        assert_eq!(
            rewritten(
                "SELECT (SELECT max(c.oid) FROM pg_catalog.pg_class c WHERE c.oid = t.oid) FROM pg_catalog.pg_type t"
            )?,
            None
        );
        assert_eq!(
            rewritten(
                "SELECT (SELECT m.value FROM measurements m WHERE m.sample_id = s.sample_id) FROM samples s"
            )?,
            None
        );
        Ok(())
    }

    #[test]
    fn subqueries_over_empty_catalogs_are_null() -> TestResult {
        let sql = rewritten(
            "SELECT CASE WHEN a.atthasdef THEN (SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_catalog.pg_attrdef d \
             WHERE d.adrelid = a.attrelid) END FROM pg_catalog.pg_attribute a",
        )?
        .ok_or("not rewritten")?;
        assert!(sql.contains("THEN CAST(NULL AS TEXT) END"), "{sql}");
        Ok(())
    }

    #[test]
    fn set_returning_catalog_functions_are_unnested() -> TestResult {
        let sql = rewritten(
            "SELECT unnest(i.indkey) AS attnum, generate_subscripts(i.indkey, 1) AS ord, \
             (information_schema._pg_expandarray(i.indkey)).n AS n FROM pg_catalog.pg_index i",
        )?
        .ok_or("not rewritten")?;
        assert!(
            sql.contains("unnest(generate_subscripts(i.indkey, 1)) AS ord"),
            "{sql}"
        );
        assert!(
            sql.contains("get_field((unnest(_pg_expandarray(i.indkey))), 'n') AS n"),
            "{sql}"
        );
        Ok(())
    }

    #[test]
    fn catalog_relations_show_postgresql_names() -> TestResult {
        let sql = rewritten(
            "SELECT c.column_name, c.data_type FROM information_schema.columns c WHERE c.table_name = 't'",
        )?
        .ok_or("not rewritten")?;
        assert!(
            sql.contains("pg_sql_type_name(data_type) AS data_type")
                && sql.contains("FROM information_schema.columns) c WHERE"),
            "{sql}"
        );
        let sql =
            rewritten("SELECT datname FROM pg_catalog.pg_database")?.ok_or("not rewritten")?;
        assert!(
            sql.contains("current_database()") && sql.contains("WHERE datname = 'datafusion'"),
            "{sql}"
        );
        Ok(())
    }

    #[test]
    fn bare_integer_literals_become_integers() -> TestResult {
        assert_eq!(
            rewritten("SELECT 1, 2 AS two, 3000000000, 1 + 1")?.as_deref(),
            Some(
                "SELECT CAST(1 AS INTEGER) AS \"Int64(1)\", CAST(2 AS INTEGER) AS two, 3000000000, 1 + 1"
            )
        );
        Ok(())
    }

    #[test]
    fn regproc_literals_become_names_before_parsing() {
        assert_eq!(
            before_parse("SELECT typinput='pg_catalog.array_in'::regproc, 'x'::REGPROC FROM t"),
            "SELECT typinput='array_in', 'x' FROM t"
        );
        assert_eq!(before_parse("SELECT 1"), "SELECT 1");
    }
}
