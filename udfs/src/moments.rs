//! Two-group moment statistics: `welch_t_test`, `student_t_test`, `cohens_d`, `hedges_g`,
//! `fold_change`, `log2_fold_change`.
//!
//! All six keep the same small state per group, (n, mean, M2) for controls and for cases
//! (see [`crate::kernels::moments`]), so they share one accumulator, one groups accumulator
//! and one state layout; only the final statistic differs.
//!
//! Conventions (DESIGN.md): `is_case` is a BOOLEAN; differences are case minus control; rows
//! whose value or label is NULL, NaN or infinite are skipped; an undefined statistic (too few
//! rows, zero variance) is NULL.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, UInt64Type};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, GroupsAccumulator, Signature,
    Volatility,
};

use crate::docs::{SECTION, doc};
use crate::kernels::moments::{
    Moments, TTest, TwoGroups, cohens_d, fold_change, hedges_g, log2_fold_change, student, welch,
};
use crate::state::{
    Evaluate, GroupState, StateAccumulator, StateGroupsAccumulator, float_fields, float_struct,
};
use crate::two_group::{coerce_value_and_label, for_each_row};

/// Which statistic a moment aggregate returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MomentStatistic {
    /// `welch_t_test(value, is_case)` → {t, df, p, log_p}
    Welch,
    /// `student_t_test(value, is_case)` → {t, df, p, log_p}
    Student,
    /// `cohens_d(value, is_case)` → DOUBLE
    CohensD,
    /// `hedges_g(value, is_case)` → DOUBLE
    HedgesG,
    /// `fold_change(value, is_case)` → DOUBLE
    FoldChange,
    /// `log2_fold_change(value, is_case)` → DOUBLE
    Log2FoldChange,
}

impl MomentStatistic {
    /// Every statistic of the family.
    pub const ALL: [MomentStatistic; 6] = [
        MomentStatistic::Welch,
        MomentStatistic::Student,
        MomentStatistic::CohensD,
        MomentStatistic::HedgesG,
        MomentStatistic::FoldChange,
        MomentStatistic::Log2FoldChange,
    ];

    /// The SQL name.
    pub fn name(self) -> &'static str {
        match self {
            MomentStatistic::Welch => "welch_t_test",
            MomentStatistic::Student => "student_t_test",
            MomentStatistic::CohensD => "cohens_d",
            MomentStatistic::HedgesG => "hedges_g",
            MomentStatistic::FoldChange => "fold_change",
            MomentStatistic::Log2FoldChange => "log2_fold_change",
        }
    }

    fn is_t_test(self) -> bool {
        matches!(self, MomentStatistic::Welch | MomentStatistic::Student)
    }

    fn return_type(self) -> DataType {
        if self.is_t_test() {
            DataType::Struct(float_fields(&T_TEST_FIELDS))
        } else {
            DataType::Float64
        }
    }

    fn documentation(self) -> &'static Documentation {
        static DOCS: OnceLock<Vec<Documentation>> = OnceLock::new();
        let docs =
            DOCS.get_or_init(|| MomentStatistic::ALL.iter().map(|s| s.build_doc()).collect());
        let index = MomentStatistic::ALL
            .iter()
            .position(|s| *s == self)
            .unwrap_or_default();
        &docs[index]
    }

    fn build_doc(self) -> Documentation {
        let (description, example) = match self {
            MomentStatistic::Welch => (
                "Welch's two-sample t test of case against control means, without assuming \
                 equal variances: t = (mean_case − mean_control) / sqrt(s²_case/n_case + \
                 s²_control/n_control), Welch–Satterthwaite degrees of freedom, two-sided p. \
                 `log_p` = ln p stays finite when p underflows to 0. Matches R \
                 t.test(var.equal = FALSE) and scipy.stats.ttest_ind(equal_var=False). NULL \
                 when a group has fewer than 2 values or both variances are 0.",
                "SELECT biomarker, welch_t_test(value, is_case)['p'] AS p\nFROM measurements JOIN samples USING (sample_id) GROUP BY biomarker;",
            ),
            MomentStatistic::Student => (
                "Student's two-sample t test with pooled variance: t = (mean_case − \
                 mean_control) / (s_p · sqrt(1/n_case + 1/n_control)), df = n_case + \
                 n_control − 2, two-sided p and ln p. Matches R t.test(var.equal = TRUE) and \
                 scipy.stats.ttest_ind. NULL when a group is empty, there are fewer than 3 \
                 values, or the pooled variance is 0.",
                "SELECT biomarker, student_t_test(value, is_case) AS t\nFROM measurements JOIN samples USING (sample_id) GROUP BY biomarker;",
            ),
            MomentStatistic::CohensD => (
                "Cohen's d: (mean_case − mean_control) / s_p, with the pooled standard \
                 deviation s_p² = (Σ(x−mean_case)² + Σ(x−mean_control)²) / (n_case + \
                 n_control − 2). NULL when s_p is 0 or undefined.",
                "SELECT biomarker, cohens_d(value, is_case) AS d\nFROM measurements JOIN samples USING (sample_id) GROUP BY biomarker;",
            ),
            MomentStatistic::HedgesG => (
                "Hedges' g: Cohen's d times the exact small-sample correction J(m) = \
                 Γ(m/2) / (sqrt(m/2) · Γ((m−1)/2)), m = n_case + n_control − 2 (Hedges 1981), \
                 not the 1 − 3/(4m − 1) approximation. NULL when d is undefined or m < 2.",
                "SELECT biomarker, hedges_g(value, is_case) AS g\nFROM measurements JOIN samples USING (sample_id) GROUP BY biomarker;",
            ),
            MomentStatistic::FoldChange => (
                "Fold change of the means: mean_case / mean_control. NULL when a group is \
                 empty or the control mean is 0.",
                "SELECT biomarker, fold_change(value, is_case) AS fc\nFROM measurements JOIN samples USING (sample_id) GROUP BY biomarker;",
            ),
            MomentStatistic::Log2FoldChange => (
                "log2 of the fold change of the means: log2(mean_case / mean_control). NULL \
                 when the ratio is undefined or not positive.",
                "SELECT biomarker, log2_fold_change(value, is_case) AS lfc\nFROM measurements JOIN samples USING (sample_id) GROUP BY biomarker;",
            ),
        };
        doc(
            SECTION,
            description,
            &format!("{}(value, is_case)", self.name()),
            example,
        )
        .with_argument(
            "value",
            "The measurement (any numeric type). NULL, NaN and infinite values are skipped.",
        )
        .with_argument(
            "is_case",
            "BOOLEAN label: true for cases, false for controls. Rows with a NULL label are \
             skipped.",
        )
        .build()
    }

    fn evaluate(self, g: &TwoGroups) -> Statistic {
        match self {
            MomentStatistic::Welch => Statistic::TTest(welch(g)),
            MomentStatistic::Student => Statistic::TTest(student(g)),
            MomentStatistic::CohensD => Statistic::Value(cohens_d(g)),
            MomentStatistic::HedgesG => Statistic::Value(hedges_g(g)),
            MomentStatistic::FoldChange => Statistic::Value(fold_change(g)),
            MomentStatistic::Log2FoldChange => Statistic::Value(log2_fold_change(g)),
        }
    }
}

enum Statistic {
    TTest(Option<TTest>),
    Value(Option<f64>),
}

const T_TEST_FIELDS: [&str; 4] = ["t", "df", "p", "log_p"];

/// The aggregate UDF of one moment statistic.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MomentUdaf {
    statistic: MomentStatistic,
    signature: Signature,
}

impl MomentUdaf {
    /// The UDAF computing `statistic`.
    pub fn new(statistic: MomentStatistic) -> Self {
        Self {
            statistic,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl MomentUdaf {
    /// Which statistic this computes.
    pub fn statistic(&self) -> MomentStatistic {
        self.statistic
    }

    fn evaluate(&self) -> Evaluate<TwoGroups> {
        let statistic = self.statistic;
        Evaluate::new(move |groups: &mut [TwoGroups]| evaluate_groups(statistic, groups))
    }
}

/// Every function of the family, for registration.
pub fn all() -> Vec<Arc<AggregateUDF>> {
    MomentStatistic::ALL
        .iter()
        .map(|s| Arc::new(AggregateUDF::from(MomentUdaf::new(*s))))
        .collect()
}

impl AggregateUDFImpl for MomentUdaf {
    fn name(&self) -> &str {
        self.statistic.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_value_and_label(self.name(), arg_types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.statistic.return_type())
    }

    fn accumulator(&self, _acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(StateAccumulator::new(self.evaluate())))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(STATE_FIELDS
            .iter()
            .map(|(name, data_type)| {
                Arc::new(Field::new(
                    format_state_name(args.name, name),
                    data_type.clone(),
                    true,
                ))
            })
            .collect())
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(StateGroupsAccumulator::new(self.evaluate())))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(self.statistic.documentation())
    }
}

/// The state layout: (n, mean, mean_lo, M2) of the controls, then of the cases.
const STATE_FIELDS: [(&str, DataType); 8] = [
    ("n_control", DataType::UInt64),
    ("mean_control", DataType::Float64),
    ("mean_lo_control", DataType::Float64),
    ("m2_control", DataType::Float64),
    ("n_case", DataType::UInt64),
    ("mean_case", DataType::Float64),
    ("mean_lo_case", DataType::Float64),
    ("m2_case", DataType::Float64),
];

/// (n, mean, mean_lo, M2) of each state as four columns.
pub(crate) fn moments_columns(moments: impl Iterator<Item = Moments> + Clone) -> [ArrayRef; 4] {
    let column = |f: fn(&Moments) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(
            moments.clone().map(|m| f(&m)),
        ))
    };
    [
        Arc::new(UInt64Array::from_iter_values(moments.clone().map(|m| m.n))),
        column(|m| m.mean),
        column(|m| m.mean_lo),
        column(|m| m.m2),
    ]
}

/// Reads the moments at `row` of four columns written by [`moments_columns`]; None if NULL.
pub(crate) fn read_moments(columns: &[ArrayRef], row: usize) -> Option<Moments> {
    let [n, mean, mean_lo, m2] = columns else {
        return None;
    };
    let n = n.as_primitive::<UInt64Type>();
    if n.is_null(row) {
        return None;
    }
    let float = |a: &ArrayRef| a.as_primitive::<Float64Type>().value(row);
    Some(Moments {
        n: n.value(row),
        mean: float(mean),
        mean_lo: float(mean_lo),
        m2: float(m2),
    })
}

impl GroupState for TwoGroups {
    fn update(
        groups: &mut [Self],
        values: &[ArrayRef],
        filter: Option<&BooleanArray>,
        group: impl Fn(usize) -> usize,
    ) -> Result<isize> {
        for_each_row(values, filter, |row, x, is_case| {
            groups[group(row)].push(x, is_case)
        })?;
        Ok(0)
    }

    fn merge(
        groups: &mut [Self],
        states: &[ArrayRef],
        group: impl Fn(usize) -> usize,
    ) -> Result<isize> {
        if states.len() != STATE_FIELDS.len() {
            return exec_err!(
                "expected {} state arrays, got {}",
                STATE_FIELDS.len(),
                states.len()
            );
        }
        for row in 0..states[0].len() {
            if let (Some(control), Some(case)) = (
                read_moments(&states[..4], row),
                read_moments(&states[4..], row),
            ) {
                groups[group(row)].merge(&TwoGroups { control, case });
            }
        }
        Ok(0)
    }

    const RETRACTS: bool = true;

    fn retract(
        groups: &mut [Self],
        values: &[ArrayRef],
        group: impl Fn(usize) -> usize,
    ) -> Result<isize> {
        for_each_row(values, None, |row, x, is_case| {
            groups[group(row)].remove(x, is_case)
        })?;
        Ok(0)
    }

    fn to_arrays(groups: &[Self]) -> Result<Vec<ArrayRef>> {
        let mut arrays = Vec::with_capacity(STATE_FIELDS.len());
        arrays.extend(moments_columns(groups.iter().map(|g| g.control)));
        arrays.extend(moments_columns(groups.iter().map(|g| g.case)));
        Ok(arrays)
    }
}

/// Evaluates the statistic of every group into one array.
pub(crate) fn evaluate_groups(
    statistic: MomentStatistic,
    groups: &[TwoGroups],
) -> Result<ArrayRef> {
    if !statistic.is_t_test() {
        let values = groups.iter().map(|g| match statistic.evaluate(g) {
            Statistic::Value(v) => v,
            Statistic::TTest(_) => None,
        });
        return Ok(Arc::new(Float64Array::from_iter(values)));
    }
    float_struct(
        &T_TEST_FIELDS,
        groups.iter().map(|g| match statistic.evaluate(g) {
            Statistic::TTest(t) => t.map(|t| [Some(t.t), Some(t.df), Some(t.p), Some(t.log_p)]),
            Statistic::Value(_) => None,
        }),
    )
}
