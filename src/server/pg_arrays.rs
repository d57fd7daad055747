//! PostgreSQL's array and type-name functions that clients' catalog queries call, over
//! Arrow lists: `like_escape`, `generate_subscripts`, `information_schema._pg_expandarray`,
//! and the type names `information_schema.columns` reports (see [`super::pg_rewrite`] for
//! where each is called from). Also the catalog's key columns as PostgreSQL types them:
//! `pg_index.indkey` is an `int2vector`, `pg_constraint.conkey` an `int2[]`, not text.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int16Array, Int32Array, ListArray, RecordBatch, StringArray,
    StructArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Schema};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility, create_udf,
};
use datafusion::prelude::SessionContext;

/// Field metadata naming a list column's PostgreSQL type, for `generate_subscripts`:
/// `int2vector` and `oidvector` subscripts start at 0, arrays' at 1.
const PG_TYPE: &str = "discern.pg_type";

/// Registers the functions on a session.
pub fn register(ctx: &SessionContext) {
    ctx.register_udf(create_udf(
        "like_escape",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(like_escape),
    ));
    ctx.register_udf(ScalarUDF::new_from_impl(Subscripts::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(ExpandArray::new()));
    for (name, sql) in [("pg_sql_type_name", true), ("pg_udt_name", false)] {
        ctx.register_udf(create_udf(
            name,
            vec![DataType::Utf8],
            DataType::Utf8,
            Volatility::Immutable,
            Arc::new(move |args: &[ColumnarValue]| type_names(args, sql)),
        ));
    }
}

/// `like_escape(pattern, escape)`: the pattern rewritten to escape with a backslash, as
/// PostgreSQL plans `LIKE pattern ESCAPE escape`. An empty escape turns escaping off.
fn like_escape(args: &[ColumnarValue]) -> Result<ColumnarValue> {
    let arrays = ColumnarValue::values_to_arrays(args)?;
    let [patterns, escapes] = arrays.as_slice() else {
        return exec_err!("like_escape takes two arguments");
    };
    let out: StringArray = patterns
        .as_string::<i32>()
        .iter()
        .zip(escapes.as_string::<i32>().iter())
        .map(|(p, e)| match (p, e) {
            (Some(p), Some(e)) => to_backslash_escapes(p, e).map(Some),
            _ => Ok(None),
        })
        .collect::<Result<_>>()?;
    let out: ArrayRef = Arc::new(out);
    if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
        return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?));
    }
    Ok(ColumnarValue::Array(out))
}

fn to_backslash_escapes(pattern: &str, escape: &str) -> Result<String> {
    let mut chars = escape.chars();
    let escape = chars.next();
    if chars.next().is_some() {
        return exec_err!("invalid escape string: ESCAPE takes an empty string or one character");
    }
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut pattern = pattern.chars();
    while let Some(c) = pattern.next() {
        if Some(c) == escape {
            let Some(next) = pattern.next() else {
                return exec_err!("LIKE pattern must not end with escape character");
            };
            out.push('\\');
            out.push(next);
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// The list a scalar or array argument holds, as a `ListArray`.
fn as_lists(value: &ColumnarValue, rows: usize) -> Result<ListArray> {
    let array = value.to_array(rows)?;
    match array.data_type() {
        DataType::List(_) => Ok(array.as_list::<i32>().clone()),
        DataType::Null => Ok(ListArray::new_null(
            Arc::new(Field::new_list_field(DataType::Int32, true)),
            array.len(),
        )),
        other => exec_err!("expected an array, got {other}"),
    }
}

/// `generate_subscripts(array, dim)` as a list; [`super::pg_rewrite`] unnests it, which
/// makes it the set-returning function PostgreSQL has. One-dimensional arrays only (a
/// catalog has no other): any `dim` but 1 gives no subscripts.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Subscripts {
    signature: Signature,
}

impl Subscripts {
    fn new() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Subscripts {
    fn name(&self) -> &str {
        "generate_subscripts"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::new_list(DataType::Int32, true))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let [array, dim] = args.args.as_slice() else {
            return exec_err!("generate_subscripts takes an array and a dimension");
        };
        let lower = match args
            .arg_fields
            .first()
            .and_then(|f| f.metadata().get(PG_TYPE))
        {
            Some(t) if t.ends_with("vector") => 0,
            _ => 1,
        };
        let lists = as_lists(array, rows)?;
        let dims = dim.to_array(rows)?;
        let dims = datafusion::arrow::compute::cast(&dims, &DataType::Int64)?;
        let dims = dims.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0i32);
        let mut values = Vec::new();
        for row in 0..rows {
            let n = if lists.is_null(row) || dims.is_null(row) || dims.value(row) != 1 {
                0
            } else {
                lists.value_length(row)
            };
            values.extend((0..n).map(|i| i + lower));
            offsets.push(offsets[row] + n);
        }
        let list = ListArray::try_new(
            Arc::new(Field::new_list_field(DataType::Int32, true)),
            OffsetBuffer::new(offsets.into()),
            Arc::new(Int32Array::from(values)),
            None,
        )?;
        Ok(ColumnarValue::Array(Arc::new(list)))
    }
}

/// `information_schema._pg_expandarray(array)`: each element `x` with its position `n`
/// (from 1), as a list of `{x, n}` that [`super::pg_rewrite`] unnests (pgjdbc's
/// `getPrimaryKeys` and `getIndexInfo`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct ExpandArray {
    signature: Signature,
}

impl ExpandArray {
    fn new() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }

    fn fields(element: &DataType) -> Fields {
        Fields::from(vec![
            Field::new("x", element.clone(), true),
            Field::new("n", DataType::Int32, false),
        ])
    }
}

fn element_type(t: &DataType) -> DataType {
    match t {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            f.data_type().clone()
        }
        _ => DataType::Int32,
    }
}

impl ScalarUDFImpl for ExpandArray {
    fn name(&self) -> &str {
        "_pg_expandarray"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        let element = args.first().map(element_type).unwrap_or(DataType::Int32);
        Ok(DataType::new_list(
            DataType::Struct(Self::fields(&element)),
            true,
        ))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let types: Vec<DataType> = args
            .arg_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        Ok(Arc::new(Field::new(
            self.name(),
            self.return_type(&types)?,
            true,
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let [array] = args.args.as_slice() else {
            return exec_err!("_pg_expandarray takes one array");
        };
        let lists = as_lists(array, rows)?;
        let values = lists.values().clone();
        let offsets = lists.offsets();
        let mut n = vec![0i32; values.len()];
        for row in 0..lists.len() {
            let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
            for (i, slot) in n[start..end].iter_mut().enumerate() {
                *slot = i as i32 + 1;
            }
        }
        let fields = Self::fields(values.data_type());
        let structs = StructArray::try_new(
            fields.clone(),
            vec![values, Arc::new(Int32Array::from(n))],
            None,
        )?;
        let list = ListArray::try_new(
            Arc::new(Field::new_list_field(DataType::Struct(fields), true)),
            offsets.clone(),
            Arc::new(structs),
            lists.nulls().cloned(),
        )?;
        Ok(ColumnarValue::Array(Arc::new(list)))
    }
}

/// `pg_sql_type_name(arrow type)` / `pg_udt_name(arrow type)`: the name PostgreSQL's
/// `information_schema.columns` gives a column's type (`data_type`: `double precision`,
/// `ARRAY`) and its underlying type (`udt_name`: `float8`, `_int8`), for the type the
/// server sends on the wire.
fn type_names(args: &[ColumnarValue], sql: bool) -> Result<ColumnarValue> {
    let [input] = args else {
        return exec_err!("takes one argument");
    };
    let names = input.to_array(1)?;
    let names = datafusion::arrow::compute::cast(&names, &DataType::Utf8)?;
    let out: StringArray = names
        .as_string::<i32>()
        .iter()
        .map(|t| {
            t.map(|t| {
                let udt = DataType::from_str(t)
                    .ok()
                    .and_then(|t| datafusion_postgres::arrow_pg::datatypes::into_pg_type(&t).ok())
                    .map_or_else(|| "text".to_string(), |t| t.name().to_string());
                if sql {
                    sql_type_name(&udt).to_string()
                } else {
                    udt
                }
            })
        })
        .collect();
    super::pg_compat::shaped_like(input, Arc::new(out))
}

/// The SQL-standard name `information_schema` reports for a PostgreSQL type.
fn sql_type_name(udt: &str) -> &str {
    match udt {
        "bool" => "boolean",
        "int2" => "smallint",
        "int4" => "integer",
        "int8" => "bigint",
        "float4" => "real",
        "float8" => "double precision",
        "varchar" => "character varying",
        "bpchar" => "character",
        "timestamp" => "timestamp without time zone",
        "timestamptz" => "timestamp with time zone",
        "time" => "time without time zone",
        "timetz" => "time with time zone",
        "text" | "bytea" | "date" | "interval" | "numeric" | "json" | "jsonb" | "uuid" => udt,
        a if a.starts_with('_') => "ARRAY",
        _ => "USER-DEFINED",
    }
}

/// The key columns of `pg_index` and `pg_constraint` as PostgreSQL types them (the catalog
/// dump holds them as text such as `1 2` or `[1, 2]`): (column, element type, PostgreSQL
/// type).
const KEY_COLUMNS: [(&str, &str, DataType, &str); 6] = [
    ("pg_index", "indkey", DataType::Int16, "int2vector"),
    ("pg_index", "indoption", DataType::Int16, "int2vector"),
    ("pg_index", "indclass", DataType::Int32, "oidvector"),
    ("pg_index", "indcollation", DataType::Int32, "oidvector"),
    ("pg_constraint", "conkey", DataType::Int16, "int2[]"),
    ("pg_constraint", "confkey", DataType::Int16, "int2[]"),
];

/// Columns of PostgreSQL's internal `"char"` type, sent as such (asyncpg 0.30 compares
/// `pg_type.typtype` with the byte `b'b'` before it installs a codec, as SQLAlchemy does for
/// `json`). arrow-pg sends a text column marked `pg.char` as `"char"`.
const CHAR_COLUMNS: [(&str, &str); 1] = [("pg_type", "typtype")];

/// `table`'s rows with its key columns parsed into lists and its `"char"` columns marked;
/// None when it has none of them.
pub fn typed_keys(
    table: &str,
    batches: &[RecordBatch],
    schema: &Schema,
) -> Option<(Arc<Schema>, Vec<RecordBatch>)> {
    let columns: HashMap<&str, (&DataType, &str)> = KEY_COLUMNS
        .iter()
        .filter(|(t, ..)| *t == table)
        .map(|(_, c, e, p)| (*c, (e, *p)))
        .collect();
    let chars: Vec<&str> = CHAR_COLUMNS
        .iter()
        .filter(|(t, _)| *t == table)
        .map(|(_, c)| *c)
        .collect();
    if columns.is_empty() && chars.is_empty() {
        return None;
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match columns.get(f.name().as_str()) {
            Some((element, pg)) if f.data_type() == &DataType::Utf8 => {
                Field::new(f.name(), DataType::new_list((*element).clone(), true), true)
                    .with_metadata(HashMap::from([(PG_TYPE.to_string(), (*pg).to_string())]))
            }
            _ if chars.contains(&f.name().as_str()) => {
                let mut metadata = f.metadata().clone();
                metadata.insert(
                    datafusion_postgres::arrow_pg::datatypes::PG_CHAR_KEY.to_string(),
                    "true".to_string(),
                );
                f.as_ref().clone().with_metadata(metadata)
            }
            _ => f.as_ref().clone(),
        })
        .collect();
    let typed = Arc::new(Schema::new(fields));
    let mut out = Vec::with_capacity(batches.len());
    for batch in batches {
        let mut arrays = Vec::with_capacity(batch.num_columns());
        for (field, column) in typed.fields().iter().zip(batch.columns()) {
            arrays.push(match field.data_type() {
                DataType::List(element) if column.data_type() == &DataType::Utf8 => {
                    parse_lists(column.as_string::<i32>(), element.data_type())?
                }
                _ => column.clone(),
            });
        }
        out.push(RecordBatch::try_new(typed.clone(), arrays).ok()?);
    }
    Some((typed, out))
}

/// Text such as `1 2`, `{1,2}` or `[1, 2]` as a list of integers.
fn parse_lists(text: &StringArray, element: &DataType) -> Option<ArrayRef> {
    let mut offsets = vec![0i32];
    let mut values: Vec<i64> = Vec::new();
    let mut nulls = Vec::with_capacity(text.len());
    for t in text.iter() {
        if let Some(t) = t {
            for part in t
                .split(|c: char| !(c.is_ascii_digit() || c == '-'))
                .filter(|p| !p.is_empty())
            {
                values.push(part.parse().ok()?);
            }
        }
        nulls.push(t.is_some());
        offsets.push(i32::try_from(values.len()).ok()?);
    }
    let values: ArrayRef = match element {
        DataType::Int16 => Arc::new(Int16Array::from_iter_values(
            values.iter().map(|&v| v as i16),
        )),
        _ => Arc::new(Int32Array::from_iter_values(
            values.iter().map(|&v| v as i32),
        )),
    };
    ListArray::try_new(
        Arc::new(Field::new_list_field(element.clone(), true)),
        OffsetBuffer::new(offsets.into()),
        values,
        Some(nulls.into()),
    )
    .ok()
    .map(|l| Arc::new(l) as ArrayRef)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_become_backslashes() -> Result<()> {
        assert_eq!(to_backslash_escapes("pg/_%", "/")?, "pg\\_%");
        assert_eq!(to_backslash_escapes("a\\b//", "/")?, "a\\\\b\\/");
        assert_eq!(to_backslash_escapes("a_b", "")?, "a_b");
        assert!(to_backslash_escapes("ab/", "/").is_err());
        assert!(to_backslash_escapes("ab", "//").is_err());
        Ok(())
    }

    async fn one_column(sql: &str) -> Result<Vec<String>> {
        let ctx = SessionContext::new();
        register(&ctx);
        let batches = ctx.sql(sql).await?.collect().await?;
        let mut out = Vec::new();
        for batch in &batches {
            let column = datafusion::arrow::compute::cast(batch.column(0), &DataType::Utf8)?;
            out.extend(
                column
                    .as_string::<i32>()
                    .iter()
                    .map(|v| v.unwrap_or("NULL").to_string()),
            );
        }
        Ok(out)
    }

    #[tokio::test]
    async fn subscripts_and_expanded_arrays_are_sets_of_rows() -> Result<()> {
        assert_eq!(
            one_column("SELECT unnest(generate_subscripts([10, 20, 30], 1))").await?,
            ["1", "2", "3"]
        );
        assert!(
            one_column("SELECT unnest(generate_subscripts([10, 20], 2))")
                .await?
                .is_empty()
        );
        assert_eq!(
            one_column("SELECT get_field(unnest(_pg_expandarray([7, 9])), 'n')").await?,
            ["1", "2"]
        );
        assert_eq!(
            one_column("SELECT get_field(unnest(_pg_expandarray([7, 9])), 'x')").await?,
            ["7", "9"]
        );
        assert_eq!(
            one_column("SELECT 'pg_x' LIKE like_escape('pg/_%', '/') UNION ALL SELECT 'pgax' LIKE like_escape('pg/_%', '/')")
                .await?,
            ["true", "false"]
        );
        Ok(())
    }

    #[test]
    fn key_columns_parse_into_lists_of_postgresql_type()
    -> std::result::Result<(), Box<dyn std::error::Error>> {
        let schema = Schema::new(vec![
            Field::new("indkey", DataType::Utf8, true),
            Field::new("indrelid", DataType::Int32, true),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema.clone()),
            vec![
                Arc::new(StringArray::from(vec![Some("1 2"), None, Some("[3]")])),
                Arc::new(Int32Array::from(vec![1, 2, 3])),
            ],
        )?;
        let (typed, batches) =
            typed_keys("pg_index", &[batch], &schema).ok_or("pg_index has key columns")?;
        let field = typed.field(0);
        assert_eq!(
            field.data_type(),
            &DataType::new_list(DataType::Int16, true)
        );
        assert_eq!(
            field.metadata().get(PG_TYPE).map(String::as_str),
            Some("int2vector")
        );
        let lists = batches[0].column(0).as_list::<i32>();
        assert_eq!(lists.value_length(0), 2);
        assert!(lists.is_null(1));
        assert_eq!(
            lists
                .value(2)
                .as_primitive::<datafusion::arrow::datatypes::Int16Type>()
                .value(0),
            3
        );
        assert!(typed_keys("pg_class", &[], &schema).is_none());
        Ok(())
    }

    #[test]
    fn type_names_are_postgresql_names() {
        for (udt, sql) in [
            ("float8", "double precision"),
            ("int8", "bigint"),
            ("text", "text"),
            ("_int8", "ARRAY"),
            ("timestamp", "timestamp without time zone"),
        ] {
            assert_eq!(sql_type_name(udt), sql);
        }
    }
}
