//! `discern worker`: datafusion-distributed's worker service with every Discern function and
//! operator, its own memory pool and spill directory, behind a TLS listener that requires a
//! client certificate signed by the cluster CA.

use std::path::PathBuf;
use std::time::Duration;

use datafusion::error::DataFusionError;
use datafusion::execution::SessionState;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion_distributed::{DistributedExt, Worker, WorkerQueryContext};
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use super::tls::{Channels, Identity, KEEP_ALIVE_INTERVAL, KEEP_ALIVE_TIMEOUT};
use super::{codec, config_error};
use crate::config::Config;
use crate::error::Result;

/// How long running tasks may take to finish after SIGTERM or SIGINT.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The settings of `discern worker`.
pub struct WorkerOptions {
    /// `HOST:PORT` to listen on (`127.0.0.1:0`: any free port).
    pub listen: String,
    /// This worker's certificate chain, key, and the cluster CA (PEM).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub ca: Option<PathBuf>,
    /// Memory limit, spill directory, partitions, `[s3]` and `[cluster] server_name` (for
    /// the worker's own connections to other workers).
    pub config: Config,
}

/// Runs a worker until SIGTERM or SIGINT, then lets running tasks finish (at most
/// [`DRAIN_TIMEOUT`]). Prints `discern worker listening on HOST:PORT` once it accepts
/// connections.
pub async fn run(options: WorkerOptions) -> Result<()> {
    let cluster = &options.config.cluster;
    let identity = Identity::load(
        options.tls_cert.as_deref().or(cluster.tls_cert.as_deref()),
        options.tls_key.as_deref().or(cluster.tls_key.as_deref()),
        options.ca.as_deref().or(cluster.ca.as_deref()),
        "discern worker needs --tls-cert, --tls-key and --ca (or [cluster] tls_cert, tls_key, \
         ca): it accepts only peers with a certificate from the cluster CA",
    )?;
    let config = &options.config;
    let (runtime, _pool) = crate::session::runtime_env(config)?;
    let runtime = RuntimeEnvBuilder::from_runtime_env(&runtime)
        .with_object_store_registry(crate::storage::on_demand_stores(config).await?)
        .build_arc()?;
    let channels = Channels::new(&identity, cluster.server_name.clone());
    let settings = TaskSettings {
        memory_limit: config.effective_memory_limit().as_usize(),
        partitions: crate::session::partitions(config),
    };
    let worker = Worker::from_session_builder(move |ctx: WorkerQueryContext| {
        let channels = channels.clone();
        async move { build_task_state(ctx, channels, settings) }
    })
    .with_runtime_env(runtime);

    let listener = TcpListener::bind(&options.listen)
        .await
        .map_err(|e| config_error(format!("cannot listen on {}: {e}", options.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| config_error(format!("listener: {e}")))?;
    let server = Server::builder()
        .tls_config(identity.server_config())
        .map_err(|e| config_error(format!("worker TLS: {e}")))?
        .http2_keepalive_interval(Some(KEEP_ALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEP_ALIVE_TIMEOUT))
        .tcp_keepalive(Some(Duration::from_secs(30)))
        .add_service(worker.into_worker_server());
    println!("discern worker listening on {addr}");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve_with_incoming_shutdown(
        TcpIncoming::from(listener),
        async {
            let _ = stop_rx.await;
        },
    ));
    let signal = shutdown_signal().await;
    eprintln!("discern worker: {signal}: finishing running tasks (at most {DRAIN_TIMEOUT:?})");
    let _ = stop_tx.send(());
    match tokio::time::timeout(DRAIN_TIMEOUT, serving).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(e))) => Err(config_error(format!("worker: {e}"))),
        Ok(Err(e)) => Err(config_error(format!("worker: {e}"))),
        Err(_) => {
            eprintln!("discern worker: tasks still running after {DRAIN_TIMEOUT:?}: stopping");
            Ok(())
        }
    }
}

/// The execution settings every task runs with (workers do not receive the coordinator's).
#[derive(Debug, Clone, Copy)]
struct TaskSettings {
    memory_limit: usize,
    partitions: usize,
}

/// The session a task runs in: datafusion-distributed's (with the coordinator's distributed
/// settings), plus Discern's functions, codec, execution settings and the TLS connections to
/// other workers (shuffles read from them).
fn build_task_state(
    mut ctx: WorkerQueryContext,
    channels: Channels,
    settings: TaskSettings,
) -> std::result::Result<SessionState, DataFusionError> {
    if let Some(config) = ctx.builder.config().as_mut() {
        crate::session::tune(
            config.options_mut(),
            settings.memory_limit,
            settings.partitions,
        );
    }
    // Append: the builder already has DataFusion's functions (`with_*_functions` would
    // replace them).
    ctx.builder
        .scalar_functions()
        .get_or_insert_default()
        .extend(discern_udfs::all_scalar_functions());
    ctx.builder
        .aggregate_functions()
        .get_or_insert_default()
        .extend(discern_udfs::all_aggregate_functions());
    ctx.builder
        .window_functions()
        .get_or_insert_default()
        .extend(discern_udfs::all_window_functions());
    Ok(ctx
        .builder
        .with_distributed_user_codec(codec::DiscernCodec)
        .with_distributed_channel_resolver(channels)
        .build())
}

/// Waits for SIGTERM or SIGINT; names the one that came.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            return tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "SIGINT",
            };
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    "SIGINT"
}
