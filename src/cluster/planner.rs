//! The coordinator's planner: datafusion-distributed's, wrapped so that a statement that loses
//! a worker before any row has been produced is planned again on the live workers and run
//! again (a bounded number of times), so that `EXPLAIN` shows the distributed plan, and so
//! that each statement records the workers, stages and retries it used.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result, exec_err};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::context::{QueryPlanner, SessionState};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Explain, LogicalPlan};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use datafusion_distributed::{
    DistributedExec, DistributedMetricsFormat, NetworkBoundaryExt, RouteTasksEvent,
    RouteTasksEventResponse, RouteTasksHandler, display_plan_ascii,
    rewrite_distributed_plan_with_metrics,
};
use futures::{StreamExt, TryStreamExt};
use url::Url;

use super::resolver::Workers;
use super::{Cluster, ClusterError};

/// After a transport error with every worker answering, how many more probes, this far apart.
const PROBE_AGAIN: usize = 4;
const PROBE_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);

/// What one statement did on the cluster.
#[derive(Debug, Default)]
pub struct ClusterRun {
    workers: Mutex<BTreeSet<Url>>,
    stages: AtomicUsize,
    tasks: AtomicUsize,
    retries: AtomicUsize,
    shuffled_bytes: AtomicUsize,
}

impl ClusterRun {
    /// Distinct workers that ran a task of the statement (over every attempt).
    pub fn workers(&self) -> usize {
        self.workers.lock().map_or(0, |w| w.len())
    }
    /// Stages of the last attempt's plan, the coordinator's own included.
    pub fn stages(&self) -> usize {
        self.stages.load(Ordering::Relaxed)
    }
    /// Tasks sent to workers by the last attempt.
    pub fn tasks(&self) -> usize {
        self.tasks.load(Ordering::Relaxed)
    }
    /// How many times the statement was planned and run again after losing a worker.
    pub fn retries(&self) -> usize {
        self.retries.load(Ordering::Relaxed)
    }
    /// Bytes received over the network between stages (encoded Arrow), when the statement
    /// ran to the end.
    pub fn shuffled_bytes(&self) -> usize {
        self.shuffled_bytes.load(Ordering::Relaxed)
    }
}

impl fmt::Display for ClusterRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "workers={} stages={} tasks={} retries={} shuffled_bytes={}",
            self.workers(),
            self.stages(),
            self.tasks(),
            self.retries(),
            self.shuffled_bytes()
        )
    }
}

/// What a statement's plan did on the cluster, if it ran there (a plan the coordinator ran
/// alone, such as a catalog query, has none).
pub fn run_of(plan: &Arc<dyn ExecutionPlan>) -> Option<Arc<ClusterRun>> {
    plan.downcast_ref::<RetryExec>().map(|r| Arc::clone(&r.run))
}

/// Datafusion-distributed's planner inside Discern's.
pub(super) struct ClusterPlanner {
    distributed: Arc<dyn QueryPlanner + Send + Sync>,
    /// The session's planner before the cluster's (DataFusion's when it had none).
    local: Arc<dyn QueryPlanner + Send + Sync>,
    cluster: Arc<Cluster>,
}

impl fmt::Debug for ClusterPlanner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterPlanner")
    }
}

impl ClusterPlanner {
    pub(super) fn new(
        distributed: Option<Arc<dyn QueryPlanner + Send + Sync>>,
        local: Option<Arc<dyn QueryPlanner + Send + Sync>>,
        cluster: Arc<Cluster>,
    ) -> Self {
        Self {
            distributed: distributed.unwrap_or_else(|| Arc::new(LocalPlanner)),
            local: local.unwrap_or_else(|| Arc::new(LocalPlanner)),
            cluster,
        }
    }

    /// Plans on the live workers, or fails (or plans for the coordinator alone, if so
    /// configured) when there are none.
    async fn plan(
        &self,
        logical: &LogicalPlan,
        state: &SessionState,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let live = self.cluster.workers.live();
        if live.is_empty() {
            // Statements that read no files (catalog queries) never needed a worker.
            let local = self.local.create_physical_plan(logical, state).await?;
            if self.cluster.single_node_fallback || !reads_files(&local) {
                return Ok(local);
            }
            return Err(no_workers(&self.cluster.workers));
        }
        // One worker still gets the work (two tasks on it): datafusion-distributed would
        // otherwise plan everything for the coordinator.
        let mut state = state.clone();
        state.config_mut().options_mut().set(
            "distributed.max_tasks_per_stage",
            &live.len().max(2).to_string(),
        )?;
        self.distributed.create_physical_plan(logical, &state).await
    }

    /// `EXPLAIN` of a statement that runs on the cluster: its stages, tasks and the workers
    /// they would run on now.
    async fn explain(
        &self,
        explain: &Explain,
        state: &SessionState,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let plan = self.plan(&explain.plan, state).await?;
        if !plan.is::<DistributedExec>() {
            return Ok(None);
        }
        let workers: Vec<String> = self
            .cluster
            .workers
            .live()
            .iter()
            .map(Url::to_string)
            .collect();
        let (stages, tasks) = stages_and_tasks(&plan);
        let text = format!(
            "{}\nstages={stages} tasks={tasks} workers={} [{}]",
            display_plan_ascii(plan.as_ref(), false).trim_end(),
            workers.len(),
            workers.join(", ")
        );
        let schema: SchemaRef = Arc::new(explain.schema.as_arrow().clone());
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from(vec!["distributed_plan"])),
                Arc::new(StringArray::from(vec![text])),
            ],
        )?;
        Ok(Some(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            schema,
            None,
        )?))
    }
}

#[async_trait]
impl QueryPlanner for ClusterPlanner {
    async fn create_physical_plan(
        &self,
        logical: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(state) = session.as_any().downcast_ref::<SessionState>() else {
            return self
                .distributed
                .create_physical_plan(logical, session)
                .await;
        };
        if let LogicalPlan::Explain(explain) = logical
            && !explain.verbose
            && let Some(plan) = self.explain(explain, state).await?
        {
            return Ok(plan);
        }
        let plan = self.plan(logical, state).await?;
        if !plan.is::<DistributedExec>() {
            // Catalog queries, EXPLAIN ANALYZE, statements without a file scan.
            return Ok(plan);
        }
        Ok(Arc::new(RetryExec::new(
            plan,
            Arc::new(Replan {
                planner: Arc::new(ClusterPlanner {
                    distributed: Arc::clone(&self.distributed),
                    local: Arc::clone(&self.local),
                    cluster: Arc::clone(&self.cluster),
                }),
                logical: logical.clone(),
                state: state.clone(),
            }),
        )))
    }
}

/// DataFusion's own planner, when the builder had none.
#[derive(Debug)]
struct LocalPlanner;

#[async_trait]
impl QueryPlanner for LocalPlanner {
    async fn create_physical_plan(
        &self,
        logical: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        DefaultPhysicalPlanner::default()
            .create_physical_plan(logical, session)
            .await
    }
}

/// What a retry needs to plan the statement again.
struct Replan {
    planner: Arc<ClusterPlanner>,
    logical: LogicalPlan,
    state: SessionState,
}

/// The root of a statement that runs on the cluster: runs the distributed plan, and if it
/// fails because a worker was lost before the first row, plans it again on the live workers.
struct RetryExec {
    first: Arc<dyn ExecutionPlan>,
    replan: Arc<Replan>,
    run: Arc<ClusterRun>,
}

impl RetryExec {
    fn new(first: Arc<dyn ExecutionPlan>, replan: Arc<Replan>) -> Self {
        Self {
            first,
            replan,
            run: Arc::new(ClusterRun::default()),
        }
    }
}

impl fmt::Debug for RetryExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterRetryExec")
    }
}

impl DisplayAs for RetryExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "ClusterRetryExec: max_retries={}",
            self.replan.planner.cluster.max_retries
        )
    }
}

impl ExecutionPlan for RetryExec {
    fn name(&self) -> &str {
        "ClusterRetryExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.first.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.first]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match children.pop() {
            Some(first) if children.is_empty() => Ok(Arc::new(Self {
                first,
                replan: Arc::clone(&self.replan),
                run: Arc::clone(&self.run),
            })),
            _ => exec_err!("ClusterRetryExec has exactly one child"),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return exec_err!("ClusterRetryExec has one partition, not {partition}");
        }
        let schema = self.schema();
        let start = start(
            Arc::clone(&self.first),
            Arc::clone(&self.replan),
            Arc::clone(&self.run),
            context,
        );
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::once(start).try_flatten(),
        )))
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(
            &Arc<dyn datafusion::physical_expr::PhysicalExpr>,
        ) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }
}

/// Runs `plan` until its first batch; on the loss of a worker, plans again and starts over.
/// Returns the stream from the first batch on, which ends by reading the shuffle metrics.
async fn start(
    mut plan: Arc<dyn ExecutionPlan>,
    replan: Arc<Replan>,
    run: Arc<ClusterRun>,
    context: Arc<TaskContext>,
) -> Result<futures::stream::BoxStream<'static, Result<RecordBatch>>> {
    let cluster = Arc::clone(&replan.planner.cluster);
    // The router finds the statement's record in the task context.
    let config = context
        .session_config()
        .clone()
        .with_extension(Arc::clone(&run));
    let context = Arc::new(TaskContext::new(
        context.task_id(),
        context.session_id(),
        config,
        context.scalar_functions().clone(),
        context.higher_order_functions().clone(),
        context.aggregate_functions().clone(),
        context.window_functions().clone(),
        context.runtime_env(),
    ));
    loop {
        let (stages, tasks) = stages_and_tasks(&plan);
        run.stages.store(stages, Ordering::Relaxed);
        run.tasks.store(tasks, Ordering::Relaxed);
        let attempt = async {
            let mut stream = plan.execute(0, Arc::clone(&context))?;
            let first = stream.next().await.transpose()?;
            Ok::<_, DataFusionError>((stream, first))
        }
        .await;
        let error = match attempt {
            Ok((rest, first)) => {
                let done = Arc::clone(&plan);
                let record = Arc::clone(&run);
                let finish = futures::stream::once(async move {
                    record
                        .shuffled_bytes
                        .store(shuffled_bytes(done).await, Ordering::Relaxed);
                    None
                })
                .filter_map(futures::future::ready);
                return Ok(futures::stream::iter(first.map(Ok))
                    .chain(rest)
                    .chain(finish)
                    .boxed());
            }
            Err(e) => e,
        };
        let transport = looks_like_transport(&error);
        let mut lost = cluster.workers.probe().await;
        // A worker being killed resets its connections before its listener closes: after a
        // transport error, look again for a moment before retrying on the same workers.
        for _ in 0..PROBE_AGAIN {
            if !(lost.is_empty() && transport) {
                break;
            }
            tokio::time::sleep(PROBE_PAUSE).await;
            lost = cluster.workers.probe().await;
        }
        let retries = run.retries();
        if (lost.is_empty() && !transport) || retries >= cluster.max_retries {
            if lost.is_empty() && !transport {
                // The statement's own error (SQL, data, memory): never retried.
                return Err(error);
            }
            return Err(DataFusionError::External(Box::new(ClusterError {
                no_workers: false,
                message: format!(
                    "the cluster lost a worker and the statement failed after {retries} {}: {}",
                    if retries == 1 { "retry" } else { "retries" },
                    crate::error::one_line(&error)
                ),
            })));
        }
        run.retries.fetch_add(1, Ordering::Relaxed);
        let lost: Vec<String> = lost.iter().map(Url::to_string).collect();
        log::warn!(
            "cluster: re-planning a statement after losing worker(s) [{}]: {}",
            lost.join(", "),
            crate::error::one_line(&error)
        );
        plan = replan.planner.plan(&replan.logical, &replan.state).await?;
    }
}

/// Whether an error is the network's (a connection refused, reset or timed out, a stream cut)
/// rather than the statement's. Errors the workers raise themselves arrive as typed
/// DataFusion errors and are not.
fn looks_like_transport(error: &DataFusionError) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(status) = e.downcast_ref::<tonic::Status>() {
            return matches!(
                status.code(),
                tonic::Code::Unavailable
                    | tonic::Code::Unknown
                    | tonic::Code::Cancelled
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::Aborted
            );
        }
        if e.downcast_ref::<tonic::transport::Error>().is_some() {
            return true;
        }
        source = e.source();
    }
    // Errors of a worker's own connections to other workers come back as text.
    let text = error.to_string();
    [
        "transport error",
        "tcp connect error",
        "error reading a body",
        "Error connecting to Distributed DataFusion worker",
        "connection reset",
        "broken pipe",
        "h2 protocol error",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

/// The statement cannot run: no worker is reachable.
fn no_workers(workers: &Workers) -> DataFusionError {
    let found: Vec<String> = workers.found().iter().map(Url::to_string).collect();
    let message = if found.is_empty() {
        "no cluster worker is known (the workers_dns name resolved to no address); the \
         statement was not run"
            .into()
    } else {
        format!(
            "no cluster worker is reachable (tried {}); the statement was not run",
            found.join(", ")
        )
    };
    DataFusionError::External(Box::new(ClusterError {
        no_workers: true,
        message,
    }))
}

/// Whether a plan scans files (what the cluster would run on workers).
fn reads_files(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let mut found = false;
    let _ = plan.apply(|node| {
        if let Some(scan) = node.downcast_ref::<DataSourceExec>()
            && scan
                .data_source()
                .downcast_ref::<FileScanConfig>()
                .is_some()
        {
            found = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// Stages (the coordinator's included) and tasks sent to workers.
fn stages_and_tasks(plan: &Arc<dyn ExecutionPlan>) -> (usize, usize) {
    let (mut stages, mut tasks) = (1, 0);
    let _ = plan.apply(|node| {
        if let Some(boundary) = node.as_ref().as_network_boundary() {
            stages += 1;
            tasks += boundary.input_stage().task_count();
        }
        Ok(TreeNodeRecursion::Continue)
    });
    (stages, tasks)
}

/// Bytes the boundaries of an executed distributed plan received.
async fn shuffled_bytes(plan: Arc<dyn ExecutionPlan>) -> usize {
    let Ok(plan) =
        rewrite_distributed_plan_with_metrics(plan, DistributedMetricsFormat::Aggregated).await
    else {
        return 0;
    };
    let mut bytes = 0;
    let _ = plan.apply(|node| {
        if node.as_ref().is_network_boundary()
            && let Some(metrics) = node.metrics()
        {
            for metric in metrics.iter() {
                if metric.value().name() == "bytes_transferred" {
                    bytes += metric.value().as_usize();
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    bytes
}

/// Deals each stage's tasks to the live workers in turn, and records which workers ran them.
pub(super) struct Router {
    workers: Workers,
    next: AtomicUsize,
}

impl Router {
    pub(super) fn new(workers: Workers) -> Self {
        Self {
            workers,
            next: AtomicUsize::new(0),
        }
    }
}

impl RouteTasksHandler for Router {
    fn handle(&self, ev: RouteTasksEvent) -> Option<Result<RouteTasksEventResponse>> {
        let live = self.workers.live();
        if live.is_empty() {
            return Some(Err(no_workers(&self.workers)));
        }
        let start = self.next.fetch_add(ev.task_count, Ordering::Relaxed);
        let urls: Vec<Url> = (0..ev.task_count)
            .map(|i| live[(start + i) % live.len()].clone())
            .collect();
        if let Some(run) = ev.task_ctx.session_config().get_extension::<ClusterRun>()
            && let Ok(mut workers) = run.workers.lock()
        {
            workers.extend(urls.iter().cloned());
        }
        Some(Ok(RouteTasksEventResponse::new(urls)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_of_the_statement_are_not_transport_errors() {
        let query = DataFusionError::Execution("Division by zero".into());
        assert!(!looks_like_transport(&query));
        let status = DataFusionError::External(Box::new(tonic::Status::unavailable(
            "tcp connect error: Connection refused",
        )));
        assert!(looks_like_transport(&status));
        let internal = DataFusionError::External(Box::new(tonic::Status::invalid_argument("bad")));
        assert!(!looks_like_transport(&internal));
    }
}
