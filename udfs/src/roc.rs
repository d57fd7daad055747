//! ROC analysis as pROC does it: `youden`, `sensitivity_at_specificity`,
//! `specificity_at_sensitivity`, `partial_auc`, `roc_curve` (one marker; the state is the
//! rank family's case and control values) and `roc_test` (two markers on the same samples).
//!
//! The kernels are in [`crate::kernels::roc`]; every rule there follows pROC 1.18 with
//! `direction = "<"` (no auto-flip: positive means value ≥ threshold).

use std::mem::size_of;
use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Float64Builder, ListBuilder,
    StructBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, GroupsAccumulator, Signature,
    Volatility,
};

use crate::docs::{SECTION, doc};
use crate::kernels::roc::{Given, coords_at, partial_auc, roc_curve, roc_test, youden_point};
use crate::ranks::GroupValues;
use crate::state::{
    Evaluate, GroupState, StateAccumulator, StateGroupsAccumulator, flag_argument, float_fields,
    float_struct, level_argument, literal, passes,
};
use crate::two_group::coerce_value_and_label;

/// Which ROC function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RocFunction {
    /// `youden(value, is_case)` → {threshold, sensitivity, specificity, j}
    Youden,
    /// `sensitivity_at_specificity(value, is_case, spec)` → DOUBLE
    SensitivityAtSpecificity,
    /// `specificity_at_sensitivity(value, is_case, sens)` → DOUBLE
    SpecificityAtSensitivity,
    /// `partial_auc(value, is_case, spec_low, spec_high [, mcclish])` → DOUBLE
    PartialAuc,
    /// `roc_curve(value, is_case)` → LIST<{threshold, sensitivity, specificity}>
    RocCurve,
    /// `roc_test(value_a, value_b, is_case [, level])` →
    /// {auc_a, auc_b, z, p, diff_lower, diff_upper}
    RocTest,
}

const YOUDEN_FIELDS: [&str; 4] = ["threshold", "sensitivity", "specificity", "j"];
const POINT_FIELDS: [&str; 3] = ["threshold", "sensitivity", "specificity"];
const ROC_TEST_FIELDS: [&str; 6] = ["auc_a", "auc_b", "z", "p", "diff_lower", "diff_upper"];

impl RocFunction {
    /// Every function of the family.
    pub const ALL: [RocFunction; 6] = [
        RocFunction::Youden,
        RocFunction::SensitivityAtSpecificity,
        RocFunction::SpecificityAtSensitivity,
        RocFunction::PartialAuc,
        RocFunction::RocCurve,
        RocFunction::RocTest,
    ];

    /// The SQL name.
    pub fn name(self) -> &'static str {
        match self {
            RocFunction::Youden => "youden",
            RocFunction::SensitivityAtSpecificity => "sensitivity_at_specificity",
            RocFunction::SpecificityAtSensitivity => "specificity_at_sensitivity",
            RocFunction::PartialAuc => "partial_auc",
            RocFunction::RocCurve => "roc_curve",
            RocFunction::RocTest => "roc_test",
        }
    }

    fn documentation(self) -> &'static Documentation {
        static DOCS: OnceLock<Vec<Documentation>> = OnceLock::new();
        let docs = DOCS.get_or_init(|| RocFunction::ALL.iter().map(|f| f.build_doc()).collect());
        let index = RocFunction::ALL
            .iter()
            .position(|f| *f == self)
            .unwrap_or(0);
        &docs[index]
    }

    fn build_doc(self) -> Documentation {
        let value =
            "The measurement (any numeric type). NULL, NaN and infinite values are skipped.";
        let label = "BOOLEAN label: true for cases, false for controls. Rows with a NULL label are skipped.";
        let curve = "The curve is pROC's roc(controls, cases, direction = '<'): thresholds −∞, \
                     the midpoints of consecutive distinct values, +∞; a value ≥ the threshold \
                     is positive; no auto-flip.";
        let from = "FROM measurements JOIN samples USING (sample_id) GROUP BY biomarker;";
        match self {
            RocFunction::Youden => doc(
                SECTION,
                &format!(
                    "The threshold maximising Youden's J = sensitivity + specificity − 1, as \
                     pROC's coords(roc, 'best', best.method = 'youden'). {curve} Where pROC \
                     returns several tied thresholds (ties compared in floating point, as \
                     pROC does), the smallest. NULL when a group is empty."
                ),
                "youden(value, is_case)",
                &format!("SELECT biomarker, youden(value, is_case)['threshold'] AS cutoff\n{from}"),
            )
            .with_argument("value", value)
            .with_argument("is_case", label)
            .build(),
            RocFunction::SensitivityAtSpecificity | RocFunction::SpecificityAtSensitivity => {
                let (given, other, arg) = match self {
                    RocFunction::SensitivityAtSpecificity => ("specificity", "sensitivity", "spec"),
                    _ => ("sensitivity", "specificity", "sens"),
                };
                let name = self.name();
                doc(
                    SECTION,
                    &format!(
                        "The {other} of the ROC curve at a given {given}, as pROC's \
                         coords(roc, x, input = '{given}', ret = '{other}'): where the \
                         {given} is attained, the best {other} among those points; \
                         otherwise linear interpolation between the two neighbouring curve \
                         points. {curve} NULL when a group is empty."
                    ),
                    &format!("{name}(value, is_case, {arg})"),
                    &format!("SELECT biomarker, {name}(value, is_case, 0.9) AS {other}\n{from}"),
                )
                .with_argument("value", value)
                .with_argument("is_case", label)
                .with_argument(arg, format!("Constant {given} in [0, 1]."))
                .build()
            }
            RocFunction::PartialAuc => doc(
                SECTION,
                &format!(
                    "The partial area under the ROC curve over a specificity range, as pROC's \
                     auc(roc, partial.auc = c(spec_high, spec_low), partial.auc.focus = \
                     'specificity', partial.auc.correct = mcclish): trapezoids with the curve \
                     interpolated linearly at the bounds. With mcclish, McClish's \
                     standardisation (1 + (A − min)/(max − min))/2, NULL when A is below the \
                     diagonal's area (pROC: NA). {curve} NULL when a group is empty."
                ),
                "partial_auc(value, is_case, spec_low, spec_high [, mcclish])",
                &format!("SELECT biomarker, partial_auc(value, is_case, 0.9, 1.0) AS pauc\n{from}"),
            )
            .with_argument("value", value)
            .with_argument("is_case", label)
            .with_argument("spec_low", "Constant lower specificity bound in [0, 1).")
            .with_argument("spec_high", "Constant upper specificity bound, above spec_low, at most 1.")
            .with_argument("mcclish", "Optional constant BOOLEAN: McClish's correction (default false).")
            .build(),
            RocFunction::RocCurve => doc(
                SECTION,
                &format!(
                    "Every point of the ROC curve in ascending threshold order, as pROC's \
                     coords(roc, 'all'), for plotting. {curve} NULL when a group is empty."
                ),
                "roc_curve(value, is_case)",
                "SELECT p['threshold'], p['sensitivity'], p['specificity']\nFROM (SELECT unnest(roc_curve(value, is_case)) AS p\n      FROM measurements JOIN samples USING (sample_id) WHERE biomarker = 'ferritin');",
            )
            .with_argument("value", value)
            .with_argument("is_case", label)
            .build(),
            RocFunction::RocTest => doc(
                SECTION,
                "Paired DeLong test comparing the AUCs of two markers measured on the same \
                 samples, as pROC's roc.test(roc_a, roc_b, method = 'delong', paired = TRUE): \
                 z = (auc_a − auc_b) / se from the placement values' covariance, two-sided p, \
                 and the Wald interval of auc_a − auc_b (not clipped). A sample counts when \
                 its label and both values are present and finite. z and p are 0 and 1 when \
                 both AUCs are equal with zero variance; z, p and the interval are NULL when \
                 the variance is undefined (a group with one sample) or 0 with unequal AUCs \
                 (pROC: NaN or infinite z). All fields NULL when a group is empty.",
                "roc_test(value_a, value_b, is_case [, level])",
                "SELECT roc_test(a.value, b.value, s.is_case)['p'] AS p\nFROM measurements a JOIN measurements b USING (sample_id) JOIN samples s USING (sample_id)\nWHERE a.biomarker = 'ferritin' AND b.biomarker = 'zinc';",
            )
            .with_argument("value_a", value)
            .with_argument("value_b", value)
            .with_argument("is_case", label)
            .with_argument("level", "Optional constant confidence level in (0, 1); default 0.95.")
            .build(),
        }
    }
}

fn point_fields() -> Fields {
    float_fields(&POINT_FIELDS)
}

/// Sorts each group and builds its curve; None for an empty group.
fn curves(
    groups: &mut [GroupValues],
) -> impl Iterator<Item = Option<Vec<crate::kernels::roc::RocPoint>>> + '_ {
    groups.iter_mut().map(|g| {
        g.compact();
        (!g.case.is_empty() && !g.control.is_empty()).then(|| roc_curve(&g.case, &g.control))
    })
}

/// `youden`'s {threshold, sensitivity, specificity, j} of each group (in one pass over the
/// values, without building the curve).
pub(crate) fn youden_array(groups: &mut [GroupValues]) -> Result<ArrayRef> {
    float_struct(
        &YOUDEN_FIELDS,
        groups.iter_mut().map(|g| {
            g.compact();
            (!g.case.is_empty() && !g.control.is_empty()).then(|| {
                let p = youden_point(&g.case, &g.control);
                [
                    Some(p.threshold),
                    Some(p.sensitivity),
                    Some(p.specificity),
                    Some(p.sensitivity + p.specificity - 1.0),
                ]
            })
        }),
    )
}

/// The aggregate UDF of one ROC function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RocUdaf {
    function: RocFunction,
    signature: Signature,
}

/// A constant in [0, 1] at argument `index`.
fn fraction(name: &str, what: &str, args: &AccumulatorArgs, index: usize) -> Result<f64> {
    match literal(args, index) {
        Some(ScalarValue::Float64(Some(x))) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => plan_err!("{name}: {what} must be a constant in [0, 1]"),
    }
}

impl RocUdaf {
    /// The UDAF computing `function`.
    pub fn new(function: RocFunction) -> Self {
        Self {
            function,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }

    /// Which function this computes.
    pub fn function(&self) -> RocFunction {
        self.function
    }

    fn one_marker(&self, args: &AccumulatorArgs) -> Result<Evaluate<GroupValues>> {
        let name = self.name();
        Ok(match self.function {
            RocFunction::Youden => Evaluate::new(youden_array),
            RocFunction::SensitivityAtSpecificity | RocFunction::SpecificityAtSensitivity => {
                let (given, what) = if self.function == RocFunction::SensitivityAtSpecificity {
                    (Given::Specificity, "spec")
                } else {
                    (Given::Sensitivity, "sens")
                };
                let x = fraction(name, what, args, 2)?;
                Evaluate::new(move |groups: &mut [GroupValues]| {
                    Ok(Arc::new(Float64Array::from_iter(
                        curves(groups).map(|curve| curve.and_then(|c| coords_at(&c, given, x))),
                    )) as ArrayRef)
                })
            }
            RocFunction::PartialAuc => {
                let lo = fraction(name, "spec_low", args, 2)?;
                let hi = fraction(name, "spec_high", args, 3)?;
                if lo >= hi {
                    return plan_err!("{name}: spec_low ({lo}) must be below spec_high ({hi})");
                }
                let mcclish = flag_argument(name, "mcclish", args, 4, false)?;
                Evaluate::new(move |groups: &mut [GroupValues]| {
                    Ok(Arc::new(Float64Array::from_iter(
                        curves(groups)
                            .map(|curve| curve.and_then(|c| partial_auc(&c, lo, hi, mcclish))),
                    )) as ArrayRef)
                })
            }
            RocFunction::RocCurve => Evaluate::new(|groups: &mut [GroupValues]| {
                let mut builder = ListBuilder::new(StructBuilder::from_fields(point_fields(), 0))
                    .with_field(Arc::new(Field::new_list_field(
                        DataType::Struct(point_fields()),
                        true,
                    )));
                for curve in curves(groups) {
                    let Some(curve) = curve else {
                        builder.append(false);
                        continue;
                    };
                    let points = builder.values();
                    for p in curve {
                        for (i, v) in [p.threshold, p.sensitivity, p.specificity]
                            .into_iter()
                            .enumerate()
                        {
                            match points.field_builder::<Float64Builder>(i) {
                                Some(b) => b.append_value(v),
                                None => return exec_err!("roc_curve: bad point builder"),
                            }
                        }
                        points.append(true);
                    }
                    builder.append(true);
                }
                Ok(Arc::new(builder.finish()) as ArrayRef)
            }),
            RocFunction::RocTest => return exec_err!("roc_test has its own state"),
        })
    }

    fn two_markers(&self, args: &AccumulatorArgs) -> Result<Evaluate<PairedValues>> {
        let level = level_argument(self.name(), args, 3)?;
        Ok(Evaluate::new(move |groups: &mut [PairedValues]| {
            float_struct(
                &ROC_TEST_FIELDS,
                groups.iter_mut().map(|g| {
                    if g.case.is_empty() || g.control.is_empty() {
                        return None;
                    }
                    // A canonical order: the result must not depend on how partial states
                    // arrived (the covariance sums are not associative).
                    let order = |x: &(f64, f64), y: &(f64, f64)| {
                        x.0.total_cmp(&y.0).then(x.1.total_cmp(&y.1))
                    };
                    g.case.sort_unstable_by(order);
                    g.control.sort_unstable_by(order);
                    let t = roc_test(&g.case, &g.control, level);
                    Some([
                        Some(t.auc_a),
                        Some(t.auc_b),
                        t.z,
                        t.p,
                        t.diff_interval.map(|i| i.0),
                        t.diff_interval.map(|i| i.1),
                    ])
                }),
            )
        }))
    }
}

/// Every function of the family, for registration.
pub fn all() -> Vec<Arc<AggregateUDF>> {
    RocFunction::ALL
        .iter()
        .map(|f| Arc::new(AggregateUDF::from(RocUdaf::new(*f))))
        .collect()
}

impl AggregateUDFImpl for RocUdaf {
    fn name(&self) -> &str {
        self.function.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let name = self.name();
        let numeric_constants = |types: &[DataType], names: &[&str]| -> Result<Vec<DataType>> {
            types
                .iter()
                .zip(names)
                .map(|(t, n)| {
                    if t.is_numeric() {
                        Ok(DataType::Float64)
                    } else {
                        plan_err!("{name}: {n} must be numeric, got {t}")
                    }
                })
                .collect()
        };
        match self.function {
            RocFunction::Youden | RocFunction::RocCurve => coerce_value_and_label(name, arg_types),
            RocFunction::SensitivityAtSpecificity | RocFunction::SpecificityAtSensitivity => {
                let arg = if self.function == RocFunction::SensitivityAtSpecificity {
                    "spec"
                } else {
                    "sens"
                };
                let [value, label, x] = arg_types else {
                    return plan_err!(
                        "{name}(value, is_case, {arg}) takes 3 arguments, got {}",
                        arg_types.len()
                    );
                };
                let mut types = coerce_value_and_label(name, &[value.clone(), label.clone()])?;
                types.extend(numeric_constants(std::slice::from_ref(x), &[arg])?);
                Ok(types)
            }
            RocFunction::PartialAuc => {
                if !(4..=5).contains(&arg_types.len()) {
                    return plan_err!(
                        "{name}(value, is_case, spec_low, spec_high [, mcclish]) takes 4 or 5 arguments, got {}",
                        arg_types.len()
                    );
                }
                let mut types = coerce_value_and_label(name, &arg_types[..2])?;
                types.extend(numeric_constants(
                    &arg_types[2..4],
                    &["spec_low", "spec_high"],
                )?);
                if let Some(t) = arg_types.get(4) {
                    if *t != DataType::Boolean {
                        return plan_err!("{name}: mcclish must be BOOLEAN, got {t}");
                    }
                    types.push(DataType::Boolean);
                }
                Ok(types)
            }
            RocFunction::RocTest => {
                if !(3..=4).contains(&arg_types.len()) {
                    return plan_err!(
                        "{name}(value_a, value_b, is_case [, level]) takes 3 or 4 arguments, got {}",
                        arg_types.len()
                    );
                }
                let mut types =
                    coerce_value_and_label(name, &[arg_types[0].clone(), arg_types[2].clone()])?;
                if !(arg_types[1].is_numeric() || arg_types[1].is_null()) {
                    return plan_err!("{name}: value_b must be numeric, got {}", arg_types[1]);
                }
                types.insert(1, DataType::Float64);
                if let Some(t) = arg_types.get(3) {
                    types.extend(numeric_constants(std::slice::from_ref(t), &["level"])?);
                }
                Ok(types)
            }
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.function {
            RocFunction::Youden => DataType::Struct(float_fields(&YOUDEN_FIELDS)),
            RocFunction::RocTest => DataType::Struct(float_fields(&ROC_TEST_FIELDS)),
            RocFunction::RocCurve => DataType::List(Arc::new(Field::new_list_field(
                DataType::Struct(point_fields()),
                true,
            ))),
            _ => DataType::Float64,
        })
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(match self.function {
            RocFunction::RocTest => Box::new(StateAccumulator::new(self.two_markers(&args)?)),
            _ => Box::new(StateAccumulator::new(self.one_marker(&args)?)),
        })
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        if self.function != RocFunction::RocTest {
            return Ok(GroupValues::state_fields(args.name));
        }
        let list = DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)));
        let names = ["case_a", "case_b", "control_a", "control_b"];
        Ok(names
            .iter()
            .map(|n| {
                Arc::new(Field::new(
                    format_state_name(args.name, n),
                    list.clone(),
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
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(match self.function {
            RocFunction::RocTest => Box::new(StateGroupsAccumulator::new(self.two_markers(&args)?)),
            _ => Box::new(StateGroupsAccumulator::new(self.one_marker(&args)?)),
        })
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(self.function.documentation())
    }
}

/// Two markers per sample, for cases and for controls.
#[derive(Debug, Default, Clone)]
pub struct PairedValues {
    case: Vec<(f64, f64)>,
    control: Vec<(f64, f64)>,
}

impl PairedValues {
    fn bytes(&self) -> usize {
        (self.case.capacity() + self.control.capacity()) * size_of::<(f64, f64)>()
    }
}

impl GroupState for PairedValues {
    fn update(
        groups: &mut [Self],
        values: &[ArrayRef],
        filter: Option<&BooleanArray>,
        group: impl Fn(usize) -> usize,
    ) -> Result<isize> {
        let [a, b, label, ..] = values else {
            return exec_err!("roc_test: expected 3 arguments, got {}", values.len());
        };
        let (a, b) = (
            a.as_primitive::<Float64Type>(),
            b.as_primitive::<Float64Type>(),
        );
        let label = label.as_boolean();
        let mut grew = 0;
        for row in 0..a.len() {
            if a.is_null(row) || b.is_null(row) || label.is_null(row) || !passes(filter, row) {
                continue;
            }
            let (x, y) = (a.value(row), b.value(row));
            if !(x.is_finite() && y.is_finite()) {
                continue;
            }
            let g = &mut groups[group(row)];
            let before = g.bytes();
            if label.value(row) {
                g.case.push((x, y));
            } else {
                g.control.push((x, y));
            }
            grew += g.bytes() - before;
        }
        Ok(grew as isize)
    }

    fn merge(
        groups: &mut [Self],
        states: &[ArrayRef],
        group: impl Fn(usize) -> usize,
    ) -> Result<isize> {
        let [ca, cb, ka, kb] = states else {
            return exec_err!("roc_test: expected 4 state arrays, got {}", states.len());
        };
        let lists = [ca, cb, ka, kb].map(|s| s.as_list::<i32>());
        let mut grew = 0;
        for row in 0..lists[0].len() {
            if lists.iter().any(|l| l.is_null(row)) {
                continue;
            }
            let v = lists.map(|l| l.value(row));
            let [ca, cb, ka, kb] = [&v[0], &v[1], &v[2], &v[3]]
                .map(|a| a.as_primitive::<Float64Type>().values().to_vec());
            let g = &mut groups[group(row)];
            let before = g.bytes();
            g.case.extend(ca.into_iter().zip(cb));
            g.control.extend(ka.into_iter().zip(kb));
            grew += g.bytes() - before;
        }
        Ok(grew as isize)
    }

    fn to_arrays(groups: &[Self]) -> Result<Vec<ArrayRef>> {
        let list = |pick: fn(&PairedValues) -> Vec<f64>| -> ArrayRef {
            let mut builder = ListBuilder::new(Float64Builder::new());
            for g in groups {
                builder.values().append_slice(&pick(g));
                builder.append(true);
            }
            Arc::new(builder.finish())
        };
        Ok(vec![
            list(|g| g.case.iter().map(|p| p.0).collect()),
            list(|g| g.case.iter().map(|p| p.1).collect()),
            list(|g| g.control.iter().map(|p| p.0).collect()),
            list(|g| g.control.iter().map(|p| p.1).collect()),
        ])
    }

    fn heap_bytes(&self) -> usize {
        self.bytes()
    }
}
