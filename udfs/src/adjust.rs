//! `p_adjust(p, method) OVER (…)`: multiple-testing adjustment across a window partition.
//!
//! A window function, because adjusting needs every p-value of the partition (typically all
//! biomarkers of a report): `p_adjust(p, 'bh') OVER ()`. NULL and NaN p-values stay NULL and
//! are not counted, as R's `p.adjust` does with NA; a p-value outside [0, 1] is an error.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{ArrayRef, AsArray, Float64Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::function::{PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion::logical_expr::{
    Documentation, PartitionEvaluator, Signature, Volatility, WindowUDF, WindowUDFImpl,
};
use datafusion::physical_expr::expressions::Literal;

use crate::docs::{SECTION, doc};
use crate::kernels::adjust::{Adjustment, adjust};

/// The `p_adjust` window function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PAdjust {
    signature: Signature,
}

impl Default for PAdjust {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// The window functions of this family, for registration.
pub fn all() -> Vec<Arc<WindowUDF>> {
    vec![Arc::new(WindowUDF::from(PAdjust::default()))]
}

fn documentation() -> &'static Documentation {
    static DOC: OnceLock<Documentation> = OnceLock::new();
    DOC.get_or_init(|| {
        doc(
            SECTION,
            "Adjusts p-values for multiple testing across the rows of the window partition, \
             exactly as R's p.adjust: 'bh' (Benjamini-Hochberg FDR; also 'fdr'), 'by' \
             (Benjamini-Yekutieli), 'holm', 'hochberg', 'hommel' (O(n²)) or 'bonferroni'. \
             NULL and NaN p-values stay NULL and are not counted in n. Cross-checked against \
             statsmodels.stats.multitest.multipletests.",
            "p_adjust(p, method) OVER ([PARTITION BY …])",
            "SELECT biomarker, p, p_adjust(p, 'bh') OVER () AS q\nFROM (SELECT biomarker, mann_whitney(value, is_case)['p'] AS p\n      FROM measurements JOIN samples USING (sample_id) GROUP BY biomarker);",
        )
        .with_argument("p", "The p-values, in [0, 1].")
        .with_argument(
            "method",
            "A constant: 'bh', 'fdr', 'by', 'holm', 'hochberg', 'hommel' or 'bonferroni'.",
        )
        .build()
    })
}

impl WindowUDFImpl for PAdjust {
    fn name(&self) -> &str {
        "p_adjust"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [p, method] = arg_types else {
            return plan_err!(
                "p_adjust(p, method) takes 2 arguments, got {}",
                arg_types.len()
            );
        };
        if !(p.is_numeric() || p.is_null()) {
            return plan_err!("p_adjust: p must be numeric, got {p}");
        }
        if !matches!(
            method,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        ) {
            return plan_err!("p_adjust: method must be a string, got {method}");
        }
        Ok(vec![DataType::Float64, DataType::Utf8])
    }

    fn partition_evaluator(
        &self,
        args: PartitionEvaluatorArgs,
    ) -> Result<Box<dyn PartitionEvaluator>> {
        let method = match args
            .input_exprs()
            .get(1)
            .and_then(|e| e.downcast_ref::<Literal>())
            .map(Literal::value)
        {
            Some(
                ScalarValue::Utf8(Some(s))
                | ScalarValue::LargeUtf8(Some(s))
                | ScalarValue::Utf8View(Some(s)),
            ) => match Adjustment::parse(s) {
                Some(m) => m,
                None => {
                    return plan_err!(
                        "p_adjust: unknown method '{s}': use 'bh', 'fdr', 'by', 'holm', \
                         'hochberg', 'hommel' or 'bonferroni'"
                    );
                }
            },
            _ => return plan_err!("p_adjust: method must be a constant string"),
        };
        Ok(Box::new(PAdjustEvaluator { method }))
    }

    fn field(&self, field_args: WindowUDFFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(
            field_args.name(),
            DataType::Float64,
            true,
        )))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(documentation())
    }
}

#[derive(Debug)]
struct PAdjustEvaluator {
    method: Adjustment,
}

impl PartitionEvaluator for PAdjustEvaluator {
    fn evaluate_all(&mut self, values: &[ArrayRef], num_rows: usize) -> Result<ArrayRef> {
        let Some(p) = values.first() else {
            return exec_err!("p_adjust: missing the p argument");
        };
        let p = p.as_primitive::<Float64Type>();
        let mut rows = Vec::with_capacity(num_rows);
        let mut kept = Vec::with_capacity(num_rows);
        for (row, value) in p.iter().enumerate() {
            match value {
                Some(x) if x.is_nan() => {}
                Some(x) if !(0.0..=1.0).contains(&x) => {
                    return exec_err!("p_adjust: p-values must be in [0, 1], got {x}");
                }
                Some(x) => {
                    rows.push(row);
                    kept.push(x);
                }
                None => {}
            }
        }
        let adjusted = adjust(&kept, self.method);
        let mut out = vec![None; p.len()];
        for (row, q) in rows.into_iter().zip(adjusted) {
            out[row] = Some(q);
        }
        Ok(Arc::new(Float64Array::from(out)))
    }
}
