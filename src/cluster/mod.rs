//! Cluster mode: one query across several `discern worker` processes, on
//! datafusion-distributed, with mutual TLS on every hop.
//!
//! Two doors lead in, and nothing else in the crate knows what is behind them:
//! - [`configure`] puts a [`Cluster`] into a coordinator's session configuration (from the
//!   `[cluster]` config section and the `--worker`/`--cluster-*` flags), and [`attach`]
//!   (called by `session::with_discern_rules` for every session built from it) installs the
//!   distributed planner, wrapped by ours, which re-runs a statement on the live workers when
//!   one is lost before any row has been sent;
//! - [`worker::run`] is `discern worker`: datafusion-distributed's worker service with every
//!   Discern function, behind a TLS listener that requires a certificate from the cluster CA.
//!
//! What is distributed is decided by datafusion-distributed: scans of Parquet files are dealt
//! to tasks, hash repartitions become shuffles between workers, everything above the last
//! shuffle runs on the coordinator. Statements over catalog tables (pg_catalog,
//! information_schema, `discern.queries`) have no file scan and run on the coordinator.
//!
//! The shared-state rule (`discern_udfs::shared`) is off in cluster mode: datafusion-distributed
//! ships aggregate functions by name only, and the shared aggregate keeps its configuration in
//! the instance, which a worker would rebuild differently under the same name.

mod codec;
mod planner;
mod resolver;
mod tls;
pub mod worker;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use datafusion::error::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::SessionConfig;
use datafusion_distributed::{DistributedExt, SessionStateBuilderExt};
use serde::Deserialize;

use crate::error::{Error, Result};

pub use planner::{ClusterRun, run_of};

/// The `[cluster]` section: where the workers are and the identity used to reach them.
///
/// ```toml
/// [cluster]
/// workers = ["https://worker-1:7443", "https://worker-2:7443"]
/// # or, for a Kubernetes headless Service (looked up every few seconds):
/// # workers_dns = "discern-workers:7443"
/// tls_cert = "/etc/discern/cluster/tls.crt"   # this node's certificate (client and server)
/// tls_key = "/etc/discern/cluster/tls.key"
/// ca = "/etc/discern/cluster/ca.crt"          # the cluster CA: every peer must be signed by it
/// server_name = "discern-workers"             # name in the workers' certificates (optional)
/// max_retries = 2                             # re-runs after losing a worker (default 2)
/// single_node_fallback = false                # no worker reachable: run here instead of failing
/// ```
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Worker URLs (`https://host:port`).
    #[serde(default)]
    pub workers: Vec<String>,
    /// `name:port` resolved every few seconds; each address is a worker.
    pub workers_dns: Option<String>,
    /// This node's certificate chain (PEM), presented to workers.
    pub tls_cert: Option<PathBuf>,
    /// This node's private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// The cluster CA (PEM): workers must present a certificate it signed.
    pub ca: Option<PathBuf>,
    /// The name the workers' certificates carry. Default: the host of each worker URL (the
    /// DNS name itself with `workers_dns`).
    pub server_name: Option<String>,
    /// How many times a statement is re-planned and re-run after losing a worker. Default: 2.
    pub max_retries: Option<usize>,
    /// Run a statement on the coordinator alone when no worker is reachable, instead of
    /// failing it. Default: false.
    #[serde(default)]
    pub single_node_fallback: bool,
    /// Parquet bytes per partition of a scan task: a table smaller than this times the
    /// partitions per task runs in one task (undistributed). Default: datafusion-distributed's
    /// 16 MiB.
    pub bytes_per_partition: Option<crate::config::ByteSize>,
}

impl ClusterConfig {
    /// Whether cluster mode is configured at all.
    pub fn enabled(&self) -> bool {
        !self.workers.is_empty() || self.workers_dns.is_some()
    }
}

/// How long a worker that failed a statement, or did not answer a probe, is left out.
const QUARANTINE: Duration = Duration::from_secs(30);

/// A coordinator's view of the cluster: the workers and how to reach them. Lives in the
/// session configuration as an extension, so that every session built from it plans on it.
#[derive(Debug)]
pub struct Cluster {
    workers: resolver::Workers,
    max_retries: usize,
    single_node_fallback: bool,
}

/// Adds cluster mode to a coordinator's session configuration, when `[cluster]` names workers.
/// Must run inside the Tokio runtime (DNS discovery runs as a task).
pub fn configure(config: SessionConfig, cluster: &ClusterConfig) -> Result<SessionConfig> {
    if !cluster.enabled() {
        return Ok(config);
    }
    let identity = tls::Identity::load(
        cluster.tls_cert.as_deref(),
        cluster.tls_key.as_deref(),
        cluster.ca.as_deref(),
        "cluster mode needs tls_cert, tls_key and ca ([cluster] or --cluster-cert, \
         --cluster-key, --cluster-ca): every hop uses mutual TLS",
    )?;
    let workers = resolver::Workers::start(cluster)?;
    let server_name = cluster.server_name.clone().or_else(|| {
        cluster
            .workers_dns
            .as_deref()
            .and_then(|d| d.rsplit_once(':').map(|(host, _)| host.to_string()))
    });
    let channels = tls::Channels::new(&identity, server_name);
    let node = Arc::new(Cluster {
        workers,
        max_retries: cluster.max_retries.unwrap_or(2),
        single_node_fallback: cluster.single_node_fallback,
    });
    let config = config
        .with_extension(Arc::clone(&node))
        .with_distributed_worker_resolver(node.workers.clone())
        .with_distributed_channel_resolver(channels)
        .with_distributed_user_codec(codec::DiscernCodec)
        .with_distributed_route_tasks_handler(planner::Router::new(node.workers.clone()));
    match cluster.bytes_per_partition {
        Some(bytes) => config
            .with_distributed_file_scan_config_bytes_per_partition(bytes.as_usize().max(1))
            .map_err(|e| config_error(format!("[cluster] bytes_per_partition: {e}"))),
        None => Ok(config),
    }
}

/// Whether a session configuration is a cluster coordinator's.
pub fn is_coordinator(config: &SessionConfig) -> bool {
    config.get_extension::<Cluster>().is_some()
}

/// Installs the distributed planner, wrapped by Discern's (re-plans after a lost worker,
/// records workers and stages), when the configuration being built is a coordinator's.
pub fn attach(mut builder: SessionStateBuilder) -> SessionStateBuilder {
    let cluster = builder
        .config()
        .as_ref()
        .and_then(|c| c.get_extension::<Cluster>());
    let Some(cluster) = cluster else {
        return builder;
    };
    let local = builder.query_planner().clone();
    let mut builder = builder.with_distributed_planner();
    let distributed = builder.query_planner().take();
    builder.with_query_planner(Arc::new(planner::ClusterPlanner::new(
        distributed,
        local,
        cluster,
    )))
}

/// A statement that the cluster could not run.
#[derive(Debug)]
pub struct ClusterError {
    /// No worker was reachable (`true`), or a worker was lost and retries ran out.
    no_workers: bool,
    message: String,
}

impl ClusterError {
    /// The cluster's error at the root of a DataFusion error, if that is what it is.
    pub fn find(error: &DataFusionError) -> Option<&ClusterError> {
        match error.find_root() {
            DataFusionError::External(inner) => inner.downcast_ref::<ClusterError>(),
            _ => None,
        }
    }

    /// The SQLSTATE clients get: `57P03` (cannot connect now: no worker is reachable, try
    /// again later) or `58000` (system error: the cluster lost workers during the statement).
    pub fn sqlstate(&self) -> &'static str {
        if self.no_workers { "57P03" } else { "58000" }
    }
}

impl std::fmt::Display for ClusterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ClusterError {}

/// The error when a worker setting is wrong (one line, naming the culprit).
fn config_error(what: impl std::fmt::Display) -> Error {
    Error::Config(what.to_string())
}
