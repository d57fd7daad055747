//! `reclassification(p_old, p_new, is_case [, cutoffs])`: does a new risk model (p_new)
//! classify better than the old one (p_old)? The NRI and IDI of Pencina et al. The state is
//! counts and moments per outcome, so partial states merge in any order (to rounding). Rows
//! with a NULL or NaN probability or a NULL label are skipped, as R drops NAs; a probability
//! outside [0, 1] is an error naming it. The kernel is [`crate::kernels::reclassification`].

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, ListArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, UInt64Type};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, GroupsAccumulator, Signature,
    Volatility,
};

use crate::docs::{SECTION, doc};
use crate::kernels::reclassification::{FIELDS, Moves, category, reclassification};
use crate::moments::{moments_columns, read_moments};
use crate::state::{
    Evaluate, GroupState, StateAccumulator, StateGroupsAccumulator, float_fields, float_struct,
    literal, passes,
};

/// The UDAF.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ReclassificationUdaf {
    signature: Signature,
}

impl Default for ReclassificationUdaf {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// Every function of the family, for registration.
pub fn all() -> Vec<Arc<AggregateUDF>> {
    vec![Arc::new(
        AggregateUDF::from(ReclassificationUdaf::default()),
    )]
}

fn documentation() -> &'static Documentation {
    static DOC: OnceLock<Documentation> = OnceLock::new();
    DOC.get_or_init(|| {
        doc(
            SECTION,
            "Whether a new risk model reclassifies cases (events) and controls (non-events) \
             better than an old one, from each row's predicted risks under both (for example \
             the fitted probabilities of logistic_regression without and with a biomarker). \
             Net reclassification improvement: nri_events = (up − down) / n among events, \
             nri_nonevents = (down − up) / n among non-events, nri their sum, with Pencina's \
             standard error se = √(Σ (up + down)/n² − (up − down)²/n³), z = nri / se and the \
             two-sided normal p. Without cutoffs a row moves up when p_new > p_old \
             (continuous NRI); with cutoffs (an ascending ARRAY of risk thresholds in (0, 1)) \
             when its risk category rises, categories (−∞, c₁], (c₁, c₂], … as R's cut(). \
             Integrated discrimination improvement: idi = mean(p_new − p_old) of the events \
             − that of the non-events, idi_se = √(var_events/n_events + \
             var_nonevents/n_nonevents) (sample variances), idi_z, idi_p; \
             improve_sensitivity and improve_specificity are its two parts. Matches R's \
             Hmisc::improveProb(p_old, p_new, is_case) (continuous NRI and IDI). NULL without \
             events or non-events; a z and its p are NULL where the standard error is 0 or \
             undefined.",
            "reclassification(p_old, p_new, is_case [, cutoffs])",
            "SELECT reclassification(p_clinical, p_with_marker, is_case)['nri'] AS nri,\n       reclassification(p_clinical, p_with_marker, is_case, [0.1, 0.3])['p'] AS categorical_p\nFROM risks;",
        )
        .with_argument("p_old", "The risk under the old model, a probability in [0, 1].")
        .with_argument("p_new", "The risk under the new model, a probability in [0, 1].")
        .with_argument(
            "is_case",
            "BOOLEAN outcome: true for events (cases), false for non-events.",
        )
        .with_argument(
            "cutoffs",
            "Optional constant ARRAY of ascending risk thresholds in (0, 1): categorical NRI.",
        )
        .build()
    })
}

/// Events and non-events of one group.
#[derive(Debug, Clone, Default)]
pub struct Reclassified {
    events: Moves,
    nonevents: Moves,
}

/// The constant cutoffs of a call, checked.
fn cutoffs_argument(args: &AccumulatorArgs) -> Result<Option<Vec<f64>>> {
    if args.exprs.len() < 4 {
        return Ok(None);
    }
    let Some(ScalarValue::List(list)) = literal(args, 3) else {
        return plan_err!("reclassification: cutoffs must be a constant ARRAY of numbers");
    };
    let values = list.value(0);
    let values = datafusion::arrow::compute::cast(&values, &DataType::Float64)?;
    let values = values.as_primitive::<Float64Type>();
    let cutoffs: Vec<f64> = values.iter().flatten().collect();
    let ascending = cutoffs.windows(2).all(|w| w[0] < w[1]);
    if values.null_count() > 0
        || cutoffs.is_empty()
        || !ascending
        || cutoffs.iter().any(|c| !(*c > 0.0 && *c < 1.0))
    {
        return plan_err!(
            "reclassification: cutoffs must be ascending risks in (0, 1), got {cutoffs:?}"
        );
    }
    Ok(Some(cutoffs))
}

impl GroupState for Reclassified {
    fn update(
        groups: &mut [Self],
        values: &[ArrayRef],
        filter: Option<&BooleanArray>,
        group: impl Fn(usize) -> usize,
    ) -> Result<isize> {
        let (Some(old), Some(new), Some(label)) = (values.first(), values.get(1), values.get(2))
        else {
            return exec_err!("reclassification: expected (p_old, p_new, is_case)");
        };
        let (old, new, label) = (
            old.as_primitive::<Float64Type>(),
            new.as_primitive::<Float64Type>(),
            label.as_boolean(),
        );
        // The cutoffs are a constant: the list of the first row holds them.
        let cutoffs: Option<Vec<f64>> = match values.get(3) {
            Some(list) if !list.is_empty() => {
                let list: &ListArray = list.as_list::<i32>();
                let first = list.value(0);
                Some(
                    first
                        .as_primitive::<Float64Type>()
                        .iter()
                        .flatten()
                        .collect(),
                )
            }
            _ => None,
        };
        for row in 0..old.len() {
            if old.is_null(row) || new.is_null(row) || label.is_null(row) || !passes(filter, row) {
                continue;
            }
            let (p0, p1) = (old.value(row), new.value(row));
            if p0.is_nan() || p1.is_nan() {
                continue;
            }
            for p in [p0, p1] {
                if !(0.0..=1.0).contains(&p) {
                    return exec_err!(
                        "reclassification: p_old and p_new must be probabilities in [0, 1], got {p}"
                    );
                }
            }
            let (up, down) = match &cutoffs {
                Some(c) => {
                    let (a, b) = (category(p0, c), category(p1, c));
                    (b > a, b < a)
                }
                None => (p1 > p0, p1 < p0),
            };
            let g = &mut groups[group(row)];
            let side = if label.value(row) {
                &mut g.events
            } else {
                &mut g.nonevents
            };
            side.up += u64::from(up);
            side.down += u64::from(down);
            side.change.push(p1 - p0);
        }
        Ok(0)
    }

    fn merge(
        groups: &mut [Self],
        states: &[ArrayRef],
        group: impl Fn(usize) -> usize,
    ) -> Result<isize> {
        if states.len() != 12 {
            return exec_err!(
                "reclassification: expected 12 state arrays, got {}",
                states.len()
            );
        }
        let count = |i: usize, row: usize| states[i].as_primitive::<UInt64Type>().value(row);
        for row in 0..states[0].len() {
            if states[0].is_null(row) {
                continue;
            }
            let g = &mut groups[group(row)];
            for (side, base) in [(&mut g.events, 0), (&mut g.nonevents, 6)] {
                let Some(change) = read_moments(&states[base + 2..base + 6], row) else {
                    continue;
                };
                side.merge(&Moves {
                    up: count(base, row),
                    down: count(base + 1, row),
                    change,
                });
            }
        }
        Ok(0)
    }

    fn to_arrays(groups: &[Self]) -> Result<Vec<ArrayRef>> {
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(12);
        for side in [|g: &Reclassified| g.events, |g: &Reclassified| g.nonevents] {
            arrays.push(Arc::new(UInt64Array::from_iter_values(
                groups.iter().map(|g| side(g).up),
            )));
            arrays.push(Arc::new(UInt64Array::from_iter_values(
                groups.iter().map(|g| side(g).down),
            )));
            arrays.extend(moments_columns(groups.iter().map(|g| side(g).change)));
        }
        Ok(arrays)
    }
}

fn evaluate() -> Evaluate<Reclassified> {
    Evaluate::new(|groups: &mut [Reclassified]| {
        float_struct(
            &FIELDS,
            groups
                .iter()
                .map(|g| reclassification(&g.events, &g.nonevents)),
        )
    })
}

impl AggregateUDFImpl for ReclassificationUdaf {
    fn name(&self) -> &str {
        "reclassification"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if !(3..=4).contains(&arg_types.len()) {
            return plan_err!(
                "reclassification takes 3 or 4 arguments, got {}",
                arg_types.len()
            );
        }
        for (what, t) in ["p_old", "p_new"].iter().zip(arg_types) {
            if !(t.is_numeric() || t.is_null()) {
                return plan_err!("reclassification: {what} must be numeric, got {t}");
            }
        }
        if !matches!(arg_types[2], DataType::Boolean | DataType::Null) {
            return plan_err!(
                "reclassification: is_case must be BOOLEAN, got {}",
                arg_types[2]
            );
        }
        let mut types = vec![DataType::Float64, DataType::Float64, DataType::Boolean];
        if let Some(t) = arg_types.get(3) {
            match t {
                DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _)
                    if f.data_type().is_numeric() =>
                {
                    types.push(DataType::new_list(DataType::Float64, true))
                }
                other => {
                    return plan_err!(
                        "reclassification: cutoffs must be an ARRAY of numbers, got {other}"
                    );
                }
            }
        }
        Ok(types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(float_fields(&FIELDS)))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        cutoffs_argument(&args)?;
        Ok(Box::new(StateAccumulator::new(evaluate())))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let mut fields = Vec::with_capacity(12);
        for side in ["events", "nonevents"] {
            for (n, t) in [
                ("up", DataType::UInt64),
                ("down", DataType::UInt64),
                ("n", DataType::UInt64),
                ("mean", DataType::Float64),
                ("mean_lo", DataType::Float64),
                ("m2", DataType::Float64),
            ] {
                fields.push(Arc::new(Field::new(
                    format_state_name(args.name, &format!("{side}_{n}")),
                    t,
                    true,
                )));
            }
        }
        Ok(fields)
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        cutoffs_argument(&args)?;
        Ok(Box::new(StateGroupsAccumulator::new(evaluate())))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(documentation())
    }
}
