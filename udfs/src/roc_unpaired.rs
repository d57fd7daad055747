//! `roc_test_unpaired(value, is_case, in_second)`: DeLong's test that two ROC curves built on
//! independent samples have the same AUC (two labs, two cohorts, two assays on different
//! people). Rows with `in_second` false form the first curve, true the second. The state keeps
//! each curve's cases and controls as `ranks` does (value tallies), so it merges exactly in any
//! order and spills like the other rank statistics. Rows with a NULL, NaN or infinite value
//! or a NULL label or curve are skipped.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use datafusion::arrow::datatypes::{DataType, FieldRef, Float64Type};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, GroupsAccumulator, Signature,
    Volatility,
};

use crate::docs::{SECTION, doc};
use crate::kernels::distributions::t_sf;
use crate::kernels::ranks::rank_sums_and_delong;
use crate::ranks::GroupValues;
use crate::state::{
    Evaluate, GroupState, StateAccumulator, StateGroupsAccumulator, float_fields, float_struct,
    passes,
};

const FIELDS: [&str; 5] = ["auc_a", "auc_b", "d", "df", "p"];

/// The UDAF.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct UnpairedRocTest {
    signature: Signature,
}

impl Default for UnpairedRocTest {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// The SQL name.
pub const NAME: &str = "roc_test_unpaired";

/// Every function of the family, for registration.
pub fn all() -> Vec<Arc<AggregateUDF>> {
    vec![Arc::new(AggregateUDF::from(UnpairedRocTest::default()))]
}

fn documentation() -> &'static Documentation {
    static DOC: OnceLock<Documentation> = OnceLock::new();
    DOC.get_or_init(|| {
        doc(
            SECTION,
            "DeLong's test for two ROC curves on independent samples, as R's \
             pROC::roc.test(roc_a, roc_b, method = 'delong', paired = FALSE): with each \
             curve's AUC and DeLong variance V (as auc_ci), d = (auc_a − auc_b) / √(V_a + \
             V_b) on Welch-Satterthwaite degrees of freedom df = (V_a + V_b)² / (V_a² / (n_a \
             − 1) + V_b² / (n_b − 1)) (n the curve's cases and controls), two-sided p = 2 · \
             P(T_df > |d|). Curve a is the rows with in_second false, curve b those with it \
             true. No auto-flip (direction '<' in pROC). All NULL when a curve lacks cases \
             or controls; d, df and p NULL when a group has a single value (no variance) or \
             both variances are 0. For two markers measured on the same samples use \
             roc_test (paired).",
            "roc_test_unpaired(value, is_case, in_second)",
            "SELECT roc_test_unpaired(m.value, s.is_case, s.site = 'berlin')['p'] AS p\nFROM measurements m JOIN samples s USING (sample_id)\nWHERE m.biomarker = 'zinc';",
        )
        .with_argument(
            "value",
            "The measurement (numeric). NULL, NaN and infinite values are skipped.",
        )
        .with_argument("is_case", "BOOLEAN label: true for cases, false for controls.")
        .with_argument(
            "in_second",
            "BOOLEAN: which curve the row belongs to (false: a, true: b).",
        )
        .build()
    })
}

/// The two curves of one group.
#[derive(Debug, Default, Clone)]
pub struct TwoCurves {
    a: GroupValues,
    b: GroupValues,
}

impl GroupState for TwoCurves {
    fn update(
        groups: &mut [Self],
        values: &[ArrayRef],
        filter: Option<&BooleanArray>,
        group: impl Fn(usize) -> usize,
    ) -> Result<isize> {
        let [value, label, second] = values else {
            return exec_err!("{NAME}: expected (value, is_case, in_second)");
        };
        let (value, label, second) = (
            value.as_primitive::<Float64Type>(),
            label.as_boolean(),
            second.as_boolean(),
        );
        let mut grew = 0isize;
        for row in 0..value.len() {
            if value.is_null(row)
                || label.is_null(row)
                || second.is_null(row)
                || !passes(filter, row)
            {
                continue;
            }
            let x = value.value(row);
            if !x.is_finite() {
                continue;
            }
            let g = &mut groups[group(row)];
            let curve = if second.value(row) {
                &mut g.b
            } else {
                &mut g.a
            };
            grew += curve.push(x, label.value(row));
        }
        Ok(grew)
    }

    fn merge(
        groups: &mut [Self],
        states: &[ArrayRef],
        group: impl Fn(usize) -> usize,
    ) -> Result<isize> {
        if states.len() != 8 {
            return exec_err!("{NAME}: expected 8 state arrays, got {}", states.len());
        }
        let a = GroupValues::state_lists(&states[..4])?;
        let b = GroupValues::state_lists(&states[4..])?;
        let mut grew = 0isize;
        for row in 0..a[0].len() {
            let g = &mut groups[group(row)];
            let before = g.heap_bytes() as isize;
            g.a.merge_row(&a, row)?;
            g.b.merge_row(&b, row)?;
            grew += g.heap_bytes() as isize - before;
        }
        Ok(grew)
    }

    fn to_arrays(groups: &[Self]) -> Result<Vec<ArrayRef>> {
        let mut arrays = GroupValues::arrays(groups.iter().map(|g| &g.a));
        arrays.extend(GroupValues::arrays(groups.iter().map(|g| &g.b)));
        Ok(arrays)
    }

    fn heap_bytes(&self) -> usize {
        self.a.bytes() + self.b.bytes()
    }
}

/// (AUC, DeLong variance, values) of one compacted curve; None without cases or controls.
fn curve(g: &GroupValues) -> Option<(f64, Option<f64>, f64)> {
    let (sums, variance) = rank_sums_and_delong(&g.case, &g.control);
    let auc = sums.auc()?;
    Some((auc, variance, (sums.n_case + sums.n_control) as f64))
}

fn test(a: &GroupValues, b: &GroupValues) -> Option<[Option<f64>; 5]> {
    let (auc_a, var_a, n_a) = curve(a)?;
    let (auc_b, var_b, n_b) = curve(b)?;
    let tested = var_a.zip(var_b).and_then(|(va, vb)| {
        let total = va + vb;
        if total.is_nan() || total <= 0.0 {
            return None;
        }
        let d = (auc_a - auc_b) / total.sqrt();
        let df = total * total / (va * va / (n_a - 1.0) + vb * vb / (n_b - 1.0));
        Some((d, df, (2.0 * t_sf(d.abs(), df)).min(1.0)))
    });
    Some([
        Some(auc_a),
        Some(auc_b),
        tested.map(|t| t.0),
        tested.map(|t| t.1),
        tested.map(|t| t.2),
    ])
}

fn evaluate() -> Evaluate<TwoCurves> {
    Evaluate::new(|groups: &mut [TwoCurves]| {
        for g in groups.iter_mut() {
            g.a.compact();
            g.b.compact();
        }
        float_struct(&FIELDS, groups.iter().map(|g| test(&g.a, &g.b)))
    })
}

impl AggregateUDFImpl for UnpairedRocTest {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [value, label, second] = arg_types else {
            return plan_err!("{NAME} takes 3 arguments, got {}", arg_types.len());
        };
        if !(value.is_numeric() || value.is_null()) {
            return plan_err!("{NAME}: value must be numeric, got {value}");
        }
        for (what, t) in [("is_case", label), ("in_second", second)] {
            if !matches!(t, DataType::Boolean | DataType::Null) {
                return plan_err!("{NAME}: {what} must be BOOLEAN, got {t}");
            }
        }
        Ok(vec![
            DataType::Float64,
            DataType::Boolean,
            DataType::Boolean,
        ])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(float_fields(&FIELDS)))
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(StateAccumulator::new(evaluate())))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let mut fields = GroupValues::state_fields(&format!("{}_a", args.name));
        fields.extend(GroupValues::state_fields(&format!("{}_b", args.name)));
        Ok(fields)
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(StateGroupsAccumulator::new(evaluate())))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(documentation())
    }
}
