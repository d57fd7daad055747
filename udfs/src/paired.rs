//! Paired designs: `paired_t_test(diff)` and
//! `wilcoxon_signed_rank(diff [, method [, correct [, zero_method]]])`.
//!
//! The argument is the within-pair difference (case minus its matched control, or after minus
//! before), so a matched design is `paired_t_test(case_value - control_value)` over the pairs.
//! NULL, NaN and infinite differences are skipped.
//!
//! `paired_t_test` keeps (n, mean, M2), which merges exactly; `wilcoxon_signed_rank` ranks
//! the differences, so it keeps them (a LIST<DOUBLE> between partitions).

use std::mem::size_of;
use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Builder, ListBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, GroupsAccumulator, Signature,
    Volatility,
};

use crate::docs::{SECTION, doc};
use crate::kernels::PValueMethod;
use crate::kernels::moments::{Moments, one_sample};
use crate::kernels::signed_rank::{ZeroMethod, signed_rank};
use crate::moments::{moments_columns, read_moments};
use crate::state::{
    Evaluate, GroupState, StateAccumulator, StateGroupsAccumulator, float_fields, float_struct,
    literal, passes,
};

/// Which paired test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PairedTest {
    /// `paired_t_test(diff)` → {statistic, p}
    TTest,
    /// `wilcoxon_signed_rank(diff [, method [, correct [, zero_method]]])` → {statistic, p}
    SignedRank,
}

const FIELDS: [&str; 2] = ["statistic", "p"];

impl PairedTest {
    /// Every test of the family.
    pub const ALL: [PairedTest; 2] = [PairedTest::TTest, PairedTest::SignedRank];

    /// The SQL name.
    pub fn name(self) -> &'static str {
        match self {
            PairedTest::TTest => "paired_t_test",
            PairedTest::SignedRank => "wilcoxon_signed_rank",
        }
    }

    fn documentation(self) -> &'static Documentation {
        static DOCS: OnceLock<[Documentation; 2]> = OnceLock::new();
        let docs = DOCS.get_or_init(|| PairedTest::ALL.map(PairedTest::build_doc));
        match self {
            PairedTest::TTest => &docs[0],
            PairedTest::SignedRank => &docs[1],
        }
    }

    fn build_doc(self) -> Documentation {
        let diff =
            "The within-pair difference (numeric). NULL, NaN and infinite values are skipped.";
        match self {
            PairedTest::TTest => doc(
                SECTION,
                "Paired t test of the within-pair differences against 0, two-sided: \
                 statistic = mean(diff) / (sd(diff) / sqrt(n)) with n − 1 degrees of freedom. \
                 Matches scipy.stats.ttest_1samp(diff, 0) and R t.test(x, y, paired = TRUE). \
                 NULL with fewer than 2 differences or when all differences are equal.",
                "paired_t_test(diff)",
                "SELECT biomarker, paired_t_test(after - before)['p'] AS p\nFROM visits GROUP BY biomarker;",
            )
            .with_argument("diff", diff)
            .build(),
            PairedTest::SignedRank => doc(
                SECTION,
                "Wilcoxon signed-rank test of the within-pair differences against 0, \
                 two-sided, as R's wilcox.test(diff, mu = 0, correct = TRUE): zero \
                 differences are dropped, |diff| ranked with midranks for ties, statistic = \
                 V, the sum of the ranks of the positive differences (R's V; scipy reports \
                 min(V⁺, V⁻) instead). 'exact' uses the exact null distribution of V given \
                 the ties and zeros (every sign pattern of the non-zero differences' \
                 midranks equally likely), as exactRankTests::wilcox.exact; R's wilcox.test \
                 falls back to the normal approximation there. \
                 'asymptotic': z = (V − n(n+1)/4 − ½·sign) / σ with the tie-corrected σ² = \
                 n(n+1)(2n+1)/24 − Σ(t³ − t)/48. 'auto' (default) is R's rule: exact below \
                 50 non-zero differences without ties or zeros. The exact distribution is \
                 computed up to 1,000 differences (p NULL beyond; R's overflows from about \
                 1,040), its tail summed directly from counts, within 1e-12 relatively of the \
                 exact value down to the smallest, 2 / 2ⁿ. Matches R; scipy.stats.wilcoxon's p agrees where both use the same \
                 method. correct = false drops the continuity correction (R's correct = \
                 FALSE). zero_method 'pratt' ranks the zeros with the others (they take the \
                 smallest ranks) and then drops them: V sums the positive differences' ranks \
                 among all, and the normal approximation's mean and variance lose the zeros' \
                 share, as scipy.stats.wilcoxon(zero_method = 'pratt'); the exact p then \
                 flips the signs of the non-zero differences' Pratt ranks. NULL when every \
                 difference is 0.",
                "wilcoxon_signed_rank(diff [, method [, correct [, zero_method]]])",
                "SELECT biomarker, wilcoxon_signed_rank(case_value - control_value)['p'] AS p\nFROM matched_pairs GROUP BY biomarker;",
            )
            .with_argument("diff", diff)
            .with_argument(
                "method",
                "Optional constant: 'auto' (default), 'exact' or 'asymptotic'.",
            )
            .with_argument(
                "correct",
                "Optional constant BOOLEAN: the continuity correction (default true).",
            )
            .with_argument(
                "zero_method",
                "Optional constant: 'wilcox' (default; zeros dropped, R) or 'pratt'.",
            )
            .build(),
        }
    }
}

/// The aggregate UDF of one paired test.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PairedUdaf {
    test: PairedTest,
    signature: Signature,
}

impl PairedUdaf {
    /// The UDAF computing `test`.
    pub fn new(test: PairedTest) -> Self {
        Self {
            test,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }

    fn method(&self, args: &AccumulatorArgs) -> Result<PValueMethod> {
        if args.exprs.len() < 2 {
            return Ok(PValueMethod::Auto);
        }
        match literal(args, 1) {
            Some(
                ScalarValue::Utf8(Some(s))
                | ScalarValue::LargeUtf8(Some(s))
                | ScalarValue::Utf8View(Some(s)),
            ) => match s.to_ascii_lowercase().as_str() {
                "auto" => Ok(PValueMethod::Auto),
                "exact" => Ok(PValueMethod::Exact),
                "asymptotic" => Ok(PValueMethod::Asymptotic),
                other => plan_err!(
                    "wilcoxon_signed_rank: method must be 'auto', 'exact' or 'asymptotic', got '{other}'"
                ),
            },
            _ => plan_err!("wilcoxon_signed_rank: method must be a constant string"),
        }
    }

    fn t_test() -> Evaluate<Moments> {
        Evaluate::new(|groups: &mut [Moments]| {
            float_struct(
                &FIELDS,
                groups
                    .iter()
                    .map(|m| one_sample(m).map(|t| [Some(t.t), Some(t.p)])),
            )
        })
    }

    fn signed_rank((method, correct, zeros): (PValueMethod, bool, ZeroMethod)) -> Evaluate<Diffs> {
        Evaluate::new(move |groups: &mut [Diffs]| {
            float_struct(
                &FIELDS,
                groups.iter_mut().map(|g| {
                    signed_rank(&mut g.0, method, correct, zeros).map(|r| [Some(r.statistic), r.p])
                }),
            )
        })
    }

    /// The method, continuity correction and zero method of a signed-rank call.
    fn signed_rank_options(
        &self,
        args: &AccumulatorArgs,
    ) -> Result<(PValueMethod, bool, ZeroMethod)> {
        let method = self.method(args)?;
        let correct = crate::state::flag_argument(self.name(), "correct", args, 2, true)?;
        let zeros = if args.exprs.len() > 3 {
            match literal(args, 3) {
                Some(
                    ScalarValue::Utf8(Some(s))
                    | ScalarValue::LargeUtf8(Some(s))
                    | ScalarValue::Utf8View(Some(s)),
                ) => match ZeroMethod::parse(&s) {
                    Some(z) => z,
                    None => {
                        return plan_err!(
                            "wilcoxon_signed_rank: zero_method must be 'wilcox' or 'pratt', got '{s}'"
                        );
                    }
                },
                _ => {
                    return plan_err!(
                        "wilcoxon_signed_rank: zero_method must be a constant string"
                    );
                }
            }
        } else {
            ZeroMethod::Wilcox
        };
        Ok((method, correct, zeros))
    }
}

/// Every function of the family, for registration.
pub fn all() -> Vec<Arc<AggregateUDF>> {
    PairedTest::ALL
        .iter()
        .map(|t| Arc::new(AggregateUDF::from(PairedUdaf::new(*t))))
        .collect()
}

impl AggregateUDFImpl for PairedUdaf {
    fn name(&self) -> &str {
        self.test.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let name = self.name();
        if let Some(d) = arg_types.first()
            && !(d.is_numeric() || d.is_null())
        {
            return plan_err!("{name}: diff must be numeric, got {d}");
        }
        match (self.test, arg_types) {
            (_, [_]) => Ok(vec![DataType::Float64]),
            (PairedTest::SignedRank, [_, rest @ ..]) if rest.len() <= 3 => {
                let text = |t: &DataType| {
                    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
                };
                let mut types = vec![DataType::Float64];
                for (i, t) in rest.iter().enumerate() {
                    let (what, ok, target) = match i {
                        0 => ("method must be a string", text(t), DataType::Utf8),
                        1 => (
                            "correct must be BOOLEAN",
                            matches!(t, DataType::Boolean),
                            DataType::Boolean,
                        ),
                        _ => ("zero_method must be a string", text(t), DataType::Utf8),
                    };
                    if !ok {
                        return plan_err!("{name}: {what}, got {t}");
                    }
                    types.push(target);
                }
                Ok(types)
            }
            (PairedTest::SignedRank, _) => plan_err!(
                "{name}(diff [, method [, correct [, zero_method]]]) takes 1 to 4 arguments, got {}",
                arg_types.len()
            ),
            (PairedTest::TTest, _) => {
                plan_err!("{name}(diff) takes 1 argument, got {}", arg_types.len())
            }
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(float_fields(&FIELDS)))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(match self.test {
            PairedTest::TTest => Box::new(StateAccumulator::new(Self::t_test())),
            PairedTest::SignedRank => Box::new(StateAccumulator::new(Self::signed_rank(
                self.signed_rank_options(&args)?,
            ))),
        })
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let field =
            |n: &str, t: DataType| Arc::new(Field::new(format_state_name(args.name, n), t, true));
        Ok(match self.test {
            PairedTest::TTest => vec![
                field("n", DataType::UInt64),
                field("mean", DataType::Float64),
                field("mean_lo", DataType::Float64),
                field("m2", DataType::Float64),
            ],
            PairedTest::SignedRank => vec![field(
                "diffs",
                DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))),
            )],
        })
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(match self.test {
            PairedTest::TTest => Box::new(StateGroupsAccumulator::new(Self::t_test())),
            PairedTest::SignedRank => Box::new(StateGroupsAccumulator::new(Self::signed_rank(
                self.signed_rank_options(&args)?,
            ))),
        })
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(self.test.documentation())
    }
}

/// Calls `f(row, diff)` for every finite, non-NULL difference that passes the filter.
fn for_each_diff(
    values: &[ArrayRef],
    filter: Option<&BooleanArray>,
    mut f: impl FnMut(usize, f64),
) -> Result<()> {
    let Some(diff) = values.first() else {
        return exec_err!("missing the diff argument");
    };
    let diff = diff.as_primitive::<Float64Type>();
    for (row, x) in diff.iter().enumerate() {
        if let Some(x) = x.filter(|x| x.is_finite() && passes(filter, row)) {
            f(row, x);
        }
    }
    Ok(())
}

impl GroupState for Moments {
    fn update(
        groups: &mut [Self],
        values: &[ArrayRef],
        filter: Option<&BooleanArray>,
        group: impl Fn(usize) -> usize,
    ) -> Result<isize> {
        for_each_diff(values, filter, |row, x| groups[group(row)].push(x))?;
        Ok(0)
    }

    const RETRACTS: bool = true;

    fn retract(
        groups: &mut [Self],
        values: &[ArrayRef],
        group: impl Fn(usize) -> usize,
    ) -> Result<isize> {
        for_each_diff(values, None, |row, x| groups[group(row)].remove(x))?;
        Ok(0)
    }

    fn merge(
        groups: &mut [Self],
        states: &[ArrayRef],
        group: impl Fn(usize) -> usize,
    ) -> Result<isize> {
        if states.len() != 4 {
            return exec_err!("expected 4 moment state arrays, got {}", states.len());
        }
        for row in 0..states[0].len() {
            if let Some(m) = read_moments(states, row) {
                groups[group(row)].merge(&m);
            }
        }
        Ok(0)
    }

    fn to_arrays(groups: &[Self]) -> Result<Vec<ArrayRef>> {
        Ok(moments_columns(groups.iter().copied()).to_vec())
    }
}

/// The finite differences of one group.
#[derive(Debug, Default, Clone)]
pub struct Diffs(Vec<f64>);

impl GroupState for Diffs {
    fn update(
        groups: &mut [Self],
        values: &[ArrayRef],
        filter: Option<&BooleanArray>,
        group: impl Fn(usize) -> usize,
    ) -> Result<isize> {
        let mut grew = 0;
        for_each_diff(values, filter, |row, x| {
            let v = &mut groups[group(row)].0;
            let before = v.capacity();
            v.push(x);
            grew += (v.capacity() - before) * size_of::<f64>();
        })?;
        Ok(grew as isize)
    }

    const RETRACTS: bool = true;

    fn retract(
        groups: &mut [Self],
        values: &[ArrayRef],
        group: impl Fn(usize) -> usize,
    ) -> Result<isize> {
        let mut missing = false;
        for_each_diff(values, None, |row, x| {
            let v = &mut groups[group(row)].0;
            match v.iter().position(|&d| d == x) {
                Some(at) => {
                    v.swap_remove(at);
                }
                None => missing = true,
            }
        })?;
        if missing {
            return exec_err!("a window frame removed a difference its state did not hold");
        }
        Ok(0)
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
            let v = &mut groups[group(row)].0;
            let before = v.capacity();
            v.extend_from_slice(values.as_primitive::<Float64Type>().values());
            grew += (v.capacity() - before) * size_of::<f64>();
        }
        Ok(grew as isize)
    }

    fn to_arrays(groups: &[Self]) -> Result<Vec<ArrayRef>> {
        let total = groups.iter().map(|g| g.0.len()).sum();
        let mut builder =
            ListBuilder::with_capacity(Float64Builder::with_capacity(total), groups.len());
        for g in groups {
            builder.values().append_slice(&g.0);
            builder.append(true);
        }
        Ok(vec![Arc::new(builder.finish())])
    }

    fn heap_bytes(&self) -> usize {
        self.0.capacity() * size_of::<f64>()
    }
}
