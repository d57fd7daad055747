//! What every two-group aggregate shares: the `(value, is_case)` arguments and which rows
//! count.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use datafusion::arrow::buffer::{BooleanBuffer, NullBuffer};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{Result, exec_err, plan_err};

/// Checks `(value, is_case)` argument types: numeric value, BOOLEAN label.
pub fn coerce_value_and_label(name: &str, types: &[DataType]) -> Result<Vec<DataType>> {
    let [value, label] = types else {
        return plan_err!(
            "{name}(value, is_case) takes 2 arguments, got {}",
            types.len()
        );
    };
    if !(value.is_numeric() || value.is_null()) {
        return plan_err!("{name}: value must be numeric, got {value}");
    }
    if !matches!(label, DataType::Boolean | DataType::Null) {
        return plan_err!("{name}: is_case must be BOOLEAN (true = case), got {label}");
    }
    Ok(vec![DataType::Float64, DataType::Boolean])
}

/// Calls `f(row, value, is_case)` for every row that counts: value and label non-NULL, value
/// finite, and the filter (if any) true.
pub fn for_each_row(
    values: &[ArrayRef],
    filter: Option<&BooleanArray>,
    mut f: impl FnMut(usize, f64, bool),
) -> Result<()> {
    for_each_labelled(values, filter, |row, x, is_case| {
        if x.is_finite() {
            f(row, x, is_case)
        }
    })
}

/// Calls `f(row, value, is_case)` for every row whose value and label are non-NULL and whose
/// filter (if any) is true, NaN and infinite values included.
pub fn for_each_labelled(
    values: &[ArrayRef],
    filter: Option<&BooleanArray>,
    mut f: impl FnMut(usize, f64, bool),
) -> Result<()> {
    let (Some(value), Some(label)) = (values.first(), values.get(1)) else {
        return exec_err!("expected (value, is_case) arrays, got {}", values.len());
    };
    let value = value.as_primitive::<Float64Type>();
    let label = label.as_boolean();
    // The rows that count, as one bitmap: both arguments valid and the filter true. Rows are
    // then visited from the bitmap's set bits, without a per-row check of three buffers.
    let mut keep: Option<BooleanBuffer> =
        NullBuffer::union(value.nulls(), label.nulls()).map(|n| n.inner().clone());
    if let Some(filter) = filter {
        let passing = match filter.nulls() {
            Some(valid) => filter.values() & valid.inner(),
            None => filter.values().clone(),
        };
        keep = Some(match keep {
            Some(k) => &k & &passing,
            None => passing,
        });
    }
    let (xs, labels) = (value.values(), label.values());
    match keep {
        None => {
            for (row, &x) in xs.iter().enumerate() {
                f(row, x, labels.value(row));
            }
        }
        Some(keep) => {
            for row in keep.set_indices() {
                f(row, xs[row], labels.value(row));
            }
        }
    }
    Ok(())
}
