//! Scalar distribution helpers: `normal_cdf`, `normal_sf`, `normal_quantile`, `t_sf`,
//! `chi2_sf`.
//!
//! Thin SQL wrappers of [`crate::kernels::distributions`]: NULL in, NULL out; NaN in, NaN out;
//! a parameter out of its domain (df ≤ 0, a probability outside [0, 1]) is an execution error
//! that names the function and the value.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{ArrayRef, AsArray, Float64Array};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use crate::docs::{SECTION, doc};
use crate::kernels::distributions as k;

/// Which distribution function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DistributionFunction {
    /// `normal_cdf(z)`: P(Z ≤ z).
    NormalCdf,
    /// `normal_sf(z)`: P(Z > z).
    NormalSf,
    /// `normal_quantile(p)`: z with P(Z ≤ z) = p.
    NormalQuantile,
    /// `t_sf(t, df)`: P(T > t).
    TSf,
    /// `chi2_sf(x, df)`: P(X > x).
    Chi2Sf,
}

impl DistributionFunction {
    /// Every function of the family.
    pub const ALL: [DistributionFunction; 5] = [
        DistributionFunction::NormalCdf,
        DistributionFunction::NormalSf,
        DistributionFunction::NormalQuantile,
        DistributionFunction::TSf,
        DistributionFunction::Chi2Sf,
    ];

    /// The SQL name.
    pub fn name(self) -> &'static str {
        match self {
            DistributionFunction::NormalCdf => "normal_cdf",
            DistributionFunction::NormalSf => "normal_sf",
            DistributionFunction::NormalQuantile => "normal_quantile",
            DistributionFunction::TSf => "t_sf",
            DistributionFunction::Chi2Sf => "chi2_sf",
        }
    }

    fn arity(self) -> usize {
        match self {
            DistributionFunction::TSf | DistributionFunction::Chi2Sf => 2,
            _ => 1,
        }
    }

    fn documentation(self) -> &'static Documentation {
        static DOCS: OnceLock<Vec<Documentation>> = OnceLock::new();
        let docs = DOCS.get_or_init(|| {
            DistributionFunction::ALL
                .iter()
                .map(|f| f.build_doc())
                .collect()
        });
        let index = DistributionFunction::ALL
            .iter()
            .position(|f| *f == self)
            .unwrap_or_default();
        &docs[index]
    }

    fn build_doc(self) -> Documentation {
        let (description, syntax, example) = match self {
            DistributionFunction::NormalCdf => (
                "Standard normal cumulative distribution function P(Z ≤ z). Matches \
                 scipy.stats.norm.cdf and R pnorm.",
                "normal_cdf(z)",
                "SELECT normal_cdf(1.96);  -- 0.9750021048517795",
            ),
            DistributionFunction::NormalSf => (
                "Standard normal upper tail P(Z > z), computed directly (not 1 − cdf), so \
                 it is accurate far into the tail. Matches scipy.stats.norm.sf and R \
                 pnorm(z, lower.tail = FALSE).",
                "normal_sf(z)",
                "SELECT 2 * normal_sf(abs(3.1));  -- two-sided p of z = 3.1",
            ),
            DistributionFunction::NormalQuantile => (
                "Standard normal quantile: z with P(Z ≤ z) = p. p must be in [0, 1] \
                 (0 → -Infinity, 1 → Infinity). Matches scipy.stats.norm.ppf and R qnorm.",
                "normal_quantile(p)",
                "SELECT normal_quantile(0.975);  -- 1.959963984540054",
            ),
            DistributionFunction::TSf => (
                "Student's t upper tail P(T > t) with df > 0 degrees of freedom (df may be \
                 fractional, as Welch's). Matches scipy.stats.t.sf and R pt(t, df, \
                 lower.tail = FALSE).",
                "t_sf(t, df)",
                "SELECT 2 * t_sf(abs(2.3), 17.4);  -- two-sided p",
            ),
            DistributionFunction::Chi2Sf => (
                "Chi-squared upper tail P(X > x) with df > 0 degrees of freedom. Matches \
                 scipy.stats.chi2.sf and R pchisq(x, df, lower.tail = FALSE).",
                "chi2_sf(x, df)",
                "SELECT chi2_sf(3.84, 1);  -- 0.05004352124870519",
            ),
        };
        let mut builder = doc(SECTION, description, syntax, example);
        builder = match self {
            DistributionFunction::NormalQuantile => {
                builder.with_argument("p", "A probability in [0, 1].")
            }
            DistributionFunction::TSf | DistributionFunction::Chi2Sf => builder
                .with_argument("x", "The point at which to evaluate the upper tail.")
                .with_argument("df", "Degrees of freedom, > 0."),
            _ => builder.with_argument("z", "The point at which to evaluate."),
        };
        builder.build()
    }
}

/// The scalar UDF of one distribution function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DistributionUdf {
    function: DistributionFunction,
    signature: Signature,
}

impl DistributionUdf {
    /// The UDF computing `function`.
    pub fn new(function: DistributionFunction) -> Self {
        Self {
            function,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// Every function of the family, for registration.
pub fn all() -> Vec<Arc<ScalarUDF>> {
    DistributionFunction::ALL
        .iter()
        .map(|f| Arc::new(ScalarUDF::from(DistributionUdf::new(*f))))
        .collect()
}

impl ScalarUDFImpl for DistributionUdf {
    fn name(&self) -> &str {
        self.function.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let name = self.name();
        if arg_types.len() != self.function.arity() {
            return plan_err!(
                "{name} takes {} argument(s), got {}",
                self.function.arity(),
                arg_types.len()
            );
        }
        for t in arg_types {
            if !(t.is_numeric() || t.is_null()) {
                return plan_err!("{name}: arguments must be numeric, got {t}");
            }
        }
        Ok(vec![DataType::Float64; arg_types.len()])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let name = self.name();
        let x = arrays[0].as_primitive::<Float64Type>();
        let out: Float64Array = match (self.function, arrays.get(1)) {
            (DistributionFunction::NormalCdf, _) => x.unary(k::normal_cdf),
            (DistributionFunction::NormalSf, _) => x.unary(k::normal_sf),
            (DistributionFunction::NormalQuantile, _) => {
                if let Some(p) = x.iter().flatten().find(|p| !(0.0..=1.0).contains(p)) {
                    return exec_err!("{name}: p must be in [0, 1], got {p}");
                }
                x.unary(k::normal_quantile)
            }
            (DistributionFunction::TSf, Some(df)) => binary(name, x, df, k::t_sf)?,
            (DistributionFunction::Chi2Sf, Some(df)) => binary(name, x, df, k::chi2_sf)?,
            (_, None) => return exec_err!("{name}: missing the df argument"),
        };
        Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(self.function.documentation())
    }
}

/// Applies `f(x, df)` row by row; NULL in either gives NULL; df must be > 0.
fn binary(
    name: &str,
    x: &Float64Array,
    df: &ArrayRef,
    f: fn(f64, f64) -> f64,
) -> Result<Float64Array> {
    let df = df.as_primitive::<Float64Type>();
    if let Some(bad) = df.iter().flatten().find(|d| d.is_nan() || *d <= 0.0) {
        return exec_err!("{name}: df must be > 0, got {bad}");
    }
    Ok(x.iter()
        .zip(df.iter())
        .map(|(x, df)| Some(f(x?, df?)))
        .collect())
}
