//! The PostgreSQL functions and syntax that clients' catalog queries use and that
//! datafusion-pg-catalog does not provide (SQLAlchemy reflection, psql `\d+`, asyncpg's pool).
//! Each answers what PostgreSQL answers for a database with no sequences, no collations
//! beyond the default, no user-defined types and no advisory locks.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::datatypes::Field;
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::expr::Placeholder;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility, create_udf,
};
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, lit};
use datafusion::prelude::SessionContext;

/// Registers the functions on a session.
pub fn register(ctx: &SessionContext) {
    let constant = |name: &str, args: Vec<DataType>, value: ScalarValue| {
        let ty = value.data_type();
        create_udf(
            name,
            args,
            ty,
            Volatility::Stable,
            Arc::new(move |_| Ok(ColumnarValue::Scalar(value.clone()))),
        )
    };
    // No user-defined types or collations: everything is visible.
    ctx.register_udf(constant(
        "pg_type_is_visible",
        vec![DataType::Int64],
        ScalarValue::Boolean(Some(true)),
    ));
    ctx.register_udf(constant(
        "pg_collation_is_visible",
        vec![DataType::Int64],
        ScalarValue::Boolean(Some(true)),
    ));
    // No serial columns.
    ctx.register_udf(constant(
        "pg_get_serial_sequence",
        vec![DataType::Utf8, DataType::Utf8],
        ScalarValue::Utf8(None),
    ));
    // No indexes or triggers to define (psql's \d, SQLAlchemy's get_indexes, pgjdbc's
    // getIndexInfo call these on catalog rows, none of them Discern's).
    for name in ["pg_get_indexdef", "pg_get_triggerdef"] {
        ctx.register_udf(ScalarUDF::new_from_impl(NullText::new(name)));
    }
    // No comments on tables or columns (psql's \d+ asks).
    ctx.register_udf(constant(
        "col_description",
        vec![DataType::Int64, DataType::Int64],
        ScalarValue::Utf8(None),
    ));
    ctx.register_udf(constant(
        "obj_description",
        vec![DataType::Int64, DataType::Utf8],
        ScalarValue::Utf8(None),
    ));
    // No advisory locks to release (asyncpg's pool sends this when it recycles a connection).
    ctx.register_udf(constant(
        "pg_advisory_unlock_all",
        vec![],
        ScalarValue::Boolean(Some(true)),
    ));
    ctx.register_udf(ScalarUDF::new_from_impl(JsonBuildObject::new()));
    super::pg_arrays::register(ctx);
    ctx.register_udf(create_udf(
        "current_setting",
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(current_setting),
    ));
    // set_config(name, value, is_local) answers the value and changes nothing: the settings
    // clients set this way (asyncpg's `jit`) mean nothing here.
    ctx.register_udf(create_udf(
        "set_config",
        vec![DataType::Utf8, DataType::Utf8, DataType::Boolean],
        DataType::Utf8,
        Volatility::Volatile,
        Arc::new(|args: &[ColumnarValue]| match args {
            [_, value, _] => Ok(value.clone()),
            _ => exec_err!("set_config takes three arguments"),
        }),
    ));
    ctx.register_udf(create_udf(
        "to_regtype",
        vec![DataType::Utf8],
        DataType::Int32,
        Volatility::Stable,
        Arc::new(to_regtype),
    ));
    // psql's \dt+ and \l+ print sizes with it.
    ctx.register_udf(create_udf(
        "pg_size_pretty",
        vec![DataType::Int64],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(size_pretty),
    ));
}

/// The bytes of each table's files, by table name.
pub type TableBytes = Arc<std::collections::HashMap<String, i64>>;

/// Counts the bytes of the files behind each listing table (Parquet on disk or in S3).
/// A table whose store does not answer within a few seconds is left out: its size is NULL,
/// and the login that asked goes on.
pub async fn table_bytes(
    ctx: &SessionContext,
    tables: &[(String, Arc<dyn datafusion::catalog::TableProvider>)],
) -> TableBytes {
    use datafusion::datasource::listing::ListingTable;
    use futures::TryStreamExt;
    let state = ctx.state();
    let mut sizes = std::collections::HashMap::new();
    for (name, table) in tables {
        let any: &dyn std::any::Any = table.as_ref();
        let Some(listing) = any.downcast_ref::<ListingTable>() else {
            continue;
        };
        let extension = &listing.options().file_extension;
        let count = async {
            let mut total = 0u64;
            for url in listing.table_paths() {
                let store = ctx.runtime_env().object_store(url)?;
                let files = url
                    .list_all_files(&state, store.as_ref(), extension)
                    .await?;
                total += files
                    .try_fold(0u64, |n, m| async move { Ok(n + m.size) })
                    .await?;
            }
            Result::<u64>::Ok(total)
        };
        if let Ok(Ok(total)) = tokio::time::timeout(std::time::Duration::from_secs(5), count).await
        {
            sizes.insert(name.clone(), i64::try_from(total).unwrap_or(i64::MAX));
        }
    }
    Arc::new(sizes)
}

/// `pg_table_size`, `pg_relation_size` and `pg_total_relation_size` of a table's oid: the
/// bytes of its files (a Parquet table has no indexes or TOAST, so the three agree); NULL
/// for any other relation, as PostgreSQL answers for an oid it does not know.
pub async fn register_sizes(ctx: &SessionContext, bytes: &TableBytes) -> Result<()> {
    let batches = ctx
        .sql(
            "SELECT c.oid, c.relname FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public'",
        )
        .await?
        .collect()
        .await?;
    let mut by_oid = std::collections::HashMap::new();
    for batch in &batches {
        let oids = datafusion::arrow::compute::cast(batch.column(0), &DataType::Int64)?;
        let oids = datafusion::common::cast::as_int64_array(&oids)?;
        let names = datafusion::arrow::compute::cast(batch.column(1), &DataType::Utf8)?;
        let names = datafusion::common::cast::as_string_array(&names)?;
        for (oid, name) in oids.iter().zip(names.iter()) {
            if let (Some(oid), Some(size)) = (oid, name.and_then(|n| bytes.get(n))) {
                by_oid.insert(oid, *size);
            }
        }
    }
    let by_oid = Arc::new(by_oid);
    for name in [
        "pg_table_size",
        "pg_relation_size",
        "pg_total_relation_size",
    ] {
        let by_oid = by_oid.clone();
        ctx.register_udf(create_udf(
            name,
            vec![DataType::Int64],
            DataType::Int64,
            Volatility::Stable,
            Arc::new(move |args: &[ColumnarValue]| {
                let [oid] = args else {
                    return exec_err!("takes one argument");
                };
                let oids = oid.to_array(1)?;
                let oids = datafusion::common::cast::as_int64_array(&oids)?;
                let out: datafusion::arrow::array::Int64Array = oids
                    .iter()
                    .map(|o| o.and_then(|o| by_oid.get(&o).copied()))
                    .collect();
                shaped_like(oid, Arc::new(out))
            }),
        ));
    }
    Ok(())
}

/// `pg_size_pretty(bigint)`.
fn size_pretty(args: &[ColumnarValue]) -> Result<ColumnarValue> {
    let [input] = args else {
        return exec_err!("pg_size_pretty takes one argument");
    };
    let arrays = ColumnarValue::values_to_arrays(std::slice::from_ref(input))?;
    let Some(sizes) = arrays.first().and_then(|a| {
        a.as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
    }) else {
        return exec_err!("pg_size_pretty takes a bigint");
    };
    let out: datafusion::arrow::array::StringArray =
        sizes.iter().map(|s| s.map(pretty_size)).collect();
    shaped_like(input, Arc::new(out))
}

/// A byte count as PostgreSQL's `pg_size_pretty` writes it (src/backend/utils/adt/dbsize.c):
/// bytes below 10 kB, then the largest unit under which the number stays below 20,480 halves,
/// rounded half away from zero.
fn pretty_size(bytes: i64) -> String {
    // (name, limit in this unit, rounded from halves, bits of the unit)
    const UNITS: [(&str, u64, bool, u32); 6] = [
        ("bytes", 10 * 1024, false, 0),
        ("kB", 20 * 1024 - 1, true, 10),
        ("MB", 20 * 1024 - 1, true, 20),
        ("GB", 20 * 1024 - 1, true, 30),
        ("TB", 20 * 1024 - 1, true, 40),
        ("PB", 20 * 1024 - 1, true, 50),
    ];
    let half_rounded = |x: i64| (x + if x < 0 { -1 } else { 1 }) / 2;
    let mut size = bytes;
    for (i, &(name, limit, round, unit_bits)) in UNITS.iter().enumerate() {
        let last = i + 1 == UNITS.len();
        if last || size.unsigned_abs() < limit {
            let shown = if round { half_rounded(size) } else { size };
            return format!("{shown} {name}");
        }
        let (_, _, next_round, next_bits) = UNITS[i + 1];
        let bits = next_bits - unit_bits - u32::from(next_round) + u32::from(round);
        size /= 1i64 << bits;
    }
    format!("{bytes} bytes")
}

/// `current_setting(name)` for the settings clients read (asyncpg, Grafana, JDBC).
fn current_setting(args: &[ColumnarValue]) -> Result<ColumnarValue> {
    let [name] = args else {
        return exec_err!("current_setting takes one argument");
    };
    let names = name.to_array(1)?;
    let names = datafusion::common::cast::as_string_array(&names)?;
    let mut out = StringBuilder::new();
    for n in names.iter() {
        match n {
            None => out.append_null(),
            Some(n) => match setting_value(n) {
                Some(v) => out.append_value(v),
                None => {
                    return exec_err!("unrecognized configuration parameter \"{n}\"");
                }
            },
        }
    }
    let out = out.finish();
    shaped_like(name, Arc::new(out))
}

/// The settings [`setting_value`] answers, as `pg_settings` lists them.
const SETTINGS: [&str; 17] = [
    "jit",
    "server_version",
    "server_version_num",
    "search_path",
    "server_encoding",
    "client_encoding",
    "standard_conforming_strings",
    "integer_datetimes",
    "is_superuser",
    "default_transaction_read_only",
    "transaction_read_only",
    "max_index_keys",
    "max_identifier_length",
    "DateStyle",
    "TimeZone",
    "lc_collate",
    "lc_ctype",
];

/// `pg_settings` with a row for each of [`SETTINGS`] (pgjdbc reads `max_index_keys` from
/// it before `getImportedKeys`), in the schema of the table it replaces.
fn pg_settings(
    schema: &datafusion::arrow::datatypes::SchemaRef,
) -> Result<datafusion::arrow::array::RecordBatch> {
    use datafusion::arrow::array::{StringArray, new_null_array};
    let n = SETTINGS.len();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let text = |f: &dyn Fn(&str) -> Option<String>| -> ArrayRef {
            Arc::new(StringArray::from_iter(SETTINGS.iter().map(|s| f(s))))
        };
        let column: ArrayRef = match (field.name().as_str(), field.data_type()) {
            ("name", DataType::Utf8) => text(&|s| Some(s.to_string())),
            ("setting" | "reset_val", DataType::Utf8) => {
                text(&|s| setting_value(s).map(str::to_string))
            }
            ("source", DataType::Utf8) => text(&|_| Some("default".into())),
            ("context", DataType::Utf8) => text(&|_| Some("internal".into())),
            ("vartype", DataType::Utf8) => text(&|_| Some("string".into())),
            (_, DataType::Utf8) if !field.is_nullable() => text(&|_| Some(String::new())),
            (_, DataType::Boolean) if !field.is_nullable() => {
                Arc::new(datafusion::arrow::array::BooleanArray::from(vec![false; n]))
            }
            (_, t) => new_null_array(t, n),
        };
        columns.push(column);
    }
    Ok(datafusion::arrow::array::RecordBatch::try_new(
        schema.clone(),
        columns,
    )?)
}

fn setting_value(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "jit" => "off",
        "server_version" => super::SERVER_VERSION,
        "server_version_num" => super::SERVER_VERSION_NUM,
        "search_path" => "\"$user\", public",
        "server_encoding" | "client_encoding" => "UTF8",
        "standard_conforming_strings" | "integer_datetimes" => "on",
        "is_superuser" => "off",
        "default_transaction_read_only" | "transaction_read_only" => "on",
        "max_index_keys" => "32",
        "max_identifier_length" => "63",
        "datestyle" => "ISO, MDY",
        "timezone" => "Etc/UTC",
        "lc_collate" | "lc_ctype" => "C",
        _ => return None,
    })
}

/// `to_regtype(name)`: the OID of a built-in type, NULL for anything else (psycopg probes
/// for `hstore` with it).
fn to_regtype(args: &[ColumnarValue]) -> Result<ColumnarValue> {
    let [name] = args else {
        return exec_err!("to_regtype takes one argument");
    };
    let names = name.to_array(1)?;
    let names = datafusion::common::cast::as_string_array(&names)?;
    let oids: datafusion::arrow::array::Int32Array =
        names.iter().map(|n| n.and_then(builtin_type_oid)).collect();
    shaped_like(name, Arc::new(oids))
}

/// A function's result, a scalar when its argument was one.
pub(super) fn shaped_like(input: &ColumnarValue, out: ArrayRef) -> Result<ColumnarValue> {
    Ok(match input {
        ColumnarValue::Scalar(_) => ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?),
        ColumnarValue::Array(_) => ColumnarValue::Array(out),
    })
}

fn builtin_type_oid(name: &str) -> Option<i32> {
    let name = name
        .trim()
        .trim_start_matches("pg_catalog.")
        .to_ascii_lowercase();
    Some(match name.as_str() {
        "bool" | "boolean" => 16,
        "bytea" => 17,
        "int8" | "bigint" => 20,
        "int2" | "smallint" => 21,
        "int4" | "integer" | "int" => 23,
        "text" => 25,
        "oid" => 26,
        "json" => 114,
        "float4" | "real" => 700,
        "float8" | "double precision" => 701,
        "varchar" | "character varying" => 1043,
        "date" => 1082,
        "timestamp" | "timestamp without time zone" => 1114,
        "timestamptz" | "timestamp with time zone" => 1184,
        "numeric" | "decimal" => 1700,
        "uuid" => 2950,
        "jsonb" => 3802,
        _ => return None,
    })
}

/// A function of any arguments that answers a NULL text: what PostgreSQL answers for
/// objects that do not exist here.
#[derive(Debug, PartialEq, Eq, Hash)]
struct NullText {
    name: &'static str,
    signature: Signature,
}

impl NullText {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            signature: Signature::variadic_any(Volatility::Stable),
        }
    }
}

impl ScalarUDFImpl for NullText {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)))
    }
}

/// `json_build_object(key, value, …)`: a JSON object as text.
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonBuildObject {
    signature: Signature,
}

impl JsonBuildObject {
    fn new() -> Self {
        Self {
            signature: Signature::one_of(
                vec![TypeSignature::VariadicAny, TypeSignature::Nullary],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for JsonBuildObject {
    fn name(&self) -> &str {
        "json_build_object"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if !args.args.len().is_multiple_of(2) {
            return exec_err!(
                "json_build_object: the argument list must alternate keys and values"
            );
        }
        let rows = args.number_rows;
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<Result<_>>()?;
        let mut out = StringBuilder::with_capacity(rows, rows * 16);
        for row in 0..rows {
            let mut object = serde_json::Map::new();
            for pair in arrays.chunks(2) {
                let key = ScalarValue::try_from_array(&pair[0], row)?;
                if key.is_null() {
                    return exec_err!("json_build_object: a key is NULL");
                }
                let key = match key {
                    ScalarValue::Utf8(Some(s))
                    | ScalarValue::LargeUtf8(Some(s))
                    | ScalarValue::Utf8View(Some(s)) => s,
                    other => other.to_string(),
                };
                let value = json_value(&pair[1], row)?;
                object.insert(key, value);
            }
            out.append_value(serde_json::Value::Object(object).to_string());
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

fn json_value(array: &ArrayRef, row: usize) -> Result<serde_json::Value> {
    let value = ScalarValue::try_from_array(array, row)?;
    // (A NULL literal is a NullArray, whose is_null() is false: ask the scalar.)
    if value.is_null() {
        return Ok(serde_json::Value::Null);
    }
    Ok(match value {
        ScalarValue::Boolean(Some(b)) => serde_json::Value::Bool(b),
        ScalarValue::Int8(Some(v)) => v.into(),
        ScalarValue::Int16(Some(v)) => v.into(),
        ScalarValue::Int32(Some(v)) => v.into(),
        ScalarValue::Int64(Some(v)) => v.into(),
        ScalarValue::UInt8(Some(v)) => v.into(),
        ScalarValue::UInt16(Some(v)) => v.into(),
        ScalarValue::UInt32(Some(v)) => v.into(),
        ScalarValue::UInt64(Some(v)) => v.into(),
        ScalarValue::Float32(Some(v)) => serde_json::Number::from_f64(f64::from(v))
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        ScalarValue::Float64(Some(v)) => serde_json::Number::from_f64(v)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => serde_json::Value::String(s),
        other => serde_json::Value::String(other.to_string()),
    })
}

/// One of Discern's functions as `pg_proc` shows it.
struct ProcRow {
    name: String,
    kind: &'static str,
    arguments: String,
    result: String,
}

/// Discern's statistical functions, for `pg_proc`, `\df` and `pg_get_function_*`.
fn discern_functions() -> Vec<ProcRow> {
    let candidates: Vec<Vec<DataType>> = vec![
        vec![DataType::Float64, DataType::Boolean],
        vec![DataType::Float64],
        vec![DataType::Float64, DataType::Boolean, DataType::Float64],
        vec![DataType::Float64, DataType::Boolean, DataType::Utf8],
        vec![DataType::Float64, DataType::Float64],
        vec![
            DataType::Int64,
            DataType::Int64,
            DataType::Int64,
            DataType::Int64,
        ],
        vec![DataType::Boolean, DataType::Boolean],
        vec![DataType::Boolean, DataType::Boolean, DataType::Int64],
        vec![
            DataType::Float64,
            DataType::Boolean,
            DataType::Float64,
            DataType::Float64,
        ],
        vec![DataType::Boolean, DataType::Float64],
        vec![DataType::Boolean, DataType::Int64, DataType::Float64],
    ];
    let pg_name = |t: &DataType| match t {
        DataType::Float64 => "double precision".to_string(),
        DataType::Boolean => "boolean".to_string(),
        DataType::Int64 => "bigint".to_string(),
        DataType::Utf8 => "text".to_string(),
        DataType::Struct(_) => "record".to_string(),
        DataType::List(_) | DataType::LargeList(_) => "record[]".to_string(),
        other => other.to_string().to_lowercase(),
    };
    let arguments = |doc: Option<&datafusion::logical_expr::Documentation>| {
        doc.and_then(|d| d.arguments.as_ref())
            .map(|args| {
                args.iter()
                    .map(|(name, _)| name.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    let mut rows = Vec::new();
    for f in discern_udfs::all_scalar_functions() {
        let result = candidates
            .iter()
            .find_map(|c| f.return_type(c).ok())
            .map_or_else(|| "double precision".to_string(), |t| pg_name(&t));
        rows.push(ProcRow {
            name: f.name().to_string(),
            kind: "f",
            arguments: arguments(f.documentation()),
            result,
        });
    }
    for f in discern_udfs::all_aggregate_functions() {
        let result = candidates
            .iter()
            .find_map(|c| f.return_type(c).ok())
            .map_or_else(|| "record".to_string(), |t| pg_name(&t));
        rows.push(ProcRow {
            name: f.name().to_string(),
            kind: "a",
            arguments: arguments(f.documentation()),
            result,
        });
    }
    for f in discern_udfs::all_window_functions() {
        rows.push(ProcRow {
            name: f.name().to_string(),
            kind: "w",
            arguments: arguments(f.documentation()),
            result: "double precision".to_string(),
        });
    }
    rows
}

/// Adds Discern's functions to `pg_catalog.pg_proc` (a dump of PostgreSQL's own catalog,
/// which knows nothing of them), types the key columns of `pg_index` and `pg_constraint`,
/// and registers `pg_get_function_result`,
/// `pg_get_function_arguments` and `pg_function_is_visible`, so that psql's `\df auc*`
/// and BI tools' function browsers list them.
pub async fn install_function_catalog(ctx: &SessionContext) -> Result<()> {
    use datafusion::arrow::array::{
        BooleanArray, Float32Array, Int16Array, Int32Array, RecordBatch, StringArray,
        new_null_array,
    };
    use datafusion::catalog::MemTable;

    let namespace = ctx
        .sql("SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = 'public'")
        .await?
        .collect()
        .await?;
    let public_oid = namespace
        .first()
        .filter(|b| b.num_rows() > 0)
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<Int32Array>()
                .map(|a| a.value(0))
        })
        .unwrap_or(2200);
    let existing = ctx.sql("SELECT * FROM pg_catalog.pg_proc").await?;
    let schema = Arc::new(existing.schema().as_arrow().clone());
    let mut batches = existing.collect().await?;
    let functions = discern_functions();
    let first_oid = 900_000;
    let n = functions.len();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let column: ArrayRef = match field.name().as_str() {
            "oid" => Arc::new(Int32Array::from_iter_values(
                (0..n).map(|i| first_oid + i as i32),
            )),
            "proname" => Arc::new(StringArray::from_iter_values(
                functions.iter().map(|f| f.name.as_str()),
            )),
            "pronamespace" => Arc::new(Int32Array::from(vec![public_oid; n])),
            "proowner" => Arc::new(Int32Array::from(vec![10; n])),
            "prolang" => Arc::new(Int32Array::from(vec![12; n])),
            "procost" => Arc::new(Float32Array::from(vec![1.0; n])),
            "prorows" => Arc::new(Float32Array::from(vec![0.0; n])),
            "provariadic" | "prorettype" => Arc::new(Int32Array::from(vec![0; n])),
            "prokind" => Arc::new(StringArray::from_iter_values(
                functions.iter().map(|f| f.kind),
            )),
            "prosecdef" | "proleakproof" | "proretset" => {
                Arc::new(BooleanArray::from(vec![false; n]))
            }
            "proisstrict" => Arc::new(BooleanArray::from(vec![false; n])),
            "provolatile" => Arc::new(StringArray::from(vec!["i"; n])),
            "proparallel" => Arc::new(StringArray::from(vec!["s"; n])),
            "pronargs" | "pronargdefaults" => Arc::new(Int16Array::from(vec![0; n])),
            "prosrc" => Arc::new(StringArray::from_iter_values(
                functions.iter().map(|f| f.name.as_str()),
            )),
            "prosupport" => Arc::new(StringArray::from(vec!["-"; n])),
            _ if field.is_nullable() => new_null_array(field.data_type(), n),
            _ => match field.data_type() {
                DataType::Utf8 => Arc::new(StringArray::from(vec![""; n])),
                DataType::Int32 => Arc::new(Int32Array::from(vec![0; n])),
                DataType::Int16 => Arc::new(Int16Array::from(vec![0; n])),
                DataType::Float32 => Arc::new(Float32Array::from(vec![0.0; n])),
                DataType::Boolean => Arc::new(BooleanArray::from(vec![false; n])),
                _ => return Ok(()),
            },
        };
        if column.data_type() != field.data_type() {
            // The dump's types changed under us: leave pg_proc as it is rather than fail.
            return Ok(());
        }
        columns.push(column);
    }
    batches.push(RecordBatch::try_new(schema.clone(), columns)?);
    let mut tables: std::collections::HashMap<String, Arc<dyn datafusion::catalog::TableProvider>> =
        std::collections::HashMap::new();
    tables.insert(
        "pg_proc".into(),
        Arc::new(MemTable::try_new(schema, vec![batches])?),
    );
    let settings = ctx.sql("SELECT * FROM pg_catalog.pg_settings").await?;
    let settings_schema = Arc::new(settings.schema().as_arrow().clone());
    tables.insert(
        "pg_settings".into(),
        Arc::new(MemTable::try_new(
            settings_schema.clone(),
            vec![vec![pg_settings(&settings_schema)?]],
        )?),
    );
    // pg_index and pg_constraint with their key columns as lists (SQLAlchemy unnests them),
    // pg_type with its "char" columns sent as "char".
    for name in ["pg_index", "pg_constraint", "pg_type"] {
        let existing = ctx.sql(&format!("SELECT * FROM pg_catalog.{name}")).await?;
        let schema = existing.schema().as_arrow().clone();
        let batches = existing.collect().await?;
        if let Some((typed, batches)) = super::pg_arrays::typed_keys(name, &batches, &schema) {
            tables.insert(
                name.into(),
                Arc::new(MemTable::try_new(typed, vec![batches])?),
            );
        }
    }
    let pg_catalog = ctx
        .catalog("datafusion")
        .and_then(|c| c.schema("pg_catalog"))
        .ok_or_else(|| datafusion::error::DataFusionError::Plan("pg_catalog is missing".into()))?;
    let wrapped = Arc::new(WithProc {
        inner: pg_catalog,
        tables,
    });
    ctx.catalog("datafusion")
        .ok_or_else(|| datafusion::error::DataFusionError::Plan("no datafusion catalog".into()))?
        .register_schema("pg_catalog", wrapped)?;

    let by_oid: std::collections::HashMap<i32, (String, String)> = functions
        .iter()
        .enumerate()
        .map(|(i, f)| {
            (
                first_oid + i as i32,
                (f.result.clone(), f.arguments.clone()),
            )
        })
        .collect();
    let by_oid = Arc::new(by_oid);
    for (name, pick) in [
        ("pg_get_function_result", 0usize),
        ("pg_get_function_arguments", 1),
    ] {
        let map = by_oid.clone();
        ctx.register_udf(create_udf(
            name,
            vec![DataType::Int32],
            DataType::Utf8,
            Volatility::Stable,
            Arc::new(move |args: &[ColumnarValue]| {
                let [oid] = args else {
                    return exec_err!("takes one argument");
                };
                let oids = oid.to_array(1)?;
                let oids = datafusion::common::cast::as_int32_array(&oids)?;
                let out: StringArray = oids
                    .iter()
                    .map(|o| {
                        o.and_then(|o| map.get(&o))
                            .map(|(r, a)| if pick == 0 { r.clone() } else { a.clone() })
                    })
                    .collect();
                shaped_like(oid, Arc::new(out))
            }),
        ));
    }
    let constant_true = create_udf(
        "pg_function_is_visible",
        vec![DataType::Int32],
        DataType::Boolean,
        Volatility::Stable,
        Arc::new(|_| Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))))),
    );
    ctx.register_udf(constant_true);
    Ok(())
}

/// pg_catalog with Discern's functions in `pg_proc` and PostgreSQL-typed key columns in
/// `pg_index` and `pg_constraint`.
#[derive(Debug)]
struct WithProc {
    inner: Arc<dyn datafusion::catalog::SchemaProvider>,
    tables: std::collections::HashMap<String, Arc<dyn datafusion::catalog::TableProvider>>,
}

#[async_trait::async_trait]
impl datafusion::catalog::SchemaProvider for WithProc {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(
        &self,
        name: &str,
    ) -> Result<Option<Arc<dyn datafusion::catalog::TableProvider>>> {
        if let Some(table) = self.tables.get(name) {
            return Ok(Some(table.clone()));
        }
        self.inner.table(name).await
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

/// Types `LIMIT $n` and `OFFSET $n` parameters `bigint`, as PostgreSQL does (DataFusion
/// leaves them untyped, so clients were told to send text).
pub fn type_limit_placeholders(plan: LogicalPlan) -> LogicalPlan {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    let bigint = |expr: Box<Expr>| -> Result<Box<Expr>> {
        let typed = expr.transform(|e| match e {
            Expr::Placeholder(p) if p.field.is_none() => {
                let field = Arc::new(Field::new("", DataType::Int64, true));
                Ok(Transformed::yes(Expr::Placeholder(
                    Placeholder::new_with_field(p.id, Some(field)),
                )))
            }
            other => Ok(Transformed::no(other)),
        })?;
        Ok(Box::new(typed.data))
    };
    let fallback = plan.clone();
    plan.transform_up_with_subqueries(|node| match node {
        LogicalPlan::Limit(mut limit) => {
            limit.skip = limit.skip.map(bigint).transpose()?;
            limit.fetch = limit.fetch.map(bigint).transpose()?;
            Ok(Transformed::yes(LogicalPlan::Limit(limit)))
        }
        other => Ok(Transformed::no(other)),
    })
    .map(|t| t.data)
    .unwrap_or(fallback)
}

/// datafusion-pg-catalog replaces correlated subqueries in a SELECT list with NULL, and any
/// `$n` inside them vanishes from the plan, while the client still binds every parameter
/// (SQLAlchemy's `get_columns` with the psycopg dialect does this). Parameters are bound by
/// position, so each vanished one is put back, typed as text, in a filter that is always
/// true; the result is unchanged and the parameter list lines up again.
pub fn keep_placeholders(sql: &str, plan: LogicalPlan) -> LogicalPlan {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else {
        return plan;
    };
    let in_sql: std::collections::BTreeSet<usize> = tokens
        .iter()
        .filter_map(|t| match t {
            Token::Placeholder(p) => p.strip_prefix('$')?.parse().ok(),
            _ => None,
        })
        .collect();
    let Ok(in_plan) = plan.get_parameter_types() else {
        return plan;
    };
    let missing: Vec<usize> = in_sql
        .into_iter()
        .filter(|n| !in_plan.contains_key(&format!("${n}")))
        .collect();
    if missing.is_empty()
        || !matches!(
            plan,
            LogicalPlan::Projection(_)
                | LogicalPlan::Sort(_)
                | LogicalPlan::Filter(_)
                | LogicalPlan::Limit(_)
                | LogicalPlan::Aggregate(_)
                | LogicalPlan::Distinct(_)
                | LogicalPlan::Union(_)
                | LogicalPlan::SubqueryAlias(_)
        )
    {
        return plan;
    }
    let mut predicate = lit(true);
    for n in missing {
        let field = Arc::new(Field::new("", DataType::Utf8, true));
        let p = Expr::Placeholder(Placeholder::new_with_field(format!("${n}"), Some(field)));
        predicate = predicate.or(p.is_null());
    }
    let fallback = plan.clone();
    LogicalPlanBuilder::from(plan)
        .filter(predicate)
        .and_then(|b| b.build())
        .unwrap_or(fallback)
}

#[cfg(test)]
mod tests {
    use super::*;
    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn sizes_print_as_postgresql_prints_them() {
        // What PostgreSQL 15 answers to SELECT pg_size_pretty(x::bigint), by its algorithm.
        for (bytes, text) in [
            (0, "0 bytes"),
            (10_239, "10239 bytes"),
            (10_240, "10 kB"),
            (1_000_000, "977 kB"),
            (10_485_247, "10239 kB"),
            (20_970_496, "20 MB"),
            (1_073_741_824, "1024 MB"),
            (10_737_418_240, "10 GB"),
            (-10_240, "-10 kB"),
            (i64::MAX, "8192 PB"),
        ] {
            assert_eq!(pretty_size(bytes), text, "{bytes}");
        }
    }

    #[tokio::test]
    async fn json_build_object_builds_json() -> TestResult {
        let ctx = SessionContext::new();
        register(&ctx);
        let batches = ctx
            .sql("SELECT json_build_object('a', 1, 'b', 'x', 'c', NULL, 'd', true) AS j")
            .await?
            .collect()
            .await?;
        let j = batches.first().ok_or("no batch")?.column(0);
        let j = datafusion::common::cast::as_string_array(j)?;
        assert_eq!(j.value(0), r#"{"a":1,"b":"x","c":null,"d":true}"#);
        Ok(())
    }
}
