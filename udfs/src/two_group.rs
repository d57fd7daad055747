//! What every two-group aggregate shares: the `(value, is_case)` arguments and which rows
//! count.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{Result, exec_err, plan_err};

use crate::state::passes;

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
    for row in 0..value.len() {
        if value.is_null(row) || label.is_null(row) || !passes(filter, row) {
            continue;
        }
        f(row, value.value(row), label.value(row));
    }
    Ok(())
}
