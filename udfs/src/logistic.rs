//! Regression models: `logistic_regression(is_case, x1 [, x2 …])`,
//! `odds_ratio_per_sd(value, is_case [, covariate …])` and
//! `conditional_logistic(is_case, matched_set, x1 [, x2 …])`.
//!
//! Fitting needs every row of a group more than once, so the state is the group's complete
//! rows (a LIST<DOUBLE> of row-major values between partitions); `size()` counts them. A row
//! counts when its label and every numeric argument are present and finite (complete cases,
//! as R's `na.omit`).

use std::mem::size_of;
use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBuilder, Float64Builder, Int64Builder,
    ListBuilder, StructArray,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Float64Type, Int64Type};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, GroupsAccumulator, Signature,
    Volatility,
};

use crate::docs::{SECTION, doc};
use crate::kernels::distributions::{chi2_sf, normal_quantile, normal_sf};
use crate::kernels::logistic::{
    Fit, MatchedSet, Ties, conditional_logistic, conditional_profile, logistic, logistic_profile,
};
use crate::state::{
    Evaluate, GroupState, StateAccumulator, StateGroupsAccumulator, float_fields, float_struct,
    literal, passes,
};

/// Which model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Model {
    /// `logistic_regression(is_case, x1 [, x2 …])`
    Logistic,
    /// `odds_ratio_per_sd(value, is_case [, covariate …])`
    PerSd,
    /// `conditional_logistic(is_case, matched_set, x1 [, x2 …])`
    Conditional,
}

const PER_SD_FIELDS: [&str; 10] = [
    "odds_ratio",
    "lower",
    "upper",
    "p",
    "log_likelihood",
    "null_log_likelihood",
    "deviance",
    "aic",
    "or_profile_lower",
    "or_profile_upper",
];

/// The confidence level of the intervals (Wald and profile), as R's default.
const LEVEL: f64 = 0.95;

/// The profile-likelihood interval fields, lists of odds ratios per coefficient.
const PROFILE_FIELDS: [&str; 2] = ["or_profile_lower", "or_profile_upper"];

/// The model-fit fields after the coefficient lists: all four for a logistic model, the two
/// log-likelihoods for a conditional one (no deviance or AIC: R's clogit reports neither).
fn fit_statistics(model: Model) -> &'static [&'static str] {
    match model {
        Model::Conditional => &["log_likelihood", "null_log_likelihood"],
        _ => &["log_likelihood", "null_log_likelihood", "deviance", "aic"],
    }
}

/// (log_likelihood, null_log_likelihood, deviance = −2 log L, AIC = −2 log L + 2 · rank).
fn statistics(fit: &Fit) -> [Option<f64>; 4] {
    let ll = fit.log_likelihood;
    [
        ll,
        fit.null_log_likelihood,
        ll.map(|l| -2.0 * l),
        ll.map(|l| -2.0 * l + 2.0 * fit.rank as f64),
    ]
}

fn fit_fields(model: Model) -> Fields {
    let list = || DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)));
    let mut fields = vec![
        Field::new("coef", list(), true),
        Field::new("se", list(), true),
        Field::new("z", list(), true),
        Field::new("p", list(), true),
        Field::new("odds_ratio", list(), true),
        Field::new("converged", DataType::Boolean, true),
        Field::new("iterations", DataType::Int64, true),
    ];
    fields.extend(
        fit_statistics(model)
            .iter()
            .map(|n| Field::new(*n, DataType::Float64, true)),
    );
    if model == Model::Conditional {
        fields.extend(
            GLOBAL_TESTS
                .iter()
                .map(|n| Field::new(*n, DataType::Struct(float_fields(&TEST_FIELDS)), true)),
        );
    }
    fields.extend(PROFILE_FIELDS.iter().map(|n| Field::new(*n, list(), true)));
    Fields::from(fields)
}

/// The global tests of a conditional fit, as summary(clogit) prints them.
const GLOBAL_TESTS: [&str; 3] = ["lr_test", "score_test", "wald_test"];
const TEST_FIELDS: [&str; 3] = ["statistic", "df", "p"];

/// (statistic, df) of the likelihood-ratio, score and Wald tests that every coefficient is 0.
fn global_tests(fit: &Fit) -> [Option<(f64, f64)>; 3] {
    let df = fit.rank as f64;
    let lr = fit
        .log_likelihood
        .zip(fit.null_log_likelihood)
        .map(|(l, l0)| (2.0 * (l - l0), df));
    [
        lr,
        fit.score_test.map(|s| (s, df)),
        fit.wald_test.map(|w| (w, df)),
    ]
}

impl Model {
    /// Every model of the family.
    pub const ALL: [Model; 3] = [Model::Logistic, Model::PerSd, Model::Conditional];

    /// The SQL name.
    pub fn name(self) -> &'static str {
        match self {
            Model::Logistic => "logistic_regression",
            Model::PerSd => "odds_ratio_per_sd",
            Model::Conditional => "conditional_logistic",
        }
    }

    /// Arguments before the numeric predictors, and the least number of predictors.
    fn layout(self) -> (usize, usize) {
        match self {
            Model::Logistic => (1, 1),
            Model::PerSd => (2, 0),
            Model::Conditional => (2, 1),
        }
    }

    fn documentation(self) -> &'static Documentation {
        static DOCS: OnceLock<[Documentation; 3]> = OnceLock::new();
        let docs = DOCS.get_or_init(|| Model::ALL.map(Model::build_doc));
        match self {
            Model::Logistic => &docs[0],
            Model::PerSd => &docs[1],
            Model::Conditional => &docs[2],
        }
    }

    fn build_doc(self) -> Documentation {
        let label = "BOOLEAN outcome: true for cases.";
        let x = "Numeric predictors (at least one; up to 32 in all).";
        let fields = "Returns lists with one entry per coefficient (coef, se, z, p, odds_ratio = \
                      exp(coef)), converged and iterations. A coefficient of a column that is a \
                      linear combination of the columns before it is NULL (R: NA). Under \
                      separation, where no finite maximum exists, converged is false and every \
                      estimate NULL (R reports huge coefficients with a warning). \
                      or_profile_lower and or_profile_upper are the 95 % profile-likelihood \
                      intervals of the odds ratios, per coefficient: the values where twice \
                      the drop of the log-likelihood maximised over the other coefficients \
                      reaches χ²₁(0.95), as MASS's confint() computes them on a glm (R \
                      interpolates a spline through a grid of profile points and agrees to \
                      about 1e-4; these are the exact roots, to double precision). A bound \
                      is NULL where the profile levels off below that height (R: NA).";
        match self {
            Model::Logistic => doc(
                SECTION,
                &format!(
                    "Logistic regression of case status on the predictors with an intercept \
                     (first in the lists), by iteratively reweighted least squares exactly as \
                     R's glm(family = binomial) with its default control: R's starting \
                     values, link clamps, deviance rule (ε = 1e-8) and at most 25 \
                     iterations, so the same estimates and iteration count as R; se, z and p \
                     as summary.glm prints them (from the last iteration's weights). Rows \
                     with a NULL, NaN or infinite value are dropped. NULL without both \
                     outcomes. Separation (complete or quasi-complete) is decided from the \
                     data by a linear programme before iterating (Albert & Anderson; Konis), \
                     and iterations is then 0; fitted probabilities that are numerically 0 \
                     or 1 (R's warning) are not separation, and where the groups overlap the \
                     estimate is returned. {fields} Model fit, NULL without an estimate: \
                     log_likelihood (R's logLik), null_log_likelihood (of the intercept-only \
                     model, −null.deviance / 2), deviance (−2 log L) and aic (−2 log L + 2 × \
                     the coefficients estimated, R's AIC); the likelihood-ratio test of nested \
                     models is chi2_sf(2 × (log_likelihood − the smaller model's), df)."
                ),
                "logistic_regression(is_case, x1 [, x2 …])",
                "SELECT biomarker, logistic_regression(s.is_case, m.value, s.age)['odds_ratio'][2] AS or_value\nFROM measurements m JOIN samples s USING (sample_id) GROUP BY biomarker;",
            )
            .with_argument("is_case", label)
            .with_argument("x1, x2, …", x)
            .build(),
            Model::PerSd => doc(
                SECTION,
                "The odds ratio per standard deviation of the value: the value is \
                 standardised by the mean and SD (n − 1) of the group's complete rows, then \
                 glm(is_case ~ z + covariates, binomial) is fitted as logistic_regression \
                 does (R's iterations and Wald table); odds_ratio = exp(b), Wald interval \
                 exp(b ± 1.96·se), Wald p; and the model's fit as logistic_regression \
                 gives it: log_likelihood, null_log_likelihood, deviance, aic; \
                 or_profile_lower / or_profile_upper, the 95 % profile-likelihood interval \
                 of the odds ratio per SD (MASS's confint() on the glm, solved exactly). \
                 NULL without \
                 both outcomes, with zero variance, under separation, or when R's rule is \
                 not met in 25 iterations.",
                "odds_ratio_per_sd(value, is_case [, covariate …])",
                "SELECT biomarker, odds_ratio_per_sd(m.value, s.is_case, s.age) AS per_sd\nFROM measurements m JOIN samples s USING (sample_id) GROUP BY biomarker;",
            )
            .with_argument("value", "The measurement (numeric).")
            .with_argument("is_case", label)
            .with_argument("covariate, …", "Optional numeric covariates to adjust for.")
            .build(),
            Model::Conditional => doc(
                SECTION,
                &format!(
                    "Conditional logistic regression for matched case-control sets, as R's \
                     survival::clogit(method = 'exact'): the exact conditional likelihood \
                     of each set (any number of cases and controls; Gail, Lubin & \
                     Rubinstein's recursion), Newton-Raphson from 0 with step halving and \
                     coxph's convergence rule with ε = 1e-12, standard errors from the \
                     inverse information at the estimate. No intercept. Sets without a case \
                     or without a control carry no information and are dropped; a \
                     predictor constant within every set is aliased. NULL when no set is \
                     informative. {fields} log_likelihood is the conditional log-likelihood \
                     at the estimate and null_log_likelihood at 0 (clogit's loglik); \
                     lr_test, score_test and wald_test, each {{statistic, df, p}}, are the \
                     tests that every coefficient is 0 that summary(clogit) prints: 2 × \
                     (log L − log L₀), the score U(0)ᵀ I(0)⁻¹ U(0) and Wald β̂ᵀ I(β̂) β̂, on \
                     as many degrees of freedom as coefficients estimated; all NULL without \
                     an estimate."
                ),
                "conditional_logistic(is_case, matched_set, x1 [, x2 …] [, ties])",
                "SELECT biomarker, conditional_logistic(s.is_case, s.matched_set, m.value)['odds_ratio'][1] AS or_value\nFROM measurements m JOIN samples s USING (sample_id) GROUP BY biomarker;",
            )
            .with_argument("is_case", label)
            .with_argument("matched_set", "Integer identifier of the matched set.")
            .with_argument("x1, x2, …", x)
            .with_argument(
                "ties",
                "Optional constant, last: 'exact' (default; the exact conditional likelihood) \
                 or 'breslow' (Breslow's approximation, R's clogit(method = \"breslow\"); \
                 the same for sets with one case).",
            )
            .build(),
        }
    }
}

/// The most numeric columns a model takes.
const MAX_COLUMNS: usize = 32;

/// The aggregate UDF of one model.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ModelUdaf {
    model: Model,
    signature: Signature,
}

impl ModelUdaf {
    /// The UDAF fitting `model`.
    pub fn new(model: Model) -> Self {
        Self {
            model,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }

    fn evaluate(&self, args: &AccumulatorArgs) -> Result<Evaluate<Rows>> {
        let model = self.model;
        let ties = ties_argument(model, args)?;
        Ok(Evaluate::new(move |groups: &mut [Rows]| {
            groups.iter_mut().for_each(Rows::canonical);
            evaluate_model(model, ties, groups)
        }))
    }
}

/// conditional_logistic's optional last argument, 'exact' (default) or 'breslow'.
fn ties_argument(model: Model, args: &AccumulatorArgs) -> Result<Ties> {
    if model != Model::Conditional {
        return Ok(Ties::Exact);
    }
    let Some(last) = args.exprs.last() else {
        return Ok(Ties::Exact);
    };
    let Ok(DataType::Utf8) = last.data_type(args.schema) else {
        return Ok(Ties::Exact);
    };
    let text = match literal(args, args.exprs.len() - 1) {
        Some(datafusion::common::ScalarValue::Utf8(Some(t))) => t,
        _ => {
            return plan_err!("conditional_logistic: ties must be a constant 'exact' or 'breslow'");
        }
    };
    match Ties::parse(&text) {
        Some(t) => Ok(t),
        None => plan_err!("conditional_logistic: ties must be 'exact' or 'breslow', got '{text}'"),
    }
}

fn evaluate_model(model: Model, ties: Ties, groups: &mut [Rows]) -> Result<ArrayRef> {
    match model {
        Model::Logistic => fits_array(
            model,
            groups.iter().map(|g| {
                let (y, x) = g.columns();
                let fit = logistic(&y, &x)?;
                let profile = logistic_profile(&y, &x, &fit, LEVEL);
                Some((fit, profile))
            }),
        ),
        Model::Conditional => fits_array(
            model,
            groups.iter().map(|g| {
                let (sets, p) = g.matched_sets();
                let fit = conditional_logistic(&sets, p, ties)?;
                let profile = conditional_profile(&sets, &fit, ties, LEVEL);
                Some((fit, profile))
            }),
        ),
        Model::PerSd => float_struct(&PER_SD_FIELDS, groups.iter().map(per_sd)),
    }
}

fn per_sd(g: &Rows) -> Option<[Option<f64>; 10]> {
    let (y, mut x) = g.columns();
    let value = x.first_mut()?;
    let n = value.len() as f64;
    if n < 2.0 {
        return None;
    }
    let mean = value.iter().sum::<f64>() / n;
    let sd = (value.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0)).sqrt();
    if sd.is_nan() || sd <= 0.0 {
        return None;
    }
    value.iter_mut().for_each(|v| *v = (*v - mean) / sd);
    let fit = logistic(&y, &x)?;
    let (b, se) = (fit.coef[1]?, fit.se[1]?);
    let z = normal_quantile(0.5 + LEVEL / 2.0);
    let (profile_lower, profile_upper) = logistic_profile(&y, &x, &fit, LEVEL)[1];
    let [ll, null, deviance, aic] = statistics(&fit);
    Some([
        Some(b.exp()),
        Some((b - z * se).exp()),
        Some((b + z * se).exp()),
        Some((2.0 * normal_sf((b / se).abs())).min(1.0)),
        ll,
        null,
        deviance,
        aic,
        profile_lower.map(f64::exp),
        profile_upper.map(f64::exp),
    ])
}

/// The fits' struct column: each fit with its profile-likelihood bounds per coefficient.
fn fits_array(
    model: Model,
    fits: impl Iterator<Item = Option<(Fit, Vec<(Option<f64>, Option<f64>)>)>>,
) -> Result<ArrayRef> {
    let mut lists: [ListBuilder<Float64Builder>; 5] =
        std::array::from_fn(|_| ListBuilder::new(Float64Builder::new()));
    let mut converged = BooleanBuilder::new();
    let mut iterations = Int64Builder::new();
    let mut stats: Vec<Float64Builder> = fit_statistics(model)
        .iter()
        .map(|_| Float64Builder::new())
        .collect();
    let mut tests: Vec<Vec<Option<(f64, f64)>>> = vec![Vec::new(); GLOBAL_TESTS.len()];
    let mut profiles: [ListBuilder<Float64Builder>; 2] =
        std::array::from_fn(|_| ListBuilder::new(Float64Builder::new()));
    let mut valid = Vec::new();
    for fit in fits {
        valid.push(fit.is_some());
        let Some((fit, profile)) = fit else {
            lists.iter_mut().for_each(|l| l.append(false));
            profiles.iter_mut().for_each(|l| l.append(false));
            converged.append_null();
            iterations.append_null();
            stats.iter_mut().for_each(Float64Builder::append_null);
            tests.iter_mut().for_each(|t| t.push(None));
            continue;
        };
        for (column, test) in tests.iter_mut().zip(global_tests(&fit)) {
            column.push(test);
        }
        for (builder, value) in stats.iter_mut().zip(statistics(&fit)) {
            builder.append_option(value);
        }
        let k = fit.coef.len();
        let columns: [Vec<Option<f64>>; 5] = [
            fit.coef.clone(),
            fit.se.clone(),
            (0..k).map(|i| fit.z(i)).collect(),
            (0..k).map(|i| fit.p(i)).collect(),
            fit.coef.iter().map(|c| c.map(f64::exp)).collect(),
        ];
        for (list, values) in lists.iter_mut().zip(columns) {
            for v in values {
                list.values().append_option(v);
            }
            list.append(true);
        }
        for (builder, side) in profiles.iter_mut().zip([0, 1]) {
            for bounds in &profile {
                let bound = if side == 0 { bounds.0 } else { bounds.1 };
                builder.values().append_option(bound.map(f64::exp));
            }
            builder.append(true);
        }
        converged.append_value(fit.converged);
        iterations.append_value(fit.iterations as i64);
    }
    let mut arrays: Vec<ArrayRef> = lists
        .iter_mut()
        .map(|l| Arc::new(l.finish()) as ArrayRef)
        .collect();
    arrays.push(Arc::new(converged.finish()));
    arrays.push(Arc::new(iterations.finish()));
    arrays.extend(stats.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    if model == Model::Conditional {
        for column in &tests {
            arrays.push(float_struct(
                &TEST_FIELDS,
                column.iter().map(|t| {
                    t.map(|(statistic, df)| {
                        [
                            Some(statistic),
                            Some(df),
                            Some(chi2_sf(statistic.max(0.0), df)),
                        ]
                    })
                }),
            )?);
        }
    }
    arrays.extend(
        profiles
            .iter_mut()
            .map(|l| Arc::new(l.finish()) as ArrayRef),
    );
    Ok(Arc::new(StructArray::try_new(
        fit_fields(model),
        arrays,
        Some(NullBuffer::from(valid)),
    )?))
}

/// Every function of the family, for registration.
pub fn all() -> Vec<Arc<AggregateUDF>> {
    Model::ALL
        .iter()
        .map(|m| Arc::new(AggregateUDF::from(ModelUdaf::new(*m))))
        .collect()
}

impl AggregateUDFImpl for ModelUdaf {
    fn name(&self) -> &str {
        self.model.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let name = self.name();
        // conditional_logistic(…, ties): the trailing text is the ties method.
        if self.model == Model::Conditional
            && let Some((last, rest)) = arg_types.split_last()
            && matches!(
                last,
                DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
            )
        {
            let mut types = self.coerce_types(rest)?;
            types.push(DataType::Utf8);
            return Ok(types);
        }
        let (leading, least) = self.model.layout();
        if arg_types.len() < leading + least || arg_types.len() > leading + MAX_COLUMNS {
            return plan_err!(
                "{name}: expected {} to {} arguments, got {}",
                leading + least,
                leading + MAX_COLUMNS,
                arg_types.len()
            );
        }
        let numeric = |i: usize, t: &DataType| -> Result<DataType> {
            if t.is_numeric() || t.is_null() {
                Ok(DataType::Float64)
            } else {
                plan_err!("{name}: argument {} must be numeric, got {t}", i + 1)
            }
        };
        let boolean = |t: &DataType| -> Result<DataType> {
            if matches!(t, DataType::Boolean | DataType::Null) {
                Ok(DataType::Boolean)
            } else {
                plan_err!("{name}: is_case must be BOOLEAN (true = case), got {t}")
            }
        };
        arg_types
            .iter()
            .enumerate()
            .map(|(i, t)| match (self.model, i) {
                (Model::Logistic | Model::Conditional, 0) | (Model::PerSd, 1) => boolean(t),
                (Model::Conditional, 1) => {
                    if t.is_integer() || t.is_null() {
                        Ok(DataType::Int64)
                    } else {
                        plan_err!("{name}: matched_set must be an integer, got {t}")
                    }
                }
                _ => numeric(i, t),
            })
            .collect()
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.model {
            Model::PerSd => DataType::Struct(float_fields(&PER_SD_FIELDS)),
            model => DataType::Struct(fit_fields(model)),
        })
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(StateAccumulator::new(self.evaluate(&args)?)))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format_state_name(args.name, "rows"),
            DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))),
            true,
        ))])
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(StateGroupsAccumulator::new(self.evaluate(&args)?)))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(self.model.documentation())
    }
}

/// A group's complete rows, row-major: [label (0/1), predictors…] or, for matched sets,
/// [set id (its i64 bits), label, predictors…].
#[derive(Debug, Default, Clone)]
pub struct Rows {
    width: usize,
    matched: bool,
    data: Vec<f64>,
}

impl Rows {
    /// Puts the rows in a canonical order, so that the fit does not depend on the order in
    /// which partial states arrived (floating-point sums are not associative).
    fn canonical(&mut self) {
        let width = self.width.max(1);
        let mut rows: Vec<&[f64]> = self.data.chunks_exact(width).collect();
        rows.sort_unstable_by(|a, b| {
            a.iter()
                .zip(b.iter())
                .map(|(x, y)| x.total_cmp(y))
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        self.data = rows.concat();
    }

    fn rows(&self) -> impl Iterator<Item = &[f64]> {
        self.data.chunks_exact(self.width.max(1))
    }

    /// The labels and the predictor columns.
    fn columns(&self) -> (Vec<bool>, Vec<Vec<f64>>) {
        let skip = usize::from(self.matched);
        let k = self.width.saturating_sub(1 + skip);
        let mut y = Vec::new();
        let mut x = vec![Vec::new(); k];
        for row in self.rows() {
            y.push(row[skip] != 0.0);
            for (column, v) in x.iter_mut().zip(&row[skip + 1..]) {
                column.push(*v);
            }
        }
        (y, x)
    }

    /// The rows grouped into matched sets (ordered by set id), and the number of predictors.
    fn matched_sets(&self) -> (Vec<MatchedSet>, usize) {
        let mut by_set: std::collections::BTreeMap<i64, MatchedSet> = Default::default();
        for row in self.rows() {
            let set = by_set.entry(row[0].to_bits() as i64).or_default();
            set.case.push(row[1] != 0.0);
            set.x.push(row[2..].to_vec());
        }
        (by_set.into_values().collect(), self.width.saturating_sub(2))
    }
}

impl GroupState for Rows {
    fn update(
        groups: &mut [Self],
        values: &[ArrayRef],
        filter: Option<&BooleanArray>,
        group: impl Fn(usize) -> usize,
    ) -> Result<isize> {
        // Which argument is the label, and whether the second is a matched set.
        let (label_at, matched) = match values.first().map(|v| v.data_type()) {
            Some(DataType::Boolean) => (
                0,
                values.get(1).map(|v| v.data_type()) == Some(&DataType::Int64),
            ),
            _ => (1, false),
        };
        let Some(label) = values.get(label_at) else {
            return exec_err!("missing the is_case argument");
        };
        let label = label.as_boolean();
        let set = matched.then(|| values[1].as_primitive::<Int64Type>());
        let numeric: Vec<&datafusion::arrow::array::Float64Array> = values
            .iter()
            .enumerate()
            .filter(|(i, v)| {
                *i != label_at && !(matched && *i == 1) && v.data_type() == &DataType::Float64
            })
            .map(|(_, v)| v.as_primitive::<Float64Type>())
            .collect();
        let width = numeric.len() + 1 + usize::from(matched);
        let mut grew = 0;
        let mut row_values = Vec::with_capacity(width);
        'rows: for row in 0..label.len() {
            if label.is_null(row) || !passes(filter, row) {
                continue;
            }
            row_values.clear();
            if let Some(set) = set {
                if set.is_null(row) {
                    continue;
                }
                row_values.push(f64::from_bits(set.value(row) as u64));
            }
            row_values.push(if label.value(row) { 1.0 } else { 0.0 });
            // odds_ratio_per_sd takes the value first: it goes before the covariates.
            for column in &numeric {
                if column.is_null(row) || !column.value(row).is_finite() {
                    continue 'rows;
                }
                row_values.push(column.value(row));
            }
            let g = &mut groups[group(row)];
            g.width = width;
            g.matched = matched;
            let before = g.data.capacity();
            g.data.extend_from_slice(&row_values);
            grew += (g.data.capacity() - before) * size_of::<f64>();
        }
        Ok(grew as isize)
    }

    fn merge(
        groups: &mut [Self],
        states: &[ArrayRef],
        group: impl Fn(usize) -> usize,
    ) -> Result<isize> {
        let [list] = states else {
            return exec_err!("expected 1 state array, got {}", states.len());
        };
        let list = list.as_list::<i32>();
        let mut grew = 0;
        for row in 0..list.len() {
            if list.is_null(row) {
                continue;
            }
            let values = list.value(row);
            let values = values.as_primitive::<Float64Type>().values();
            // The state carries its layout in its first two values: width and matched.
            let [width, matched, data @ ..] = &values[..] else {
                continue;
            };
            if data.is_empty() {
                continue;
            }
            let g = &mut groups[group(row)];
            g.width = *width as usize;
            g.matched = *matched != 0.0;
            let before = g.data.capacity();
            g.data.extend_from_slice(data);
            grew += (g.data.capacity() - before) * size_of::<f64>();
        }
        Ok(grew as isize)
    }

    fn to_arrays(groups: &[Self]) -> Result<Vec<ArrayRef>> {
        let mut builder = ListBuilder::new(Float64Builder::new());
        for g in groups {
            builder
                .values()
                .append_slice(&[g.width as f64, if g.matched { 1.0 } else { 0.0 }]);
            builder.values().append_slice(&g.data);
            builder.append(true);
        }
        Ok(vec![Arc::new(builder.finish())])
    }

    fn heap_bytes(&self) -> usize {
        self.data.capacity() * size_of::<f64>()
    }
}
