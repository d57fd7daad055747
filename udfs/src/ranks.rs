//! Rank statistics of two groups: `auc`, `mann_whitney`, `auc_ci` and `ks_test`.
//!
//! Ranks need every value of a biomarker: the state is the finite values of the cases and of
//! the controls (two LIST<DOUBLE> fields when partial states travel between partitions or
//! machines). `size()` reports the vectors' capacity, so the memory pool sees what a group
//! really holds. Evaluation sorts each group once (O(n log n)) and walks the tie groups.
//!
//! Conventions (DESIGN.md): `is_case` is a BOOLEAN; rows whose value or label is NULL, NaN or
//! infinite are skipped; an undefined statistic (an empty group) is NULL.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Float64Builder, ListArray, ListBuilder,
    UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, UInt64Type};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, GroupsAccumulator, Signature,
    Volatility,
};
use datafusion::physical_expr::expressions::Literal;

use crate::docs::{SECTION, doc};
use crate::kernels::PValueMethod;
use crate::kernels::bootstrap::auc_bootstrap;
use crate::kernels::distributions::normal_quantile;
use crate::kernels::ks::ks_test;
use crate::kernels::power::roc_sample_size;
use crate::kernels::ranks::{
    RankSums, auto_uses_exact, exact_p_given_ties, rank_sums, rank_sums_and_delong,
};
use crate::kernels::tally::Tally;
use crate::state::{
    Evaluate, GroupState, StateAccumulator, StateGroupsAccumulator, float_fields, float_struct,
};

const KS_FIELDS: [&str; 2] = ["d", "p"];
use crate::two_group::{coerce_value_and_label, for_each_row};

/// The constant options of a rank aggregate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    pub(crate) method: PValueMethod,
    pub(crate) level: f64,
    /// roc_sample_size's power and significance level.
    pub(crate) power: f64,
    pub(crate) sig_level: f64,
    /// mann_whitney's continuity correction of the normal approximation.
    pub(crate) correct: bool,
    /// auc_ci_bootstrap's replicates and seed.
    pub(crate) replicates: usize,
    pub(crate) seed: u64,
}

impl Default for Options {
    /// The SQL defaults: 'auto', a 0.95 level, the continuity correction, power 0.8 at 0.05.
    fn default() -> Self {
        Options {
            method: PValueMethod::Auto,
            level: 0.95,
            correct: true,
            power: 0.8,
            sig_level: 0.05,
            replicates: DEFAULT_REPLICATES,
            seed: 0,
        }
    }
}

/// auc_ci_bootstrap's replicates by default (pROC's boot.n) and at most.
const DEFAULT_REPLICATES: usize = 2000;
const MAX_REPLICATES: i64 = 1_000_000;

/// Parses a constant `method` argument.
pub(crate) fn parse_method(name: &str, text: &str) -> Result<PValueMethod> {
    match text.to_ascii_lowercase().as_str() {
        "auto" => Ok(PValueMethod::Auto),
        "asymptotic" => Ok(PValueMethod::Asymptotic),
        "exact" => Ok(PValueMethod::Exact),
        other => {
            plan_err!("{name}: method must be 'auto', 'asymptotic' or 'exact', got '{other}'")
        }
    }
}

/// Which rank statistic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RankStatistic {
    /// `auc(value, is_case)` → DOUBLE
    Auc,
    /// `mann_whitney(value, is_case [, method])` → {u, z, p}
    MannWhitney,
    /// `auc_ci(value, is_case [, level])` → {auc, se, lower, upper}
    AucCi,
    /// `ks_test(value, is_case [, method])` → {d, p}
    Ks,
    /// `roc_sample_size(value, is_case, power [, sig_level])` → {n_cases, n_controls}
    SampleSize,
    /// `auc_ci_bootstrap(value, is_case [, level [, replicates [, seed]]])` → {auc, lower, upper}
    Bootstrap,
}

impl RankStatistic {
    /// Every statistic of the family.
    pub const ALL: [RankStatistic; 6] = [
        RankStatistic::Auc,
        RankStatistic::MannWhitney,
        RankStatistic::AucCi,
        RankStatistic::Ks,
        RankStatistic::SampleSize,
        RankStatistic::Bootstrap,
    ];

    /// The SQL name.
    pub fn name(self) -> &'static str {
        match self {
            RankStatistic::Auc => "auc",
            RankStatistic::MannWhitney => "mann_whitney",
            RankStatistic::AucCi => "auc_ci",
            RankStatistic::Ks => "ks_test",
            RankStatistic::SampleSize => "roc_sample_size",
            RankStatistic::Bootstrap => "auc_ci_bootstrap",
        }
    }

    fn documentation(self) -> &'static Documentation {
        static DOCS: OnceLock<Vec<Documentation>> = OnceLock::new();
        let docs = DOCS.get_or_init(|| RankStatistic::ALL.iter().map(|s| s.build_doc()).collect());
        match self {
            RankStatistic::Auc => &docs[0],
            RankStatistic::MannWhitney => &docs[1],
            RankStatistic::AucCi => &docs[2],
            RankStatistic::Ks => &docs[3],
            RankStatistic::SampleSize => &docs[4],
            RankStatistic::Bootstrap => &docs[5],
        }
    }

    fn build_doc(self) -> Documentation {
        let value =
            "The measurement (any numeric type). NULL, NaN and infinite values are skipped.";
        let label = "BOOLEAN label: true for cases, false for controls. Rows with a NULL label are skipped.";
        match self {
            RankStatistic::Auc => doc(
                SECTION,
                "Area under the ROC curve of the value as a predictor of being a case: \
                 P(X_case > X_control) + ½ P(X_case = X_control) = U_case / (n_case · \
                 n_control), with midranks for ties. No auto-flip: a marker lower in cases \
                 gives an AUC below 0.5 (pROC's roc(direction = '<'), sklearn's \
                 roc_auc_score). NULL when a group is empty.",
                "auc(value, is_case)",
                "SELECT biomarker, auc(value, is_case) AS auc\nFROM measurements JOIN samples USING (sample_id)\nGROUP BY biomarker ORDER BY abs(auc - 0.5) DESC;",
            )
            .with_argument("value", value)
            .with_argument("is_case", label)
            .build(),
            RankStatistic::Bootstrap => doc(
                SECTION,
                "The AUC with a stratified percentile bootstrap interval, as pROC's \
                 ci.auc(method = 'bootstrap', boot.stratified = TRUE): each of `replicates` \
                 (default 2000, pROC's boot.n) resamples draws n_case cases from the cases \
                 and n_control controls from the controls with replacement; lower and \
                 upper are the (1 − level)/2 and (1 + level)/2 quantiles (R's type 7) of the \
                 resamples' AUCs; auc is the sample's own. Deterministic: the draws come \
                 from SplitMix64 seeded with `seed` (default 0) over the values in \
                 ascending order, so a seed gives the same interval however the rows are \
                 partitioned, in a cluster too; another seed gives another Monte-Carlo \
                 draw. R's random numbers differ, so pROC agrees within Monte-Carlo error \
                 (tested at 20,000 replicates). Cost: replicates × (n_case + n_control) \
                 draws per group. NULL when a group is empty.",
                "auc_ci_bootstrap(value, is_case [, level [, replicates [, seed]]])",
                "SELECT biomarker, auc_ci_bootstrap(m.value, s.is_case, 0.95, 2000, 42) AS ci\nFROM measurements m JOIN samples s USING (sample_id) GROUP BY biomarker;",
            )
            .with_argument("value", value)
            .with_argument("is_case", label)
            .with_argument("level", "Optional constant confidence level in (0, 1); default 0.95.")
            .with_argument(
                "replicates",
                "Optional constant integer, 1 to 1,000,000; default 2000.",
            )
            .with_argument("seed", "Optional constant integer; default 0.")
            .build(),
            RankStatistic::AucCi => doc(
                SECTION,
                "The AUC with DeLong's standard error and a Wald confidence interval clipped \
                 to [0, 1], as pROC's ci.auc(method = 'delong') does: se² = s²(V10)/n_case + \
                 s²(V01)/n_control from the placement values (midranks for ties; DeLong et al. \
                 1988, computed in O(n log n) as Sun & Xu 2014), interval auc ± z·se with z \
                 the (1 + level)/2 normal quantile. se, lower and upper are NULL when a group \
                 has a single value; all fields NULL when a group is empty.",
                "auc_ci(value, is_case [, level])",
                "SELECT biomarker, auc_ci(value, is_case)['lower'] AS lower\nFROM measurements JOIN samples USING (sample_id) GROUP BY biomarker;",
            )
            .with_argument("value", value)
            .with_argument("is_case", label)
            .with_argument(
                "level",
                "Optional constant confidence level in (0, 1); default 0.95.",
            )
            .build(),
            RankStatistic::Ks => doc(
                SECTION,
                "Two-sample Kolmogorov-Smirnov test of cases against controls, two-sided, as \
                 R's ks.test(cases, controls): d = the largest |F_case − F_control| over the \
                 pooled sample's distinct values (computed exactly from counts). p: 'exact' = \
                 the exact distribution given the ties (R ≥ 4.1's psmirnov; computed up to \
                 n_case · n_control = 10,000,000, NULL beyond; the tail is summed directly in \
                 double-double arithmetic, within 1e-12 relatively of the exact value however \
                 small, 0 below f64's range); 'asymptotic' = 1 − K(√(n_case \
                 n_control / (n_case + n_control)) · d), Kolmogorov's limit to double \
                 precision (R's C code truncates the series below 1 and can be up to 4e-5 \
                 lower there); 'auto' (default) = R's rule, exact when n_case · n_control < \
                 10,000. scipy's ks_2samp differs with ties (its exact method ignores them). \
                 All fields NULL when a group is empty.",
                "ks_test(value, is_case [, method])",
                "SELECT biomarker, ks_test(value, is_case)['p'] AS p\nFROM measurements JOIN samples USING (sample_id) GROUP BY biomarker;",
            )
            .with_argument("value", value)
            .with_argument("is_case", label)
            .with_argument(
                "method",
                "Optional constant: 'auto' (default), 'asymptotic' or 'exact'.",
            )
            .build(),
            RankStatistic::MannWhitney => doc(
                SECTION,
                "Mann-Whitney U (Wilcoxon rank-sum) test of cases against controls, two-sided. \
                 u = U of the cases (R's W with the cases first; u / (n_case · n_control) is \
                 the AUC). z = the normal approximation with the tie-corrected variance and \
                 a continuity correction of ½ towards 0 (positive when cases rank higher). p: \
                 'asymptotic' = 2 · P(Z ≥ |z|); 'exact' = 2 · P(U ≥ max(U, n_case·n_control − \
                 U)) from the exact null distribution, capped at 1; with ties, the exact \
                 distribution given the tied midranks, P(|R − E| ≥ |r − E|) over every \
                 choice of the cases among the pooled values (R the cases' rank sum, E = \
                 n_case(N + 1)/2), as exactRankTests::wilcox.exact (scipy's exact method \
                 ignores ties, R's wilcox.test falls back to the normal approximation). \
                 'auto' (default) = scipy's rule, exact when a group has at most 8 values \
                 and there are no ties. Without ties the exact distribution is computed up \
                 to n_case · n_control = 100,000 by counting arrangements in exact \
                 integers, with ties up to 10,000 (p NULL beyond, where scipy returns NaN); \
                 p is within 1e-12 relatively of the exact value down to the smallest, 2 / \
                 C(n_case + n_control, n_case). Matches \
                 scipy.stats.mannwhitneyu(cases, controls) \
                 and R wilcox.test(cases, controls, correct = TRUE). With correct = false \
                 the normal approximation has no continuity correction (z and an asymptotic \
                 p; the exact p is unchanged), as scipy's use_continuity = False and R's \
                 wilcox.test(correct = FALSE). z and p are NULL when every value is tied; \
                 all fields NULL when a group is empty.",
                "mann_whitney(value, is_case [, method [, correct]])",
                "SELECT biomarker, mann_whitney(value, is_case)['p'] AS p\nFROM measurements JOIN samples USING (sample_id) GROUP BY biomarker;",
            )
            .with_argument("value", value)
            .with_argument("is_case", label)
            .with_argument(
                "method",
                "Optional constant: 'auto' (default), 'asymptotic' or 'exact'.",
            )
            .with_argument(
                "correct",
                "Optional constant BOOLEAN: the continuity correction of the normal \
                 approximation (default true).",
            )
            .build(),
            RankStatistic::SampleSize => doc(
                SECTION,
                "How many samples a study needs to show that this ROC curve's AUC differs \
                 from 0.5: n_cases = ((z_α · √V₀ + z_β · √V) / (auc − ½))² with z_α = \
                 Φ⁻¹(1 − sig_level / 2), z_β = Φ⁻¹(power) and the Obuchowski-McClish \
                 variances of roc_power, keeping the group's case:control ratio \
                 (n_controls = n_cases · n_control / n_case). Matches R's \
                 pROC::power.roc.test(roc, power =, sig.level =) on roc(controls, cases, \
                 direction = '<'); like pROC the numbers are not rounded (round up to plan). \
                 Infinity when the AUC is 0.5; NULL when a group is empty.",
                "roc_sample_size(value, is_case, power [, sig_level])",
                "SELECT biomarker, roc_sample_size(value, is_case, 0.9)['n_cases'] AS cases_needed\nFROM measurements JOIN samples USING (sample_id) GROUP BY biomarker;",
            )
            .with_argument("value", value)
            .with_argument("is_case", label)
            .with_argument("power", "Constant: the power to reach, in (0, 1).")
            .with_argument(
                "sig_level",
                "Optional constant significance level in (0, 1); default 0.05 (two-sided).",
            )
            .build(),
        }
    }
}

const AUC_CI_FIELDS: [&str; 4] = ["auc", "se", "lower", "upper"];
const BOOTSTRAP_FIELDS: [&str; 3] = ["auc", "lower", "upper"];
const MANN_WHITNEY_FIELDS: [&str; 3] = ["u", "z", "p"];
const SAMPLE_SIZE_FIELDS: [&str; 2] = ["n_cases", "n_controls"];

/// The aggregate UDF of one rank statistic.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RankUdaf {
    statistic: RankStatistic,
    signature: Signature,
}

impl RankUdaf {
    /// The UDAF computing `statistic`.
    pub fn new(statistic: RankStatistic) -> Self {
        Self {
            statistic,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }

    /// Which statistic this computes.
    pub fn statistic(&self) -> RankStatistic {
        self.statistic
    }

    /// The optional third argument: mann_whitney's method or auc_ci's level.
    fn options(&self, args: &AccumulatorArgs) -> Result<Options> {
        let mut options = Options::default();
        if self.statistic == RankStatistic::SampleSize {
            let constant = |i: usize| -> Result<f64> {
                match args
                    .exprs
                    .get(i)
                    .and_then(|e| e.downcast_ref::<Literal>())
                    .map(Literal::value)
                {
                    Some(ScalarValue::Float64(Some(v))) if *v > 0.0 && *v < 1.0 => Ok(*v),
                    _ => plan_err!(
                        "roc_sample_size: power and sig_level must be constants in (0, 1)"
                    ),
                }
            };
            options.power = constant(2)?;
            if args.exprs.len() > 3 {
                options.sig_level = constant(3)?;
            }
            return Ok(options);
        }
        if self.statistic == RankStatistic::Bootstrap {
            let literal = |i: usize| {
                args.exprs
                    .get(i)
                    .and_then(|e| e.downcast_ref::<Literal>())
                    .map(Literal::value)
            };
            if args.exprs.len() > 2 {
                options.level = match literal(2) {
                    Some(ScalarValue::Float64(Some(l))) if *l > 0.0 && *l < 1.0 => *l,
                    _ => return plan_err!("auc_ci_bootstrap: level must be a constant in (0, 1)"),
                };
            }
            if args.exprs.len() > 3 {
                options.replicates = match literal(3) {
                    Some(ScalarValue::Int64(Some(b))) if (1..=MAX_REPLICATES).contains(b) => {
                        *b as usize
                    }
                    _ => {
                        return plan_err!(
                            "auc_ci_bootstrap: replicates must be a constant integer from 1 to {MAX_REPLICATES}"
                        );
                    }
                };
            }
            if args.exprs.len() > 4 {
                options.seed = match literal(4) {
                    Some(ScalarValue::Int64(Some(seed))) => *seed as u64,
                    _ => return plan_err!("auc_ci_bootstrap: seed must be a constant integer"),
                };
            }
            return Ok(options);
        }
        if self.statistic == RankStatistic::MannWhitney && args.exprs.len() > 3 {
            options.correct = match args.exprs[3].downcast_ref::<Literal>().map(Literal::value) {
                Some(ScalarValue::Boolean(Some(correct))) => *correct,
                _ => return plan_err!("mann_whitney: correct must be a constant true or false"),
            };
        }
        let Some(expr) = args.exprs.get(2) else {
            return Ok(options);
        };
        let value = expr.downcast_ref::<Literal>().map(Literal::value);
        match (self.statistic, value) {
            (
                RankStatistic::MannWhitney,
                Some(
                    ScalarValue::Utf8(Some(s))
                    | ScalarValue::LargeUtf8(Some(s))
                    | ScalarValue::Utf8View(Some(s)),
                ),
            ) => options.method = parse_method(self.name(), s)?,
            (
                RankStatistic::Ks,
                Some(
                    ScalarValue::Utf8(Some(s))
                    | ScalarValue::LargeUtf8(Some(s))
                    | ScalarValue::Utf8View(Some(s)),
                ),
            ) => options.method = parse_method(self.name(), s)?,
            (RankStatistic::MannWhitney | RankStatistic::Ks, _) => {
                return plan_err!("{}: method must be a constant string", self.name());
            }
            (RankStatistic::AucCi, Some(ScalarValue::Float64(Some(level))))
                if *level > 0.0 && *level < 1.0 =>
            {
                options.level = *level
            }
            (RankStatistic::AucCi, _) => {
                return plan_err!("auc_ci: level must be a constant in (0, 1)");
            }
            (RankStatistic::Auc, _) => return plan_err!("auc takes 2 arguments"),
            (RankStatistic::SampleSize | RankStatistic::Bootstrap, _) => {}
        }
        Ok(options)
    }
}

impl RankUdaf {
    fn evaluate(&self, args: &AccumulatorArgs) -> Result<Evaluate<GroupValues>> {
        let (statistic, options) = (self.statistic, self.options(args)?);
        Ok(Evaluate::new(move |groups: &mut [GroupValues]| {
            groups.iter_mut().for_each(GroupValues::compact);
            evaluate_groups(statistic, options, groups)
        }))
    }
}

/// Every function of the family, for registration.
pub fn all() -> Vec<Arc<AggregateUDF>> {
    RankStatistic::ALL
        .iter()
        .map(|s| Arc::new(AggregateUDF::from(RankUdaf::new(*s))))
        .collect()
}

impl AggregateUDFImpl for RankUdaf {
    fn name(&self) -> &str {
        self.statistic.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let name = self.name();
        match (self.statistic, arg_types) {
            (RankStatistic::MannWhitney, [value, label, method, correct]) => {
                if !matches!(
                    method,
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                ) {
                    return plan_err!("{name}: method must be a string, got {method}");
                }
                if !matches!(correct, DataType::Boolean) {
                    return plan_err!("{name}: correct must be BOOLEAN, got {correct}");
                }
                let mut types = coerce_value_and_label(name, &[value.clone(), label.clone()])?;
                types.extend([DataType::Utf8, DataType::Boolean]);
                Ok(types)
            }
            (RankStatistic::MannWhitney | RankStatistic::Ks, [value, label, method]) => {
                if !matches!(
                    method,
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                ) {
                    return plan_err!("{name}: method must be a string, got {method}");
                }
                let mut types = coerce_value_and_label(name, &[value.clone(), label.clone()])?;
                types.push(DataType::Utf8);
                Ok(types)
            }
            (RankStatistic::SampleSize, [value, label, rest @ ..])
                if (1..=2).contains(&rest.len()) =>
            {
                if let Some(t) = rest.iter().find(|t| !t.is_numeric()) {
                    return plan_err!("{name}: power and sig_level must be numeric, got {t}");
                }
                let mut types = coerce_value_and_label(name, &[value.clone(), label.clone()])?;
                types.extend(rest.iter().map(|_| DataType::Float64));
                Ok(types)
            }
            (RankStatistic::SampleSize, _) => plan_err!(
                "{name}(value, is_case, power [, sig_level]) takes 3 or 4 arguments, got {}",
                arg_types.len()
            ),
            (RankStatistic::Bootstrap, [value, label, rest @ ..]) if rest.len() <= 3 => {
                let mut types = coerce_value_and_label(name, &[value.clone(), label.clone()])?;
                for (t, (what, target)) in rest.iter().zip([
                    ("level", DataType::Float64),
                    ("replicates", DataType::Int64),
                    ("seed", DataType::Int64),
                ]) {
                    let ok = if target == DataType::Int64 {
                        t.is_integer()
                    } else {
                        t.is_numeric()
                    };
                    if !ok {
                        return plan_err!("{name}: {what} must be {target}, got {t}");
                    }
                    types.push(target);
                }
                Ok(types)
            }
            (RankStatistic::Bootstrap, _) => plan_err!(
                "{name}(value, is_case [, level [, replicates [, seed]]]) takes 2 to 5 arguments, got {}",
                arg_types.len()
            ),
            (RankStatistic::AucCi, [value, label, level]) => {
                if !level.is_numeric() {
                    return plan_err!("{name}: level must be numeric, got {level}");
                }
                let mut types = coerce_value_and_label(name, &[value.clone(), label.clone()])?;
                types.push(DataType::Float64);
                Ok(types)
            }
            _ => coerce_value_and_label(name, arg_types),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.statistic {
            RankStatistic::Auc => DataType::Float64,
            RankStatistic::MannWhitney => DataType::Struct(float_fields(&MANN_WHITNEY_FIELDS)),
            RankStatistic::AucCi => DataType::Struct(float_fields(&AUC_CI_FIELDS)),
            RankStatistic::Ks => DataType::Struct(float_fields(&KS_FIELDS)),
            RankStatistic::SampleSize => DataType::Struct(float_fields(&SAMPLE_SIZE_FIELDS)),
            RankStatistic::Bootstrap => DataType::Struct(float_fields(&BOOTSTRAP_FIELDS)),
        })
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(StateAccumulator::new(self.evaluate(&args)?)))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(GroupValues::state_fields(args.name))
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
        Some(self.statistic.documentation())
    }
}

/// The finite values of one group's cases and controls, as tallies: sorted distinct values
/// with counts (see [`Tally`]), so a group holds about as much as it has distinct values.
/// Between partitions the state is four lists: the values and counts of the cases and of the
/// controls (counts empty when every count is 1).
#[derive(Debug, Default, Clone)]
pub(crate) struct GroupValues {
    pub(crate) case: Tally,
    pub(crate) control: Tally,
}

impl GroupValues {
    /// Merges every pending value, so that the tallies' runs hold everything.
    pub(crate) fn compact(&mut self) {
        self.case.compact();
        self.control.compact();
    }

    /// Adds a finite value to the cases' or the controls' tally; returns by how many bytes the
    /// heap grew (or shrank, when compacting).
    pub(crate) fn push(&mut self, x: f64, is_case: bool) -> isize {
        self.tally_mut(is_case).push(x)
    }

    /// The tally of the cases (`case`) or of the controls.
    pub(crate) fn tally(&self, case: bool) -> &Tally {
        if case { &self.case } else { &self.control }
    }

    fn tally_mut(&mut self, case: bool) -> &mut Tally {
        if case {
            &mut self.case
        } else {
            &mut self.control
        }
    }

    pub(crate) fn bytes(&self) -> usize {
        self.case.heap_bytes() + self.control.heap_bytes()
    }

    /// The four state lists (case values and counts, control values and counts).
    pub(crate) fn state_lists(states: &[ArrayRef]) -> Result<[&ListArray; 4]> {
        let [case_values, case_counts, control_values, control_counts, ..] = states else {
            return exec_err!("expected 4 state arrays, got {}", states.len());
        };
        Ok([case_values, case_counts, control_values, control_counts].map(|a| a.as_list::<i32>()))
    }

    /// Adds row `row` of partial states ([`GroupValues::state_lists`]); a NULL row adds
    /// nothing.
    pub(crate) fn merge_row(&mut self, lists: &[&ListArray; 4], row: usize) -> Result<()> {
        if lists.iter().any(|l| l.is_null(row)) {
            return Ok(());
        }
        for (tally, values, counts) in [
            (&mut self.case, lists[0].value(row), lists[1].value(row)),
            (&mut self.control, lists[2].value(row), lists[3].value(row)),
        ] {
            let values = values.as_primitive::<Float64Type>().values();
            let counts = counts.as_primitive::<UInt64Type>().values();
            if counts.is_empty() {
                for &x in values {
                    tally.push(x);
                }
            } else if counts.len() == values.len() {
                for (&x, &c) in values.iter().zip(counts.iter()) {
                    tally.push_run(x, c);
                }
            } else {
                return exec_err!(
                    "malformed rank state: {} values, {} counts",
                    values.len(),
                    counts.len()
                );
            }
        }
        Ok(())
    }

    /// The states of `groups` as the four state lists, one row per group.
    pub(crate) fn arrays<'a>(groups: impl Iterator<Item = &'a GroupValues>) -> Vec<ArrayRef> {
        // Each tally as runs: its compacted part, then its pending values and runs.
        let mut columns: [(ListBuilder<Float64Builder>, ListBuilder<UInt64Builder>); 2] =
            std::array::from_fn(|_| {
                (
                    ListBuilder::new(Float64Builder::new()),
                    ListBuilder::new(UInt64Builder::new()),
                )
            });
        for g in groups {
            for (tally, (values, counts)) in
                [&g.case, &g.control].into_iter().zip(columns.iter_mut())
            {
                let runs = tally.all_runs();
                let ones = runs.iter().all(|&(_, c)| c == 1);
                for &(x, c) in &runs {
                    values.values().append_value(x);
                    if !ones {
                        counts.values().append_value(c);
                    }
                }
                values.append(true);
                counts.append(true);
            }
        }
        let [
            (mut case_values, mut case_counts),
            (mut control_values, mut control_counts),
        ] = columns;
        vec![
            Arc::new(case_values.finish()),
            Arc::new(case_counts.finish()),
            Arc::new(control_values.finish()),
            Arc::new(control_counts.finish()),
        ]
    }

    /// The state fields of an aggregate named `name` that keeps these values.
    pub(crate) fn state_fields(name: &str) -> Vec<FieldRef> {
        let list = |t: DataType| DataType::List(Arc::new(Field::new_list_field(t, true)));
        [
            ("case_values", DataType::Float64),
            ("case_counts", DataType::UInt64),
            ("control_values", DataType::Float64),
            ("control_counts", DataType::UInt64),
        ]
        .into_iter()
        .map(|(n, t)| Arc::new(Field::new(format_state_name(name, n), list(t), true)))
        .collect()
    }
}

impl GroupState for GroupValues {
    fn update(
        groups: &mut [Self],
        values: &[ArrayRef],
        filter: Option<&BooleanArray>,
        group: impl Fn(usize) -> usize,
    ) -> Result<isize> {
        let mut grew = 0isize;
        for_each_row(values, filter, |row, x, is_case| {
            grew += groups[group(row)].push(x, is_case);
        })?;
        Ok(grew)
    }

    fn merge(
        groups: &mut [Self],
        states: &[ArrayRef],
        group: impl Fn(usize) -> usize,
    ) -> Result<isize> {
        let lists = GroupValues::state_lists(states)?;
        let mut grew = 0isize;
        for row in 0..lists[0].len() {
            let g = &mut groups[group(row)];
            let before = g.bytes() as isize;
            g.merge_row(&lists, row)?;
            grew += g.bytes() as isize - before;
        }
        Ok(grew)
    }

    const RETRACTS: bool = true;

    fn retract(
        groups: &mut [Self],
        values: &[ArrayRef],
        group: impl Fn(usize) -> usize,
    ) -> Result<isize> {
        let mut grew = 0isize;
        let mut missing = false;
        for_each_row(values, None, |row, x, is_case| {
            let g = &mut groups[group(row)];
            let before = g.bytes() as isize;
            missing |= !g.tally_mut(is_case).remove(x);
            grew += g.bytes() as isize - before;
        })?;
        if missing {
            return exec_err!("a window frame removed a value its state did not hold");
        }
        Ok(grew)
    }

    fn to_arrays(groups: &[Self]) -> Result<Vec<ArrayRef>> {
        Ok(GroupValues::arrays(groups.iter()))
    }

    fn heap_bytes(&self) -> usize {
        self.bytes()
    }
}

pub(crate) fn evaluate_groups(
    statistic: RankStatistic,
    options: Options,
    groups: &mut [GroupValues],
) -> Result<ArrayRef> {
    if statistic == RankStatistic::Ks {
        return ks_array(options, groups);
    }
    if statistic == RankStatistic::Bootstrap {
        return float_struct(
            &BOOTSTRAP_FIELDS,
            groups.iter().map(|g| {
                let auc = rank_sums(&g.case, &g.control).auc()?;
                let (lower, upper) = auc_bootstrap(
                    &g.case,
                    &g.control,
                    options.replicates,
                    options.seed,
                    options.level,
                )?;
                Some([Some(auc), Some(lower), Some(upper)])
            }),
        );
    }
    let with_delong = statistic == RankStatistic::AucCi;
    let summaries: Vec<RankSummary> = groups
        .iter()
        .map(|g| {
            if with_delong {
                rank_sums_and_delong(&g.case, &g.control)
            } else {
                (rank_sums(&g.case, &g.control), None)
            }
        })
        .collect();
    evaluate_summaries(statistic, options, &summaries, groups)
}

/// U with DeLong's variance (when asked for) of one group.
pub(crate) type RankSummary = (RankSums, Option<f64>);

/// The rank summaries of compacted groups with DeLong's variance, for callers that evaluate
/// several rank statistics from one state (`shared`).
pub(crate) fn summaries(groups: &[GroupValues]) -> Vec<RankSummary> {
    groups
        .iter()
        .map(|g| rank_sums_and_delong(&g.case, &g.control))
        .collect()
}

/// `ks_test` of each compacted group.
pub(crate) fn ks_array(options: Options, groups: &[GroupValues]) -> Result<ArrayRef> {
    let method = options.method;
    float_struct(
        &KS_FIELDS,
        groups.iter().map(|g| {
            (!g.case.is_empty() && !g.control.is_empty()).then(|| {
                let r = ks_test(&g.case, &g.control, method);
                [Some(r.d), r.p]
            })
        }),
    )
}

/// A rank statistic other than KS from the groups' summaries (DeLong's variance needed for
/// `auc_ci`; the groups' values for the exact Mann-Whitney p with ties).
pub(crate) fn evaluate_summaries(
    statistic: RankStatistic,
    options: Options,
    summaries: &[RankSummary],
    groups: &[GroupValues],
) -> Result<ArrayRef> {
    match statistic {
        RankStatistic::Auc => {
            return Ok(Arc::new(Float64Array::from_iter(
                summaries.iter().map(|(s, _)| s.auc()),
            )));
        }
        RankStatistic::AucCi => return auc_ci_array(summaries, options.level),
        RankStatistic::SampleSize => {
            return float_struct(
                &SAMPLE_SIZE_FIELDS,
                summaries.iter().map(|(s, _)| {
                    let auc = s.auc()?;
                    let kappa = s.n_control as f64 / s.n_case as f64;
                    let n = roc_sample_size(auc, kappa, options.power, options.sig_level);
                    Some([Some(n), Some(kappa * n)])
                }),
            );
        }
        RankStatistic::MannWhitney | RankStatistic::Ks | RankStatistic::Bootstrap => {}
    }
    let method = options.method;
    float_struct(
        &MANN_WHITNEY_FIELDS,
        summaries.iter().zip(groups).map(|((s, _), g)| {
            if s.n_case == 0 || s.n_control == 0 {
                return None;
            }
            let asymptotic = s.asymptotic_corrected(options.correct);
            let exact = match method {
                PValueMethod::Exact => true,
                PValueMethod::Asymptotic => false,
                PValueMethod::Auto => auto_uses_exact(s),
            };
            let p = if exact && s.ties > 0.0 {
                exact_p_given_ties(&g.case, &g.control)
            } else if exact {
                s.exact_p()
            } else {
                asymptotic.map(|(_, p, _)| p)
            };
            Some([Some(s.u), asymptotic.map(|(z, _, _)| z), p])
        }),
    )
}

/// {auc, se, lower, upper} per group, from its summary.
fn auc_ci_array(summaries: &[RankSummary], level: f64) -> Result<ArrayRef> {
    let z = normal_quantile(0.5 + level / 2.0);
    float_struct(
        &AUC_CI_FIELDS,
        summaries.iter().map(|(s, variance)| {
            let auc = s.auc()?;
            let se = variance.map(|v| v.max(0.0).sqrt());
            let interval = se.map(|se| {
                (
                    (auc - z * se).clamp(0.0, 1.0),
                    (auc + z * se).clamp(0.0, 1.0),
                )
            });
            Some([Some(auc), se, interval.map(|i| i.0), interval.map(|i| i.1)])
        }),
    )
}
