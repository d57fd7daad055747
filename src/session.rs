//! Builds the DataFusion session every command runs on: the memory pool and spill directory,
//! the statistical functions, the tables, and the read-only statement policy.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::common::config::{ConfigOptions, SpillCompression};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{
    FairSpillPool, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation, TrackConsumersPool,
};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::logical_expr::{DdlStatement, LogicalPlan, Statement};
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::config::{ByteSize, Config};
use crate::error::{Error, Result};
use crate::storage::parquet::FileTracker;

/// A session and what it was built with.
pub struct Engine {
    /// The DataFusion session: functions, tables, memory pool.
    pub ctx: SessionContext,
    /// The pool that bounds what queries hold; it remembers its high-water mark.
    pub pool: Arc<PeakMemoryPool>,
    /// The Parquet files scans are reading, to name a corrupt one when a query fails.
    pub files: Arc<FileTracker>,
}

impl Engine {
    /// Builds the session and registers the configured tables (or the demo dataset).
    pub async fn new(config: &Config) -> Result<Self> {
        let (runtime, pool) = runtime_env(config)?;
        let session = crate::cluster::configure(session_config(config), &config.cluster)?;
        let state = with_discern_rules(
            SessionStateBuilder::new()
                .with_config(session)
                .with_runtime_env(runtime)
                .with_default_features(),
        )
        .build();
        let ctx = SessionContext::new_with_state(state);
        register_statistics(&ctx)?;
        let files = Arc::new(FileTracker::default());
        crate::storage::register_tables(&ctx, config, &files).await?;
        Ok(Self { ctx, pool, files })
    }
}

/// The runtime every query of the process runs in: the memory pool of the configured limit
/// (which remembers its peak) and the spill directory.
pub fn runtime_env(config: &Config) -> Result<(Arc<RuntimeEnv>, Arc<PeakMemoryPool>)> {
    let pool = Arc::new(PeakMemoryPool::new(config.effective_memory_limit()));
    let mut disk = DiskManagerBuilder::default();
    if let Some(dir) = &config.spill_dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Config(format!("spill directory {}: {e}", dir.display())))?;
        disk = disk.with_mode(DiskManagerMode::Directories(vec![dir.clone()]));
    }
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(pool.clone())
        .with_disk_manager_builder(disk)
        .build_arc()?;
    Ok((runtime, pool))
}

/// How many partitions a query runs in: configured, else the number of cores.
pub fn partitions(config: &Config) -> usize {
    config
        .target_partitions
        .or_else(|| {
            std::thread::available_parallelism()
                .ok()
                .map(NonZeroUsize::get)
        })
        .unwrap_or(1)
        .max(1)
}

/// The session settings of every query: partitions, spill compression, what sorts keep back
/// for merging, Parquet filter pushdown.
pub fn session_config(config: &Config) -> SessionConfig {
    let partitions = partitions(config);
    let mut session = SessionConfig::new()
        .with_information_schema(true)
        .with_target_partitions(partitions)
        .with_default_catalog_and_schema("datafusion", "public");
    tune(
        session.options_mut(),
        config.effective_memory_limit().as_usize(),
        partitions,
    );
    session
}

/// The execution options Discern sets for a memory limit and a number of partitions (also
/// on cluster workers, which do not receive the coordinator's).
pub fn tune(options: &mut ConfigOptions, memory_limit: usize, partitions: usize) {
    options.execution.target_partitions = partitions;
    // Spill files are written once and read once: cheap compression halves the disk I/O.
    options.execution.spill_compression = SpillCompression::Lz4Frame;
    options.execution.sort_spill_reservation_bytes =
        sort_merge_reservation(memory_limit, partitions);
    // Filters on biomarker / sample_id skip row groups and pages, not just files.
    options.execution.parquet.pushdown_filters = true;
    options.execution.parquet.reorder_filters = true;
}

/// Registers Discern's statistical functions, and the rule that serves several rank
/// statistics from one state, except on a cluster coordinator: datafusion-distributed ships
/// aggregate functions by name, and the shared state's configuration lives in its instance.
pub fn register_statistics(ctx: &SessionContext) -> Result<()> {
    if crate::cluster::is_coordinator(ctx.state().config()) {
        discern_udfs::register_functions(ctx)?;
    } else {
        discern_udfs::register_all(ctx)?;
    }
    Ok(())
}

/// What each sort keeps back, from its first batch, for merging the runs it may spill
/// (DataFusion counts it as held although nothing is allocated until a merge). A share of the
/// pool, but at most 64 MiB: with half of the pool per partition (the rule before) the pool
/// reported gigabytes held by sorts of a thousand rows and left every other operator a
/// sliver of a small limit. Less does not do: DataFusion's merge grows past its reservation
/// while the sort still holds its last run, and fails at 128 MiB with 16 MiB kept back
/// (tests/memory_limit.rs).
pub fn sort_merge_reservation(limit: usize, partitions: usize) -> usize {
    (limit / (4 * partitions.max(1))).clamp(1 << 20, 64 << 20)
}

/// Adds Discern's physical optimizer rules to a session being built: aggregations whose
/// states keep every value of a group run in a [`BoundedAggregateExec`], which spills by
/// group hash (`src/bounded_aggregate`).
///
/// [`BoundedAggregateExec`]: crate::bounded_aggregate::BoundedAggregateExec
pub fn with_discern_rules(builder: SessionStateBuilder) -> SessionStateBuilder {
    let builder = builder
        .with_physical_optimizer_rule(Arc::new(crate::bounded_aggregate::BoundValueAggregates));
    // A cluster coordinator's sessions plan on the workers (no-op otherwise).
    crate::cluster::attach(builder)
}

/// Rejects what a read-only analytics engine must not run: writes (INSERT, COPY TO), tables
/// created from SQL (CREATE EXTERNAL TABLE could name any path or bucket), and changes to the
/// runtime (`SET datafusion.runtime.memory_limit` would replace the memory pool).
/// Views, queries, EXPLAIN and ordinary `SET`s are allowed.
pub fn check_statement_allowed(plan: &LogicalPlan) -> DfResult<()> {
    plan.apply_with_subqueries(|node| {
        let refuse = |what: String| Err(DataFusionError::Plan(what));
        match node {
            LogicalPlan::Dml(dml) => refuse(format!(
                "{} is not allowed: Discern only reads data (write results with --output)",
                dml.op
            )),
            LogicalPlan::Copy(_) => refuse(
                "COPY ... TO is not allowed: Discern only reads data (write results with --output)"
                    .into(),
            ),
            LogicalPlan::Ddl(DdlStatement::CreateView(_) | DdlStatement::DropView(_)) => {
                Ok(TreeNodeRecursion::Continue)
            }
            LogicalPlan::Ddl(ddl) => refuse(format!(
                "{} is not allowed: tables are declared in the configuration (--config, --table)",
                ddl.name()
            )),
            LogicalPlan::Statement(Statement::SetVariable(s)) if is_runtime(&s.variable) => {
                refuse(format!(
                    "SET {} is not allowed: the memory limit and spill directory are fixed at \
                     startup (--memory-limit, --spill-dir)",
                    s.variable
                ))
            }
            LogicalPlan::Statement(Statement::ResetVariable(s)) if is_runtime(&s.variable) => {
                refuse(format!(
                    "RESET {} is not allowed: runtime settings are fixed at startup",
                    s.variable
                ))
            }
            _ => Ok(TreeNodeRecursion::Continue),
        }
    })?;
    Ok(())
}

fn is_runtime(variable: &str) -> bool {
    variable
        .to_ascii_lowercase()
        .starts_with("datafusion.runtime")
}

/// A fair spill pool (sorts and aggregations share the memory and spill when they reach
/// their share) with consumer tracking for error messages, which also records the highest
/// reservation it has seen.
#[derive(Debug)]
pub struct PeakMemoryPool {
    inner: TrackConsumersPool<FairSpillPool>,
    limit: ByteSize,
    peak: AtomicUsize,
}

impl PeakMemoryPool {
    /// A pool of `limit` bytes.
    pub fn new(limit: ByteSize) -> Self {
        Self {
            inner: TrackConsumersPool::new(
                FairSpillPool::new(limit.as_usize()),
                NonZeroUsize::MIN.saturating_add(4),
            ),
            limit,
            peak: AtomicUsize::new(0),
        }
    }

    /// The pool's size.
    pub fn limit(&self) -> ByteSize {
        self.limit
    }

    /// The most memory reserved at any one time since the last [`Self::reset_peak`].
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Starts a new high-water mark from what is reserved now.
    pub fn reset_peak(&self) {
        self.peak.store(self.inner.reserved(), Ordering::Relaxed);
    }

    fn record(&self) {
        self.peak
            .fetch_max(self.inner.reserved(), Ordering::Relaxed);
    }
}

impl fmt::Display for PeakMemoryPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "memory limit {} ({})", self.limit, self.inner)
    }
}

impl MemoryPool for PeakMemoryPool {
    fn name(&self) -> &str {
        "discern"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.inner.register(consumer)
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.inner.unregister(consumer)
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.inner.grow(reservation, additional);
        self.record();
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.inner.shrink(reservation, shrink)
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> DfResult<()> {
        self.inner
            .try_grow(reservation, additional)
            .map_err(|e| match e {
                DataFusionError::ResourcesExhausted(msg) => {
                    DataFusionError::ResourcesExhausted(format!(
                        "the query needs more than the memory limit of {}: {msg}",
                        self.limit
                    ))
                }
                other => other,
            })?;
        self.record();
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.inner.reserved()
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limit.as_usize())
    }
}
