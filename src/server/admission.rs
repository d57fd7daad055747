//! Memory you can predict in the server: admission control (a query runs only when it can
//! have its share of the memory limit; the others wait in a queue), per-session memory
//! accounting, and `discern.queries`, the table of running and queued queries.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::array::{Float64Array, Int32Array, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Result as DfResult;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};
use datafusion::logical_expr::{Expr, LogicalPlan, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use datafusion::sql::sqlparser::ast::{Statement, visit_relations};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The session's query planner: DataFusion's, keeping each physical plan it makes until the
/// statement ends, so that the audit log can read what its operators spilled (the metrics
/// live in the plan). Plans are forgotten at every statement's end.
#[derive(Debug, Default)]
pub struct RecordingPlanner {
    plans: Mutex<Vec<Arc<dyn ExecutionPlan>>>,
    /// The planner it records for (DataFusion's when not set).
    inner: std::sync::OnceLock<Arc<dyn QueryPlanner + Send + Sync>>,
}

#[async_trait]
impl QueryPlanner for RecordingPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let plan = match self.inner.get() {
            Some(inner) => inner.create_physical_plan(logical_plan, session).await?,
            None => {
                DefaultPhysicalPlanner::default()
                    .create_physical_plan(logical_plan, session)
                    .await?
            }
        };
        if let Ok(mut plans) = self.plans.lock() {
            plans.push(Arc::clone(&plan));
        }
        Ok(plan)
    }
}

impl RecordingPlanner {
    /// Records the plans of `inner` (set once, before the planner is used).
    pub fn wrap(&self, inner: Arc<dyn QueryPlanner + Send + Sync>) {
        let _ = self.inner.set(inner);
    }

    /// Bytes spilled by the plans made since the last call, and what the last of them that
    /// ran on the cluster did there; forgets them.
    pub fn take_finished(&self) -> (usize, Option<Arc<crate::cluster::ClusterRun>>) {
        let plans = match self.plans.lock() {
            Ok(mut plans) => std::mem::take(&mut *plans),
            Err(_) => return (0, None),
        };
        let spilled = plans.iter().map(|p| crate::query::spills(p).0).sum();
        (spilled, plans.iter().rev().find_map(crate::cluster::run_of))
    }
}

/// One session's view of the shared memory pool: every reservation goes to the shared pool
/// (which enforces the limit), and the session counts what its query holds now and at most.
pub struct SessionPool {
    inner: Arc<dyn MemoryPool>,
    used: AtomicUsize,
    peak: AtomicUsize,
    /// Per memory consumer (operator instance) of the current statement: name, now, peak.
    consumers: std::sync::Mutex<std::collections::BTreeMap<usize, ConsumerUse>>,
}

/// What one memory consumer held.
#[derive(Debug, Clone)]
pub struct ConsumerUse {
    pub name: String,
    pub can_spill: bool,
    pub now: usize,
    pub peak: usize,
}

impl fmt::Debug for SessionPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionPool")
            .field("used", &self.used.load(Ordering::Relaxed))
            .finish()
    }
}

impl fmt::Display for SessionPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "session pool holding {} bytes of {}",
            self.used(),
            self.inner
        )
    }
}

impl SessionPool {
    pub fn new(inner: Arc<dyn MemoryPool>) -> Self {
        Self {
            inner,
            used: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            consumers: std::sync::Mutex::new(std::collections::BTreeMap::new()),
        }
    }

    /// What each memory consumer of the current statement held, largest peak first.
    pub fn consumers(&self) -> Vec<ConsumerUse> {
        let mut all: Vec<ConsumerUse> = self
            .consumers
            .lock()
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default();
        all.sort_by(|a, b| b.peak.cmp(&a.peak).then_with(|| a.name.cmp(&b.name)));
        all
    }

    fn track(&self, reservation: &MemoryReservation, grow: usize, shrink: usize) {
        if let Ok(mut consumers) = self.consumers.lock() {
            let consumer = reservation.consumer();
            let entry = consumers
                .entry(consumer.id())
                .or_insert_with(|| ConsumerUse {
                    name: consumer.name().to_string(),
                    can_spill: consumer.can_spill(),
                    now: 0,
                    peak: 0,
                });
            entry.now = (entry.now + grow).saturating_sub(shrink);
            entry.peak = entry.peak.max(entry.now);
        }
    }

    /// Bytes the session's query holds now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The most it held since the last [`SessionPool::reset_peak`].
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Starts a new high-water mark (at each statement).
    pub fn reset_peak(&self) {
        self.peak.store(self.used(), Ordering::Relaxed);
        if let Ok(mut consumers) = self.consumers.lock() {
            consumers.retain(|_, c| c.now > 0);
            for c in consumers.values_mut() {
                c.peak = c.now;
            }
        }
    }

    fn add(&self, n: usize) {
        let now = self.used.fetch_add(n, Ordering::Relaxed) + n;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }
}

impl MemoryPool for SessionPool {
    fn name(&self) -> &str {
        "discern-session"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.inner.register(consumer)
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.inner.unregister(consumer)
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.inner.grow(reservation, additional);
        self.add(additional);
        self.track(reservation, additional, 0);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.inner.shrink(reservation, shrink);
        self.track(reservation, 0, shrink);
        // Never below zero, whatever the order of concurrent updates.
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                Some(u.saturating_sub(shrink))
            });
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> DfResult<()> {
        self.inner.try_grow(reservation, additional)?;
        self.add(additional);
        self.track(reservation, additional, 0);
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.inner.reserved()
    }

    fn memory_limit(&self) -> MemoryLimit {
        self.inner.memory_limit()
    }
}

/// Admission: at most `slots` queries run at once, each with at least `limit / slots` of the
/// memory limit to itself; the others wait, first come first served.
pub struct Admission {
    slots: Arc<Semaphore>,
    total: usize,
    timeout: Option<Duration>,
}

/// Why a query could not start.
pub enum Refused {
    /// It waited longer than the queue timeout.
    Timeout { waited: Duration, running: usize },
}

impl Admission {
    pub fn new(slots: usize, timeout: Option<Duration>) -> Self {
        let slots = slots.max(1);
        Self {
            slots: Arc::new(Semaphore::new(slots)),
            total: slots,
            timeout,
        }
    }

    /// How many queries may run at once.
    pub fn slots(&self) -> usize {
        self.total
    }

    /// Waits for a slot (cancel by dropping the future).
    pub async fn admit(&self) -> Result<OwnedSemaphorePermit, Refused> {
        let started = std::time::Instant::now();
        let acquire = self.slots.clone().acquire_owned();
        let permit = match self.timeout {
            Some(t) => match tokio::time::timeout(t, acquire).await {
                Ok(p) => p,
                Err(_) => {
                    return Err(Refused::Timeout {
                        waited: started.elapsed(),
                        running: self.total - self.slots.available_permits(),
                    });
                }
            },
            None => acquire.await,
        };
        // The semaphore is never closed.
        permit.map_err(|_| Refused::Timeout {
            waited: started.elapsed(),
            running: self.total,
        })
    }
}

/// Whether a statement needs a slot: anything that reads a table other than the catalogs.
/// `SELECT 1`, `SET`, `SHOW`, transaction control and catalog browsing (pg_catalog,
/// information_schema, discern.queries) never wait behind heavy queries.
pub fn needs_slot(statement: &Statement) -> bool {
    let mut data = false;
    let _ = visit_relations(statement, |name| {
        let text = name.to_string().to_ascii_lowercase();
        let catalog = text.starts_with("pg_catalog.")
            || text.starts_with("information_schema.")
            || text.starts_with("discern.")
            || (text.starts_with("pg_") && !text.contains('.'));
        if !catalog {
            data = true;
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    data
}

/// One row of `discern.queries`.
pub struct QueryRow {
    pub pid: i32,
    pub user: String,
    pub client: String,
    pub state: &'static str,
    pub elapsed: Duration,
    pub memory: usize,
    pub peak_memory: usize,
    pub statement: String,
}

/// A source of the current rows (the server's connection registry).
pub trait QuerySource: Send + Sync + fmt::Debug {
    /// The rows as `viewer` may see them.
    fn rows(&self, viewer: &str) -> Vec<QueryRow>;
}

/// `discern.queries`: running and queued queries, with their user, elapsed time and the
/// memory they hold now and at most. Other users' statements read `<hidden>`, as
/// PostgreSQL's `pg_stat_activity` hides them from non-superusers.
#[derive(Debug)]
pub struct QueriesTable {
    source: Arc<dyn QuerySource>,
    viewer: String,
    schema: SchemaRef,
}

impl QueriesTable {
    pub fn new(source: Arc<dyn QuerySource>, viewer: &str) -> Self {
        let schema = Arc::new(Schema::new(vec![
            Field::new("pid", DataType::Int32, false),
            Field::new("user_name", DataType::Utf8, false),
            Field::new("client", DataType::Utf8, false),
            Field::new("state", DataType::Utf8, false),
            Field::new("elapsed_s", DataType::Float64, false),
            Field::new("memory_bytes", DataType::UInt64, false),
            Field::new("peak_memory_bytes", DataType::UInt64, false),
            Field::new("statement", DataType::Utf8, false),
        ]));
        Self {
            source,
            viewer: viewer.to_string(),
            schema,
        }
    }

    fn batch(&self) -> DfResult<RecordBatch> {
        let rows = self.source.rows(&self.viewer);
        Ok(RecordBatch::try_new(
            self.schema.clone(),
            vec![
                Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.pid))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.user))),
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| &r.client),
                )),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.state))),
                Arc::new(Float64Array::from_iter_values(
                    rows.iter().map(|r| r.elapsed.as_secs_f64()),
                )),
                Arc::new(UInt64Array::from_iter_values(
                    rows.iter().map(|r| r.memory as u64),
                )),
                Arc::new(UInt64Array::from_iter_values(
                    rows.iter().map(|r| r.peak_memory as u64),
                )),
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| &r.statement),
                )),
            ],
        )?)
    }
}

#[async_trait]
impl TableProvider for QueriesTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let batch = self.batch()?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}
