//! Binary exposure: `odds_ratio`, `fisher_exact`, `chi2_test`, `mcnemar` (one 2×2 table per
//! group), `cmh_test` and `breslow_day` (one 2×2 table per stratum).
//!
//! The state is counts, so partial states merge exactly in any order. Rows with a NULL
//! exposure, label or stratum are skipped. The kernels are in
//! [`crate::kernels::contingency`].

use std::collections::HashMap;
use std::mem::size_of;
use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, ListBuilder, StringBuilder, UInt64Array, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, UInt64Type};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, GroupsAccumulator, Signature,
    Volatility,
};

use crate::docs::{SECTION, doc};
use crate::kernels::contingency::{
    Alternative, Table2x2, breslow_day, chi2_2x2, cmh, cmh_exact, fisher_exact, mcnemar,
    odds_ratio_woolf,
};
use crate::state::{
    Evaluate, GroupState, StateAccumulator, StateGroupsAccumulator, flag_argument, float_fields,
    float_struct, level_argument, literal, passes,
};

/// Which test of the family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TableTest {
    /// `odds_ratio(exposed, is_case [, level])` → {odds_ratio, lower, upper}
    OddsRatio,
    /// `fisher_exact(exposed, is_case [, level [, alternative]])` → {odds_ratio, lower, upper, p}
    Fisher,
    /// `chi2_test(exposed, is_case [, yates])` → {chi2, p}
    Chi2,
    /// `mcnemar(case_exposed, control_exposed [, correct])` → {chi2, p}
    McNemar,
    /// `cmh_test(exposed, is_case, stratum [, correct])` → {chi2, p, odds_ratio, lower, upper}
    Cmh,
    /// `breslow_day(exposed, is_case, stratum [, tarone])` → {chi2, df, p}
    BreslowDay,
    /// `cmh_exact(exposed, is_case, stratum [, level])` → {odds_ratio, lower, upper, p}
    CmhExact,
}

const OR_FIELDS: [&str; 3] = ["odds_ratio", "lower", "upper"];
const FISHER_FIELDS: [&str; 4] = ["odds_ratio", "lower", "upper", "p"];
const CHI2_FIELDS: [&str; 2] = ["chi2", "p"];
const CMH_FIELDS: [&str; 5] = ["chi2", "p", "odds_ratio", "lower", "upper"];
const BD_FIELDS: [&str; 3] = ["chi2", "df", "p"];

impl TableTest {
    /// Every test of the family.
    pub const ALL: [TableTest; 7] = [
        TableTest::OddsRatio,
        TableTest::Fisher,
        TableTest::Chi2,
        TableTest::McNemar,
        TableTest::Cmh,
        TableTest::BreslowDay,
        TableTest::CmhExact,
    ];

    /// The SQL name.
    pub fn name(self) -> &'static str {
        match self {
            TableTest::OddsRatio => "odds_ratio",
            TableTest::Fisher => "fisher_exact",
            TableTest::Chi2 => "chi2_test",
            TableTest::McNemar => "mcnemar",
            TableTest::Cmh => "cmh_test",
            TableTest::BreslowDay => "breslow_day",
            TableTest::CmhExact => "cmh_exact",
        }
    }

    /// Whether the state is one 2×2 table per stratum.
    fn stratified(self) -> bool {
        matches!(
            self,
            TableTest::Cmh | TableTest::BreslowDay | TableTest::CmhExact
        )
    }

    fn field_names(self) -> &'static [&'static str] {
        match self {
            TableTest::OddsRatio => &OR_FIELDS,
            TableTest::Fisher | TableTest::CmhExact => &FISHER_FIELDS,
            TableTest::Chi2 | TableTest::McNemar => &CHI2_FIELDS,
            TableTest::Cmh => &CMH_FIELDS,
            TableTest::BreslowDay => &BD_FIELDS,
        }
    }

    /// The names of the two BOOLEAN arguments.
    fn boolean_arguments(self) -> [&'static str; 2] {
        match self {
            TableTest::McNemar => ["case_exposed", "control_exposed"],
            _ => ["exposed", "is_case"],
        }
    }

    fn documentation(self) -> &'static Documentation {
        static DOCS: OnceLock<Vec<Documentation>> = OnceLock::new();
        let docs = DOCS.get_or_init(|| TableTest::ALL.iter().map(|t| t.build_doc()).collect());
        let index = TableTest::ALL.iter().position(|t| *t == self).unwrap_or(0);
        &docs[index]
    }

    fn build_doc(self) -> Documentation {
        let exposed = "BOOLEAN exposure (true = exposed). Rows with a NULL exposure are skipped.";
        let label = "BOOLEAN label: true for cases, false for controls. Rows with a NULL label are skipped.";
        let level = "Optional constant confidence level in (0, 1); default 0.95.";
        let example = |call: &str| {
            format!(
                "SELECT site, {call}\nFROM (SELECT s.site, s.is_case, m.value > 30 AS exposed\n      FROM measurements m JOIN samples s USING (sample_id)\n      WHERE m.biomarker = 'ferritin') t\nGROUP BY site;"
            )
        };
        match self {
            TableTest::OddsRatio => doc(
                SECTION,
                "Sample odds ratio of exposure in cases against controls, a·d / (b·c) with a = \
                 exposed cases, b = unexposed cases, c = exposed controls, d = unexposed \
                 controls, and Woolf's (logit) interval exp(ln OR ± z·√(1/a + 1/b + 1/c + \
                 1/d)). Matches statsmodels Table2x2.oddsratio_confint(method = 'normal'). \
                 With a zero cell the estimate is 0 or Infinity and the interval NULL (no \
                 continuity correction is added); everything is NULL when a·d = b·c = 0.",
                "odds_ratio(exposed, is_case [, level])",
                &example("odds_ratio(exposed, is_case)['odds_ratio'] AS odds_ratio"),
            )
            .with_argument("exposed", exposed)
            .with_argument("is_case", label)
            .with_argument("level", level)
            .build(),
            TableTest::Fisher => doc(
                SECTION,
                "Fisher's exact test of the 2×2 table as R's fisher.test: the conditional \
                 maximum-likelihood odds ratio (noncentral hypergeometric), its exact \
                 interval, and the two-sided p-value summing the tables no more likely than \
                 the observed one (with R's and scipy's relative allowance of 1e-7). The \
                 estimate and the interval are solved to double precision where R stops at \
                 uniroot's tolerance (about 4 significant digits); p matches R and \
                 scipy.stats.fisher_exact, its terms built in double-double arithmetic, \
                 within 1e-12 relatively of the exact value however far in the tail (0 below \
                 f64's range). Estimate 0 (lower 0) or Infinity (upper Infinity) \
                 at the ends of the support. NULL when a margin is 0. With alternative \
                 'less' or 'greater' (R's alternative = \"less\" / \"greater\"), p is \
                 the one-sided P(X ≤ a) or P(X ≥ a) under an odds ratio of 1 and the \
                 interval one-sided, [0, upper] or [lower, Infinity], each bound at 1 − level \
                 (the estimate does not change); matches R and scipy.stats.fisher_exact(…, \
                 alternative = …).",
                "fisher_exact(exposed, is_case [, level [, alternative]])",
                &example("fisher_exact(exposed, is_case, 0.95, 'greater')['p'] AS p_greater"),
            )
            .with_argument("exposed", exposed)
            .with_argument("is_case", label)
            .with_argument("level", level)
            .with_argument(
                "alternative",
                "Optional constant: 'two_sided' (default; R's 'two.sided' is accepted too), \
                 'less' (odds ratio below 1) or 'greater' (above 1).",
            )
            .build(),
            TableTest::Chi2 => doc(
                SECTION,
                "Pearson's χ² test of independence of exposure and case status (1 degree of \
                 freedom), as R's chisq.test: with Yates's correction (default) each |O − E| \
                 is reduced by min(½, |O − E|). Matches scipy.stats.chi2_contingency(table, \
                 correction = yates). NULL when a row or column total is 0.",
                "chi2_test(exposed, is_case [, yates])",
                &example("chi2_test(exposed, is_case)['p'] AS p"),
            )
            .with_argument("exposed", exposed)
            .with_argument("is_case", label)
            .with_argument(
                "yates",
                "Optional constant BOOLEAN: apply Yates's continuity correction (default true).",
            )
            .build(),
            TableTest::McNemar => doc(
                SECTION,
                "McNemar's test for matched pairs with a binary exposure, one row per pair: \
                 with b the pairs where only the case is exposed and c those where only the \
                 control is, χ² = (|b − c| − 1)² / (b + c) with the continuity correction \
                 (default; skipped when b = c, as R's mcnemar.test does) or (b − c)² / \
                 (b + c) without, 1 degree of freedom. Matches R's mcnemar.test. NULL \
                 without discordant pairs.",
                "mcnemar(case_exposed, control_exposed [, correct])",
                "SELECT mcnemar(c.value > 30, k.value > 30)['p'] AS p\nFROM pairs c JOIN pairs k ON c.pair_id = k.pair_id AND c.is_case AND NOT k.is_case;",
            )
            .with_argument("case_exposed", "BOOLEAN: whether the pair's case is exposed.")
            .with_argument(
                "control_exposed",
                "BOOLEAN: whether the pair's control is exposed.",
            )
            .with_argument(
                "correct",
                "Optional constant BOOLEAN: continuity correction (default true).",
            )
            .build(),
            TableTest::Cmh => doc(
                SECTION,
                "Cochran-Mantel-Haenszel test of exposure and case status across strata, as \
                 R's mantelhaen.test for 2×2×K tables: χ² = (|Σ(a − E[a])| − ½)² / Σ Var[a] \
                 with the continuity correction (default; the ½ is applied when |Σ(a − E[a])| \
                 ≥ ½), 1 degree of freedom; the Mantel-Haenszel common odds ratio Σ(ad/n) / \
                 Σ(bc/n) with the Robins-Breslow-Greenland interval. Strata with fewer than 2 \
                 rows carry no information and are skipped (R refuses them). chi2 and p are \
                 NULL when the variance is 0; the interval is NULL when either MH sum is 0.",
                "cmh_test(exposed, is_case, stratum [, correct])",
                "SELECT cmh_test(m.value > 30, s.is_case, s.site)['odds_ratio'] AS mh_or\nFROM measurements m JOIN samples s USING (sample_id)\nWHERE m.biomarker = 'ferritin';",
            )
            .with_argument("exposed", exposed)
            .with_argument("is_case", label)
            .with_argument(
                "stratum",
                "The stratum (any type; compared as text). Rows with a NULL stratum are skipped.",
            )
            .with_argument(
                "correct",
                "Optional constant BOOLEAN: continuity correction (default true).",
            )
            .build(),
            TableTest::CmhExact => doc(
                SECTION,
                "Exact conditional test of independence in 2×2×K strata, as R's \
                 mantelhaen.test(exact = TRUE): given every stratum's margins, S = Σ exposed \
                 cases has the distribution of a sum of noncentral hypergeometric variables \
                 sharing one odds ratio ψ. odds_ratio = the conditional maximum-likelihood \
                 estimate of the common odds ratio (E[S; ψ] = s; 0 or Infinity at the ends \
                 of the support), lower/upper = the exact interval at level (P(S ≥ s; ψ) = \
                 α/2 and P(S ≤ s; ψ) = α/2), p = two-sided: the probability at ψ = 1 of \
                 the sums no more likely than s (R's allowance of 1 + 1e-7). The estimate \
                 and interval are solved to full double precision (R's uniroot stops near \
                 1e-4, so R agrees to about 4 digits); p is within 1e-12 of the exact value \
                 down to about 1e-290. With one stratum it is fisher_exact. Strata with a \
                 zero margin add nothing; NULL when S can take one value only.",
                "cmh_exact(exposed, is_case, stratum [, level])",
                "SELECT cmh_exact(m.value > 30, s.is_case, s.site)['odds_ratio'] AS conditional_or\nFROM measurements m JOIN samples s USING (sample_id)\nWHERE m.biomarker = 'ferritin';",
            )
            .with_argument("exposed", exposed)
            .with_argument("is_case", label)
            .with_argument(
                "stratum",
                "The stratum (any type; compared as text). Rows with a NULL stratum are skipped.",
            )
            .with_argument("level", level)
            .build(),
            TableTest::BreslowDay => doc(
                SECTION,
                "Breslow-Day test that the odds ratio is the same in every stratum (the \
                 assumption behind cmh_test's common odds ratio): with ψ the Mantel-Haenszel \
                 common odds ratio and A the exposed-case count each stratum would have \
                 under ψ given its margins, χ² = Σ (a − A)² / Var(a) with Var(a) = 1 / \
                 (1/A + 1/B + 1/C + 1/D), on K − 1 degrees of freedom for K strata. With \
                 tarone, Tarone's correction (Σa − ΣA)² / ΣVar(a) is subtracted (the \
                 statistic then has the χ² distribution asymptotically). Matches \
                 statsmodels StratifiedTable(…).test_equal_odds(adjust = tarone) and \
                 DescTools::BreslowDayTest (correct = tarone). Strata with a zero margin \
                 (no cases, no controls, nothing exposed or nothing unexposed) say nothing \
                 about their odds ratio and are left out (statsmodels gives NaN there). \
                 NULL with fewer than 2 strata left or when the common odds ratio is 0 or \
                 Infinity.",
                "breslow_day(exposed, is_case, stratum [, tarone])",
                "SELECT breslow_day(m.value > 30, s.is_case, s.site)['p'] AS homogeneity_p\nFROM measurements m JOIN samples s USING (sample_id)\nWHERE m.biomarker = 'ferritin';",
            )
            .with_argument("exposed", exposed)
            .with_argument("is_case", label)
            .with_argument(
                "stratum",
                "The stratum (any type; compared as text). Rows with a NULL stratum are skipped.",
            )
            .with_argument(
                "tarone",
                "Optional constant BOOLEAN: Tarone's correction (default false).",
            )
            .build(),
        }
    }
}

/// The aggregate UDF of one test.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TableUdaf {
    test: TableTest,
    signature: Signature,
}

impl TableUdaf {
    /// The UDAF computing `test`.
    pub fn new(test: TableTest) -> Self {
        Self {
            test,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }

    fn table_evaluate(&self, args: &AccumulatorArgs) -> Result<Evaluate<Table2x2>> {
        let name = self.name();
        Ok(match self.test {
            TableTest::OddsRatio => {
                let level = level_argument(name, args, 2)?;
                Evaluate::new(move |tables: &mut [Table2x2]| {
                    float_struct(
                        &OR_FIELDS,
                        tables.iter().map(|t| {
                            odds_ratio_woolf(t, level)
                                .map(|r| [Some(r.odds_ratio), r.lower, r.upper])
                        }),
                    )
                })
            }
            TableTest::Fisher => {
                let level = level_argument(name, args, 2)?;
                let alternative = alternative_argument(name, args, 3)?;
                Evaluate::new(move |tables: &mut [Table2x2]| {
                    float_struct(
                        &FISHER_FIELDS,
                        tables.iter().map(|t| {
                            fisher_exact(t, level, alternative).map(|f| {
                                [Some(f.odds_ratio), Some(f.lower), Some(f.upper), Some(f.p)]
                            })
                        }),
                    )
                })
            }
            TableTest::Chi2 => {
                let yates = flag_argument(name, "yates", args, 2, true)?;
                Evaluate::new(move |tables: &mut [Table2x2]| {
                    float_struct(
                        &CHI2_FIELDS,
                        tables
                            .iter()
                            .map(|t| chi2_2x2(t, yates).map(|r| [Some(r.chi2), Some(r.p)])),
                    )
                })
            }
            TableTest::McNemar => {
                let correct = flag_argument(name, "correct", args, 2, true)?;
                // The table's rows are (case_exposed as `exposed`, control_exposed as
                // `is_case`): c counts pairs with only the case exposed, b only the control.
                Evaluate::new(move |tables: &mut [Table2x2]| {
                    float_struct(
                        &CHI2_FIELDS,
                        tables
                            .iter()
                            .map(|t| mcnemar(t.c, t.b, correct).map(|r| [Some(r.chi2), Some(r.p)])),
                    )
                })
            }
            TableTest::Cmh | TableTest::BreslowDay | TableTest::CmhExact => {
                return exec_err!("{name} has its own state");
            }
        })
    }

    fn strata_evaluate(&self, args: &AccumulatorArgs) -> Result<Evaluate<Strata>> {
        if self.test == TableTest::CmhExact {
            let level = level_argument(self.name(), args, 3)?;
            return Ok(Evaluate::new(move |groups: &mut [Strata]| {
                float_struct(
                    &FISHER_FIELDS,
                    groups.iter().map(|g| {
                        cmh_exact(&g.sorted_tables(), level)
                            .map(|f| [Some(f.odds_ratio), Some(f.lower), Some(f.upper), Some(f.p)])
                    }),
                )
            }));
        }
        if self.test == TableTest::BreslowDay {
            let tarone = flag_argument(self.name(), "tarone", args, 3, false)?;
            return Ok(Evaluate::new(move |groups: &mut [Strata]| {
                float_struct(
                    &BD_FIELDS,
                    groups.iter().map(|g| {
                        breslow_day(&g.sorted_tables(), tarone)
                            .map(|r| [Some(r.chi2), Some(r.df), Some(r.p)])
                    }),
                )
            }));
        }
        let correct = flag_argument(self.name(), "correct", args, 3, true)?;
        Ok(Evaluate::new(move |groups: &mut [Strata]| {
            float_struct(
                &CMH_FIELDS,
                groups.iter().map(|g| {
                    cmh(&g.sorted_tables(), correct, 0.95).map(|r| {
                        let or = r.odds_ratio;
                        [
                            r.test.map(|t| t.chi2),
                            r.test.map(|t| t.p),
                            or.map(|o| o.odds_ratio),
                            or.and_then(|o| o.lower),
                            or.and_then(|o| o.upper),
                        ]
                    })
                }),
            )
        }))
    }
}

/// An optional constant alternative at argument `index` (default two-sided).
fn alternative_argument(name: &str, args: &AccumulatorArgs, index: usize) -> Result<Alternative> {
    if args.exprs.len() <= index {
        return Ok(Alternative::TwoSided);
    }
    let text = match literal(args, index) {
        Some(
            datafusion::common::ScalarValue::Utf8(Some(t))
            | datafusion::common::ScalarValue::Utf8View(Some(t))
            | datafusion::common::ScalarValue::LargeUtf8(Some(t)),
        ) => t,
        _ => {
            return plan_err!(
                "{name}: alternative must be a constant 'two_sided', 'less' or 'greater'"
            );
        }
    };
    match Alternative::parse(&text) {
        Some(a) => Ok(a),
        None => {
            plan_err!("{name}: alternative must be 'two_sided', 'less' or 'greater', got '{text}'")
        }
    }
}

/// Every function of the family, for registration.
pub fn all() -> Vec<Arc<AggregateUDF>> {
    TableTest::ALL
        .iter()
        .map(|t| Arc::new(AggregateUDF::from(TableUdaf::new(*t))))
        .collect()
}

impl AggregateUDFImpl for TableUdaf {
    fn name(&self) -> &str {
        self.test.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let name = self.name();
        let [first, second] = self.test.boolean_arguments();
        let (required, options): (usize, &[(&str, DataType)]) = match self.test {
            TableTest::OddsRatio => (2, &[("level (numeric)", DataType::Float64)]),
            TableTest::Fisher => (
                2,
                &[
                    ("level (numeric)", DataType::Float64),
                    ("alternative (text)", DataType::Utf8),
                ],
            ),
            TableTest::Chi2 => (2, &[("yates (BOOLEAN)", DataType::Boolean)]),
            TableTest::McNemar => (2, &[("correct (BOOLEAN)", DataType::Boolean)]),
            TableTest::Cmh => (3, &[("correct (BOOLEAN)", DataType::Boolean)]),
            TableTest::BreslowDay => (3, &[("tarone (BOOLEAN)", DataType::Boolean)]),
            TableTest::CmhExact => (3, &[("level (numeric)", DataType::Float64)]),
        };
        if arg_types.len() < required || arg_types.len() > required + options.len() {
            let joiner = if options.len() == 1 { "or" } else { "to" };
            return plan_err!(
                "{name} takes {required} {joiner} {} arguments, got {}",
                required + options.len(),
                arg_types.len()
            );
        }
        let mut types = Vec::with_capacity(arg_types.len());
        for (argument, t) in [first, second].iter().zip(arg_types) {
            if !matches!(t, DataType::Boolean | DataType::Null) {
                return plan_err!(
                    "{name}: {argument} must be BOOLEAN, got {t} (write a comparison such as `value > 30` or `dose = 1`)"
                );
            }
            types.push(DataType::Boolean);
        }
        if required == 3 {
            types.push(DataType::Utf8);
        }
        for (t, (what, target)) in arg_types[required..].iter().zip(options) {
            let ok = match target {
                DataType::Boolean => matches!(t, DataType::Boolean),
                DataType::Utf8 => {
                    matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
                }
                _ => t.is_numeric(),
            };
            if !ok {
                return plan_err!("{name}: expected {what}, got {t}");
            }
            types.push(target.clone());
        }
        Ok(types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(float_fields(self.test.field_names())))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(if self.test.stratified() {
            Box::new(StateAccumulator::new(self.strata_evaluate(&args)?))
        } else {
            Box::new(StateAccumulator::new(self.table_evaluate(&args)?))
        })
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let field =
            |n: &str, t: DataType| Arc::new(Field::new(format_state_name(args.name, n), t, true));
        Ok(match self.test {
            TableTest::Cmh | TableTest::BreslowDay | TableTest::CmhExact => vec![
                field(
                    "strata",
                    DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
                ),
                field(
                    "counts",
                    DataType::List(Arc::new(Field::new_list_field(DataType::UInt64, true))),
                ),
            ],
            _ => ["a", "b", "c", "d"]
                .iter()
                .map(|n| field(n, DataType::UInt64))
                .collect(),
        })
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(if self.test.stratified() {
            Box::new(StateGroupsAccumulator::new(self.strata_evaluate(&args)?))
        } else {
            Box::new(StateGroupsAccumulator::new(self.table_evaluate(&args)?))
        })
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(self.test.documentation())
    }
}

/// Calls `f(row, exposed, is_case)` for each row whose two BOOLEANs are non-NULL and that
/// passes the filter.
fn for_each_pair(
    values: &[ArrayRef],
    filter: Option<&datafusion::arrow::array::BooleanArray>,
    mut f: impl FnMut(usize, bool, bool),
) -> Result<()> {
    let (Some(x), Some(y)) = (values.first(), values.get(1)) else {
        return exec_err!("expected two BOOLEAN arguments, got {}", values.len());
    };
    let (x, y) = (x.as_boolean(), y.as_boolean());
    for row in 0..x.len() {
        if x.is_valid(row) && y.is_valid(row) && passes(filter, row) {
            f(row, x.value(row), y.value(row));
        }
    }
    Ok(())
}

impl GroupState for Table2x2 {
    fn update(
        groups: &mut [Self],
        values: &[ArrayRef],
        filter: Option<&datafusion::arrow::array::BooleanArray>,
        group: impl Fn(usize) -> usize,
    ) -> Result<isize> {
        for_each_pair(values, filter, |row, exposed, is_case| {
            groups[group(row)].add(exposed, is_case)
        })?;
        Ok(0)
    }

    fn merge(
        groups: &mut [Self],
        states: &[ArrayRef],
        group: impl Fn(usize) -> usize,
    ) -> Result<isize> {
        let [a, b, c, d] = states else {
            return exec_err!("expected 4 count columns, got {}", states.len());
        };
        let [a, b, c, d] = [a, b, c, d].map(|s| s.as_primitive::<UInt64Type>());
        for row in 0..a.len() {
            if a.is_null(row) {
                continue;
            }
            groups[group(row)].merge(&Table2x2 {
                a: a.value(row),
                b: b.value(row),
                c: c.value(row),
                d: d.value(row),
            });
        }
        Ok(0)
    }

    const RETRACTS: bool = true;

    fn retract(
        groups: &mut [Self],
        values: &[ArrayRef],
        group: impl Fn(usize) -> usize,
    ) -> Result<isize> {
        for_each_pair(values, None, |row, exposed, is_case| {
            groups[group(row)].remove(exposed, is_case)
        })?;
        Ok(0)
    }

    fn to_arrays(groups: &[Self]) -> Result<Vec<ArrayRef>> {
        let column = |pick: fn(&Table2x2) -> u64| -> ArrayRef {
            Arc::new(UInt64Array::from_iter_values(groups.iter().map(pick)))
        };
        Ok(vec![
            column(|t| t.a),
            column(|t| t.b),
            column(|t| t.c),
            column(|t| t.d),
        ])
    }
}

/// One 2×2 table per stratum.
#[derive(Debug, Default, Clone)]
pub struct Strata {
    tables: HashMap<String, Table2x2>,
    key_bytes: usize,
}

impl Strata {
    /// The strata's tables in the strata's order, so that sums do not depend on hashing.
    fn sorted_tables(&self) -> Vec<Table2x2> {
        let mut strata: Vec<(&String, &Table2x2)> = self.tables.iter().collect();
        strata.sort_unstable_by(|x, y| x.0.cmp(y.0));
        strata.into_iter().map(|(_, t)| *t).collect()
    }

    /// Adds `counts` to the stratum's table; returns how many heap bytes that added.
    fn add(&mut self, stratum: &str, counts: &Table2x2) -> usize {
        if let Some(table) = self.tables.get_mut(stratum) {
            table.merge(counts);
            return 0;
        }
        let before = self.heap_bytes();
        self.key_bytes += stratum.len();
        self.tables.insert(stratum.to_owned(), *counts);
        self.heap_bytes().saturating_sub(before)
    }
}

impl GroupState for Strata {
    fn update(
        groups: &mut [Self],
        values: &[ArrayRef],
        filter: Option<&datafusion::arrow::array::BooleanArray>,
        group: impl Fn(usize) -> usize,
    ) -> Result<isize> {
        let Some(strata) = values.get(2) else {
            return exec_err!("expected a stratum argument");
        };
        let strata = strata.as_string::<i32>();
        let mut grew = 0;
        for_each_pair(values, filter, |row, exposed, is_case| {
            if strata.is_valid(row) {
                let mut one = Table2x2::default();
                one.add(exposed, is_case);
                grew += groups[group(row)].add(strata.value(row), &one);
            }
        })?;
        Ok(grew as isize)
    }

    fn merge(
        groups: &mut [Self],
        states: &[ArrayRef],
        group: impl Fn(usize) -> usize,
    ) -> Result<isize> {
        let [keys, counts] = states else {
            return exec_err!("cmh_test: expected 2 state columns, got {}", states.len());
        };
        let (keys, counts) = (keys.as_list::<i32>(), counts.as_list::<i32>());
        let mut grew = 0;
        for row in 0..keys.len() {
            if keys.is_null(row) || counts.is_null(row) {
                continue;
            }
            let k = keys.value(row);
            let k = k.as_string::<i32>();
            let c = counts.value(row);
            let c = c.as_primitive::<UInt64Type>().values();
            if c.len() != 4 * k.len() {
                return exec_err!("cmh_test: malformed partial state");
            }
            for (i, chunk) in c.chunks_exact(4).enumerate() {
                let table = Table2x2 {
                    a: chunk[0],
                    b: chunk[1],
                    c: chunk[2],
                    d: chunk[3],
                };
                grew += groups[group(row)].add(k.value(i), &table);
            }
        }
        Ok(grew as isize)
    }

    fn to_arrays(groups: &[Self]) -> Result<Vec<ArrayRef>> {
        let mut keys = ListBuilder::new(StringBuilder::new());
        let mut counts = ListBuilder::new(UInt64Builder::new());
        for g in groups {
            for (k, t) in &g.tables {
                keys.values().append_value(k);
                counts.values().append_slice(&[t.a, t.b, t.c, t.d]);
            }
            keys.append(true);
            counts.append(true);
        }
        Ok(vec![Arc::new(keys.finish()), Arc::new(counts.finish())])
    }

    fn heap_bytes(&self) -> usize {
        // A hash table allocates a power of two of buckets (at most 7/8 full), one control
        // byte per bucket and a group's width of extra control bytes.
        let capacity = self.tables.capacity();
        let table = if capacity == 0 {
            0
        } else {
            let buckets = (capacity * 8 / 7).max(capacity + 1).next_power_of_two();
            buckets * (size_of::<(String, Table2x2)>() + 1) + 16
        };
        table + self.key_bytes
    }
}
