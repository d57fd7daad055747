//! `discern serve`: the Postgres-wire endpoint.
//!
//! Protocol handling, type encoding and pg_catalog come from datafusion-postgres and pgwire;
//! this module replaces their unsafe defaults. TLS is required (a plaintext login is refused
//! before any password exchange, a plaintext CancelRequest is still honoured), logins use
//! SCRAM-SHA-256 against stored verifiers (or a client certificate), every user gets a session
//! with only the tables granted to them, and every statement can be cancelled (CancelRequest,
//! statement timeout, client hang-up) and is written to the audit log.

pub mod admission;
pub mod audit;
pub mod errors;
pub mod handlers;
pub mod hooks;
pub mod pg_arrays;
pub mod pg_compat;
pub mod pg_rewrite;
pub mod pg_text;
pub mod scram;
pub mod tls;
pub mod users;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
use datafusion::prelude::SessionContext;
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::{DfSessionService, QueryHook};
use futures::{SinkExt, StreamExt};
use pgwire::api::{ClientInfo, ErrorHandler, PgWireConnectionState};
use pgwire::error::ErrorInfo;
use pgwire::messages::startup::SecretKey;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::server::{negotiate_tls, process_error, process_message};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::session::Engine;
use handlers::{Conn, DfStatement, Handlers};

/// What `version()` and the `server_version` parameter report. Drivers parse the leading
/// "PostgreSQL N.M" (SQLAlchemy refuses to connect otherwise); the rest says what answers.
pub const SERVER_VERSION: &str = "16.6";
/// The same as a number (`server_version_num`).
pub const SERVER_VERSION_NUM: &str = "160006";

fn version_string() -> String {
    format!(
        "PostgreSQL {SERVER_VERSION} (Discern {}, Apache DataFusion {}) on {}-{}",
        env!("CARGO_PKG_VERSION"),
        datafusion::DATAFUSION_VERSION,
        std::env::consts::ARCH,
        std::env::consts::OS
    )
}

/// How long a client may take from connecting to finishing its login.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Resolved settings of `discern serve`.
pub struct ServeOptions {
    pub listen: String,
    pub data_dir: PathBuf,
    pub users_file: PathBuf,
    pub max_connections: usize,
    pub idle_timeout: Option<Duration>,
    pub statement_timeout: Option<Duration>,
    pub allow_plaintext: bool,
    pub audit_log: String,
    /// Memory each running query can count on: the limit divided by this is how many
    /// queries run at once.
    pub query_memory: usize,
    /// How long a query may wait for its turn.
    pub queue_timeout: Option<Duration>,
}

impl ServeOptions {
    /// Defaults, overridden by the `[server]` section of the config.
    pub fn from_config(config: &Config) -> Self {
        let s = &config.server;
        let data_dir = s.data_dir.clone().unwrap_or_else(default_data_dir);
        Self {
            listen: s.listen.clone().unwrap_or_else(|| "127.0.0.1:5433".into()),
            users_file: s
                .users_file
                .clone()
                .unwrap_or_else(|| data_dir.join("users.toml")),
            data_dir,
            max_connections: s.max_connections.unwrap_or(100).max(1),
            idle_timeout: s
                .idle_timeout
                .map_or(Some(Duration::from_secs(3600)), |m| m.non_zero()),
            statement_timeout: s.statement_timeout.and_then(|m| m.non_zero()),
            allow_plaintext: s.insecure_allow_plaintext,
            audit_log: s.audit_log.clone().unwrap_or_else(|| "stdout".into()),
            query_memory: s.query_memory.map_or(256 << 20, |b| b.as_usize()),
            queue_timeout: s
                .queue_timeout
                .map_or(Some(Duration::from_secs(600)), |m| m.non_zero()),
        }
    }
}

/// `$XDG_DATA_HOME/discern`, else `~/.local/share/discern`, else `./discern-data`.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("discern");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(home).join(".local/share/discern");
    }
    PathBuf::from("discern-data")
}

/// One user's view of the data: a session with only the tables granted to them.
pub struct UserSession {
    /// Functions, configuration and the user's catalog; each connection starts from it.
    pub ctx: Arc<SessionContext>,
    /// The tables this user may read.
    tables: Vec<(String, Arc<dyn datafusion::catalog::TableProvider>)>,
    /// Tables that exist but that this user may not read.
    pub hidden: BTreeSet<String>,
    /// The bytes of each table's files and when they were counted (`pg_table_size`).
    sizes: tokio::sync::Mutex<Option<(std::time::Instant, pg_compat::TableBytes)>>,
}

impl UserSession {
    /// The bytes of each table's files, counted at most once a minute (a listing of S3
    /// prefixes is not free, and a pool of dashboard connections logs in often).
    pub async fn table_bytes(&self) -> pg_compat::TableBytes {
        const FRESH: std::time::Duration = std::time::Duration::from_secs(60);
        let mut cached = self.sizes.lock().await;
        if let Some((at, sizes)) = cached.as_ref()
            && at.elapsed() < FRESH
        {
            return sizes.clone();
        }
        let sizes = pg_compat::table_bytes(&self.ctx, &self.tables).await;
        *cached = Some((std::time::Instant::now(), sizes.clone()));
        sizes
    }

    /// A session for one connection: the user's tables and functions, plus whatever the
    /// connection creates itself (views, `SET datafusion.execution.*`), which no other
    /// connection sees, like PostgreSQL's temporary views and session settings.
    pub fn connection_service(
        &self,
        pool: Arc<admission::SessionPool>,
        planner: Arc<admission::RecordingPlanner>,
        queries: Arc<dyn admission::QuerySource>,
        user: &str,
    ) -> Result<(Arc<DfSessionService>, Arc<SessionContext>)> {
        use datafusion::catalog::{
            CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
            MemorySchemaProvider, SchemaProvider,
        };
        let public = Arc::new(MemorySchemaProvider::new());
        for (name, table) in &self.tables {
            public.register_table(name.clone(), table.clone())?;
        }
        let catalog = Arc::new(MemoryCatalogProvider::new());
        catalog.register_schema("public", public)?;
        if let Some(pg_catalog) = self
            .ctx
            .catalog("datafusion")
            .and_then(|c| c.schema("pg_catalog"))
        {
            catalog.register_schema("pg_catalog", pg_catalog)?;
        }
        let discern = Arc::new(MemorySchemaProvider::new());
        discern.register_table(
            "queries".into(),
            Arc::new(admission::QueriesTable::new(queries, user)),
        )?;
        catalog.register_schema("discern", discern)?;
        let list = Arc::new(MemoryCatalogProviderList::new());
        list.register_catalog("datafusion".into(), catalog);
        // The session's memory goes through its own accounting pool into the shared one.
        let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::from_runtime_env(
            &self.ctx.runtime_env(),
        )
        .with_memory_pool(pool)
        .build_arc()?;
        // The recording planner wraps the session's own (the cluster's, on a coordinator).
        let base_state = self.ctx.state();
        planner.wrap(Arc::clone(base_state.query_planner()));
        let state = SessionStateBuilder::new_from_existing(base_state)
            .with_catalog_list(list)
            .with_runtime_env(runtime)
            .with_query_planner(planner)
            .build();
        let ctx = Arc::new(SessionContext::new_with_state(state));
        Ok((
            Arc::new(DfSessionService::new_with_hooks(ctx.clone(), query_hooks())),
            ctx,
        ))
    }
}

/// Our statement handling first, then datafusion-postgres's own.
fn query_hooks() -> Vec<Arc<dyn QueryHook>> {
    vec![
        Arc::new(hooks::DiscernHook),
        Arc::new(CursorStatementHook),
        Arc::new(SetShowHook),
        Arc::new(TransactionStatementHook),
    ]
}

/// State shared by every connection.
pub struct Shared {
    base: SessionContext,
    config: Config,
    all_tables: BTreeSet<String>,
    users_file: PathBuf,
    sessions: tokio::sync::Mutex<HashMap<String, Arc<UserSession>>>,
    conns: Mutex<HashMap<i32, Arc<Conn>>>,
    next_pid: AtomicI32,
    pub audit: audit::Audit,
    pub allow_plaintext: bool,
    pub client_ca: bool,
    pub end_point: Option<Vec<u8>>,
    pub mock_secret: [u8; 32],
    pub statement_timeout: Option<Duration>,
    pub fallback_parser: Arc<datafusion_postgres::Parser>,
    queries: QueryRuntime,
    /// Who may run now, and the queue of who waits.
    pub admission: admission::Admission,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("connections", &self.connection_count())
            .finish_non_exhaustive()
    }
}

impl admission::QuerySource for Shared {
    fn rows(&self, viewer: &str) -> Vec<admission::QueryRow> {
        let conns: Vec<Arc<Conn>> = self
            .conns
            .lock()
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default();
        let mut rows = Vec::new();
        for conn in conns {
            let Ok(activity) = conn.activity.lock() else {
                continue;
            };
            let Some(a) = activity.as_ref() else {
                continue;
            };
            rows.push(admission::QueryRow {
                pid: conn.pid,
                user: conn.user.clone(),
                client: conn.client.to_string(),
                state: a.state,
                elapsed: a.started.elapsed(),
                memory: conn.pool.used(),
                peak_memory: conn.pool.peak(),
                statement: if conn.user == viewer {
                    a.statement.clone()
                } else {
                    "<hidden>".into()
                },
            });
        }
        rows.sort_by_key(|r| r.pid);
        rows
    }
}

/// The runtime queries execute on, apart from the one that serves the network.
struct QueryRuntime(Option<tokio::runtime::Runtime>);

impl Drop for QueryRuntime {
    fn drop(&mut self) {
        // Dropping a runtime from async code would block; let its threads wind down alone.
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl Shared {
    /// The memory pool every session draws from.
    pub fn memory_pool(&self) -> Arc<dyn datafusion::execution::memory_pool::MemoryPool> {
        self.base.runtime_env().memory_pool.clone()
    }

    /// The handle of the query runtime.
    pub fn query_runtime(&self) -> tokio::runtime::Handle {
        match &self.queries.0 {
            Some(rt) => rt.handle().clone(),
            None => tokio::runtime::Handle::current(),
        }
    }

    /// A user's verifier, read from the users file at each login (so `discern user add`
    /// takes effect without a restart).
    pub fn verifier(&self, user: &str) -> Option<scram::Verifier> {
        match users::Users::load(&self.users_file) {
            Ok(users) => users.get(user).cloned(),
            Err(e) => {
                eprintln!("discern: {e}");
                None
            }
        }
    }

    /// The tables a user may read.
    pub fn granted(&self, user: &str) -> BTreeSet<String> {
        let grants = &self.config.grants;
        if grants.is_empty() {
            return self.all_tables.clone();
        }
        let Some(list) = grants.get(user).or_else(|| grants.get("*")) else {
            return BTreeSet::new();
        };
        if list.iter().any(|t| t == "*") {
            return self.all_tables.clone();
        }
        list.iter()
            .filter(|t| self.all_tables.contains(*t))
            .cloned()
            .collect()
    }

    /// The user's session, built on first login.
    pub async fn session_for(&self, user: &str) -> Result<Arc<UserSession>> {
        let mut sessions = self.sessions.lock().await;
        if let Some(s) = sessions.get(user) {
            return Ok(s.clone());
        }
        let session = Arc::new(self.build_session(user).await?);
        sessions.insert(user.to_string(), session.clone());
        Ok(session)
    }

    async fn build_session(&self, user: &str) -> Result<UserSession> {
        let state = crate::session::with_discern_rules(
            SessionStateBuilder::new()
                .with_config(self.base.copied_config())
                .with_runtime_env(self.base.runtime_env())
                .with_default_features(),
        )
        .build();
        let ctx = SessionContext::new_with_state(state);
        crate::session::register_statistics(&ctx)?;
        let granted = self.granted(user);
        let mut tables = Vec::new();
        for table in &granted {
            let provider = self.base.table_provider(table.as_str()).await?;
            ctx.register_table(table.as_str(), provider.clone())?;
            tables.push((table.clone(), provider));
        }
        datafusion_pg_catalog::pg_catalog::setup_pg_catalog(
            &ctx,
            "datafusion",
            EmptyContextProvider,
        )
        .map_err(|e| Error::Query(*e))?;
        // pg_catalog registers its own current_user/session_user ("postgres"): ours win.
        register_session_functions(&ctx, user);
        pg_compat::install_function_catalog(&ctx).await?;
        Ok(UserSession {
            ctx: Arc::new(ctx),
            tables,
            hidden: self.all_tables.difference(&granted).cloned().collect(),
            sizes: tokio::sync::Mutex::new(None),
        })
    }

    /// A fresh (pid, secret) pair for a connection.
    pub fn new_backend_key(&self) -> (i32, i32) {
        use ring::rand::SecureRandom;
        let pid = self.next_pid.fetch_add(1, Ordering::Relaxed);
        let mut secret = [0u8; 4];
        let _ = ring::rand::SystemRandom::new().fill(&mut secret);
        (pid, i32::from_be_bytes(secret))
    }

    fn register(&self, conn: Arc<Conn>) {
        if let Ok(mut conns) = self.conns.lock() {
            conns.insert(conn.pid, conn);
        }
    }

    fn unregister(&self, pid: i32) {
        if let Ok(mut conns) = self.conns.lock() {
            conns.remove(&pid);
        }
    }

    /// Honours a CancelRequest: a matching pid and secret cancel that connection's query.
    pub fn cancel(&self, pid: i32, secret: &SecretKey) {
        let conn = self
            .conns
            .lock()
            .ok()
            .and_then(|c| c.get(&pid).cloned())
            .filter(|c| c.matches(pid, secret));
        if let Some(conn) = conn {
            conn.cancel("user request");
        }
    }

    /// Connections logged in now.
    pub fn connection_count(&self) -> usize {
        self.conns.lock().map(|c| c.len()).unwrap_or(0)
    }
}

/// `version()`, `current_user`, `session_user` and `user` as PostgreSQL answers them.
fn register_session_functions(ctx: &SessionContext, user: &str) {
    let constant = |name: &str, value: String| {
        create_udf(
            name,
            vec![],
            DataType::Utf8,
            Volatility::Stable,
            Arc::new(move |_| {
                Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
                    value.clone(),
                ))))
            }),
        )
    };
    ctx.register_udf(constant("version", version_string()));
    pg_compat::register(ctx);
    for name in ["current_user", "session_user", "user"] {
        ctx.register_udf(constant(name, user.to_string()));
    }
}

/// What `serve` prints once it listens.
pub struct Started {
    pub addr: SocketAddr,
    pub fingerprint: String,
    pub cert_path: PathBuf,
    pub generated_cert: bool,
    /// The first user and password, when this start created them.
    pub initial_user: Option<(String, String)>,
    pub users_file: PathBuf,
}

/// A bound, ready server.
pub struct Server {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    limit: Arc<Semaphore>,
    max_connections: usize,
    idle_timeout: Option<Duration>,
    pub started: Started,
}

impl Server {
    /// Loads TLS and users, builds the engine and binds the listener.
    pub async fn bind(config: Config, options: ServeOptions) -> Result<Self> {
        std::fs::create_dir_all(&options.data_dir).map_err(|e| {
            Error::Config(format!(
                "data directory {}: {e}",
                options.data_dir.display()
            ))
        })?;
        let s = &config.server;
        let tls = tls::load(&tls::TlsFiles {
            cert: s.tls_cert.as_deref(),
            key: s.tls_key.as_deref(),
            data_dir: &options.data_dir,
            client_ca: s.client_ca.as_deref(),
        })?;
        let initial_user = initial_user(&options.users_file)?;
        let engine = Engine::new(&config).await?;
        let limit = config.effective_memory_limit().as_usize();
        let slots = (limit / options.query_memory.max(1)).max(1);
        let mut all_tables = BTreeSet::new();
        if let Some(schema) = engine
            .ctx
            .catalog("datafusion")
            .and_then(|c| c.schema("public"))
        {
            all_tables.extend(schema.table_names());
        }
        for (user, tables) in &config.grants {
            for t in tables {
                if t != "*" && !all_tables.contains(t) {
                    return Err(Error::Config(format!(
                        "grants: user '{user}' is granted table '{t}', which is not configured"
                    )));
                }
            }
        }
        let listener = TcpListener::bind(&options.listen)
            .await
            .map_err(|e| Error::Config(format!("cannot listen on {}: {e}", options.listen)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Config(format!("listener: {e}")))?;
        let mock_secret = mock_secret(&options.data_dir)?;
        let fallback = DfSessionService::new(Arc::new(SessionContext::new()));
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let queries = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("discern-query")
            .enable_all()
            .build()
            .map_err(|e| Error::Config(format!("cannot start the query runtime: {e}")))?;
        let shared = Arc::new(Shared {
            base: engine.ctx,
            all_tables,
            users_file: options.users_file.clone(),
            sessions: tokio::sync::Mutex::new(HashMap::new()),
            conns: Mutex::new(HashMap::new()),
            next_pid: AtomicI32::new(1000 + (std::process::id() as i32 % 1000)),
            audit: audit::Audit::open(&options.audit_log)?,
            allow_plaintext: options.allow_plaintext,
            client_ca: s.client_ca.is_some(),
            end_point: tls.end_point.clone(),
            mock_secret,
            statement_timeout: options.statement_timeout,
            fallback_parser: pgwire::api::query::ExtendedQueryHandler::query_parser(&fallback),
            queries: QueryRuntime(Some(queries)),
            admission: admission::Admission::new(slots, options.queue_timeout),
            config,
        });
        Ok(Self {
            listener,
            acceptor: TlsAcceptor::from(tls.config.clone()),
            shared,
            limit: Arc::new(Semaphore::new(options.max_connections)),
            max_connections: options.max_connections,
            idle_timeout: options.idle_timeout,
            started: Started {
                addr,
                fingerprint: tls.fingerprint,
                cert_path: tls.cert_path,
                generated_cert: tls.generated,
                initial_user,
                users_file: options.users_file,
            },
        })
    }

    /// Accepts connections until the process ends.
    pub async fn run(self) -> Result<()> {
        loop {
            let (tcp, _) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    eprintln!("discern: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let shared = self.shared.clone();
            let acceptor = self.acceptor.clone();
            let idle = self.idle_timeout;
            match self.limit.clone().try_acquire_owned() {
                Ok(permit) => {
                    tokio::spawn(async move {
                        connection(shared, tcp, acceptor, idle).await;
                        drop(permit);
                    });
                }
                Err(_) => {
                    let max = self.max_connections;
                    tokio::spawn(refuse_busy(tcp, acceptor, max));
                }
            }
        }
    }
}

/// The secret that derives unknown users' fake SCRAM salts. It is kept in the data directory
/// (mode 0600) so that the fake salt of a name stays the same across restarts, as a real
/// user's does; otherwise probing a name before and after a restart would tell whether the
/// user exists.
fn mock_secret(data_dir: &Path) -> Result<[u8; 32]> {
    let path = data_dir.join("scram-mock.key");
    if let Ok(bytes) = std::fs::read(&path)
        && let Ok(secret) = <[u8; 32]>::try_from(bytes.as_slice())
    {
        return Ok(secret);
    }
    let mut secret = [0u8; 32];
    {
        use ring::rand::SecureRandom;
        ring::rand::SystemRandom::new()
            .fill(&mut secret)
            .map_err(|_| Error::Config("the system random number generator failed".into()))?;
    }
    tls::write_private(&path, &secret)?;
    Ok(secret)
}

/// Creates the users file with one user and a random password when there is none.
fn initial_user(path: &Path) -> Result<Option<(String, String)>> {
    let mut users = users::Users::load(path)?;
    if !users.is_empty() {
        return Ok(None);
    }
    let name = "discern".to_string();
    let password = users::random_password()?;
    users.set_password(&name, &password)?;
    users.save(path)?;
    Ok(Some((name, password)))
}

/// Answers a connection over the limit with PostgreSQL's "too many clients" (53300), after
/// the TLS handshake and the startup packet, so that every driver shows the message.
async fn refuse_busy(tcp: TcpStream, acceptor: TlsAcceptor, max: usize) {
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let Ok(Some(mut socket)) = negotiate_tls::<DfStatement>(tcp, Some(acceptor)).await else {
            return;
        };
        if let Some(Ok(PgWireFrontendMessage::Startup(_))) = socket.next().await {
            let info = ErrorInfo::new(
                "FATAL".into(),
                "53300".into(),
                format!("sorry, too many clients already (max_connections = {max})"),
            );
            let _ = socket
                .send(PgWireBackendMessage::ErrorResponse(info.into()))
                .await;
        }
    })
    .await;
}

/// One connection from TCP accept to close.
async fn connection(
    shared: Arc<Shared>,
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    idle: Option<Duration>,
) {
    let fd = tcp.as_raw_fd();
    let handlers = Arc::new(Handlers::new(shared.clone(), fd));
    let startup_deadline = tokio::time::sleep(STARTUP_TIMEOUT);
    tokio::pin!(startup_deadline);
    let socket = tokio::select! {
        () = &mut startup_deadline => return,
        s = negotiate_tls::<DfStatement>(tcp, Some(acceptor)) => s,
    };
    let Ok(Some(mut socket)) = socket else {
        return;
    };
    let copy = Arc::new(pgwire::api::NoopHandler);
    loop {
        let in_startup = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup
                | PgWireConnectionState::AuthenticationInProgress
        );
        let next = if in_startup {
            tokio::select! {
                () = &mut startup_deadline => None,
                m = socket.next() => m,
            }
        } else if let Some(idle) = idle {
            match tokio::time::timeout(idle, socket.next()).await {
                Ok(m) => m,
                Err(_) => {
                    let info = ErrorInfo::new(
                        "FATAL".into(),
                        "57P05".into(),
                        "terminating connection due to idle-session timeout".into(),
                    );
                    let _ = socket
                        .send(PgWireBackendMessage::ErrorResponse(info.into()))
                        .await;
                    break;
                }
            }
        } else {
            socket.next().await
        };
        let message = match next {
            Some(Ok(message)) => message,
            Some(Err(e)) => {
                // Garbage, a truncated or oversized packet: say so and hang up.
                let info = ErrorInfo::new(
                    "FATAL".into(),
                    "08P01".into(),
                    format!("invalid frontend message: {e}"),
                );
                let _ = socket
                    .send(PgWireBackendMessage::ErrorResponse(info.into()))
                    .await;
                break;
            }
            None => break,
        };
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            break;
        }
        let is_extended = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended) => extended,
            _ => message.is_extended_query(),
        };
        if let Err(mut e) = process_message(
            message,
            &mut socket,
            handlers.clone(),
            handlers.clone(),
            handlers.clone(),
            copy.clone(),
            handlers.clone(),
        )
        .await
        {
            handlers.on_error(&socket, &mut e);
            let fatal = matches!(&e, pgwire::error::PgWireError::UserError(i) if i.is_fatal())
                || matches!(&e, pgwire::error::PgWireError::IoError(_));
            if process_error(&mut socket, e, is_extended).await.is_err() || fatal {
                break;
            }
        }
    }
    if let Some(conn) = socket.session_extensions().get::<Arc<Conn>>() {
        // Anything still running for this connection stops now.
        conn.cancel("client disconnect");
        shared.unregister(conn.pid);
    }
}
