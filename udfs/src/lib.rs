//! Discern's statistical SQL functions for Apache DataFusion.
//!
//! Pure numeric code lives in [`kernels`] (no Arrow); each SQL function family wraps it in one
//! file. Every function is listed once here and registered by [`register_all`], which both
//! `discern query` and the server call, so the catalog is the same everywhere.

use std::sync::Arc;

use datafusion::error::Result;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF, WindowUDF};
use datafusion::prelude::SessionContext;

pub mod adjust;
pub mod contingency;
pub mod distributions;
mod docs;
pub mod kernels;
pub mod logistic;
pub mod moments;
pub mod paired;
pub mod power;
pub mod ranks;
pub mod reclassification;
pub mod roc;
pub mod roc_unpaired;
pub mod shared;
mod state;
mod two_group;

/// Every scalar function of the catalog.
pub fn all_scalar_functions() -> Vec<Arc<ScalarUDF>> {
    let mut functions = distributions::all();
    functions.extend(power::all());
    functions
}

/// Every aggregate function of the catalog.
pub fn all_aggregate_functions() -> Vec<Arc<AggregateUDF>> {
    let mut functions = moments::all();
    functions.extend(ranks::all());
    functions.extend(paired::all());
    functions.extend(contingency::all());
    functions.extend(roc::all());
    functions.extend(logistic::all());
    functions.extend(reclassification::all());
    functions.extend(roc_unpaired::all());
    functions
}

/// Every window function of the catalog.
pub fn all_window_functions() -> Vec<Arc<WindowUDF>> {
    adjust::all()
}

/// Whether the aggregate named `name` keeps every value of a group in its state (rank and ROC
/// statistics, the signed-rank test, the regressions, the shared state of `shared`, and
/// DataFusion's exact median and percentiles): its memory grows with the number of distinct
/// values, so a grouped aggregation of it needs to be able to spill by group
/// (`src/bounded_aggregate` in the `discern` crate).
pub fn keeps_values(name: &str) -> bool {
    name == shared::SHARED_NAME
        || ranks::RankStatistic::ALL.iter().any(|s| s.name() == name)
        || roc::RocFunction::ALL.iter().any(|f| f.name() == name)
        || name == roc_unpaired::NAME
        || logistic::Model::ALL.iter().any(|m| m.name() == name)
        || name == paired::PairedTest::SignedRank.name()
        || matches!(name, "median" | "percentile_cont" | "quantile_cont")
}

/// Registers every function of the catalog with a session.
pub fn register_all(ctx: &SessionContext) -> Result<()> {
    register_functions(ctx)?;
    // Rank statistics of the same (value, is_case) share one state (see `shared`).
    ctx.add_optimizer_rule(Arc::new(shared::ShareTwoGroupState));
    Ok(())
}

/// Registers every function of [`register_all`] without the shared-state rule (for sessions
/// whose plans travel to other processes by function name: see `shared`).
pub fn register_functions(ctx: &SessionContext) -> Result<()> {
    for f in all_scalar_functions() {
        ctx.register_udf(f.as_ref().clone());
    }
    for f in all_aggregate_functions() {
        ctx.register_udaf(f.as_ref().clone());
    }
    for f in all_window_functions() {
        ctx.register_udwf(f.as_ref().clone());
    }
    Ok(())
}
