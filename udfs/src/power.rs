//! Study planning: `roc_power(auc, n_cases, n_controls [, sig_level])`, the power of the test
//! that an AUC is 0.5. Scalar: NULL in any argument gives NULL; an argument out of its domain
//! is an execution error naming the function and the value. The kernel is
//! [`crate::kernels::power`].

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use crate::docs::{SECTION, doc};
use crate::kernels::power::roc_power;

/// `roc_power(auc, n_cases, n_controls [, sig_level])`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RocPowerUdf {
    signature: Signature,
}

impl Default for RocPowerUdf {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// Every function of the family, for registration.
pub fn all() -> Vec<Arc<ScalarUDF>> {
    vec![Arc::new(ScalarUDF::from(RocPowerUdf::default()))]
}

fn documentation() -> &'static Documentation {
    static DOC: OnceLock<Documentation> = OnceLock::new();
    DOC.get_or_init(|| {
        doc(
            SECTION,
            "Power of the two-sided test that a ROC curve's AUC is 0.5, for a study with \
             n_cases cases and n_controls controls whose true AUC is auc, at significance \
             sig_level (default 0.05): Φ((√n_cases · |auc − ½| − z · √V₀) / √V) with \
             z = Φ⁻¹(1 − sig_level / 2), V₀ = 0.0792 · (1 + 1/κ) and V the Obuchowski-McClish \
             variance of a binormal curve, κ = n_controls / n_cases. Matches R's \
             pROC::power.roc.test(auc =, ncases =, ncontrols =, sig.level =) exactly, \
             including its choices: A = Φ⁻¹(auc) · 1.414 (√2 rounded) in the variance, and \
             power counted on the side of the true AUC only (so it is sig_level / 2 at \
             auc = 0.5). Use it to plan a study, or with auc(value, is_case) and the group \
             sizes to see what a completed one could detect.",
            "roc_power(auc, n_cases, n_controls [, sig_level])",
            "SELECT roc_power(0.75, 40, 80);  -- 0.997204469120573\nSELECT biomarker, roc_power(auc(value, is_case), count(*) FILTER (WHERE is_case), count(*) FILTER (WHERE NOT is_case))\nFROM measurements JOIN samples USING (sample_id) GROUP BY biomarker;",
        )
        .with_argument("auc", "The AUC to detect, in [0, 1].")
        .with_argument("n_cases", "Number of cases, > 0.")
        .with_argument("n_controls", "Number of controls, > 0.")
        .with_argument(
            "sig_level",
            "Optional significance level in (0, 1); default 0.05 (two-sided).",
        )
        .build()
    })
}

impl ScalarUDFImpl for RocPowerUdf {
    fn name(&self) -> &str {
        "roc_power"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if !(3..=4).contains(&arg_types.len()) {
            return plan_err!("roc_power takes 3 or 4 arguments, got {}", arg_types.len());
        }
        if let Some(t) = arg_types.iter().find(|t| !(t.is_numeric() || t.is_null())) {
            return plan_err!("roc_power: arguments must be numeric, got {t}");
        }
        Ok(vec![DataType::Float64; arg_types.len()])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let column = |i: usize| arrays.get(i).map(|a| a.as_primitive::<Float64Type>());
        let (Some(auc), Some(cases), Some(controls)) = (column(0), column(1), column(2)) else {
            return exec_err!("roc_power takes 3 or 4 arguments");
        };
        let sig = column(3);
        let mut out = Vec::with_capacity(auc.len());
        for row in 0..auc.len() {
            let get = |a: &Float64Array| (!a.is_null(row)).then(|| a.value(row));
            let sig_level = match sig {
                Some(s) => get(s),
                None => Some(0.05),
            };
            let (Some(a), Some(n1), Some(n0), Some(s)) =
                (get(auc), get(cases), get(controls), sig_level)
            else {
                out.push(None);
                continue;
            };
            if !(0.0..=1.0).contains(&a) {
                return exec_err!("roc_power: auc must be in [0, 1], got {a}");
            }
            if !(n1 > 0.0 && n0 > 0.0) {
                return exec_err!(
                    "roc_power: n_cases and n_controls must be > 0, got {n1} and {n0}"
                );
            }
            if !(s > 0.0 && s < 1.0) {
                return exec_err!("roc_power: sig_level must be in (0, 1), got {s}");
            }
            out.push(Some(roc_power(a, n1, n0, s)));
        }
        Ok(ColumnarValue::Array(
            Arc::new(Float64Array::from(out)) as ArrayRef
        ))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(documentation())
    }
}
