//! The pgwire handlers of one connection: login (TLS required, SCRAM-SHA-256 or a client
//! certificate), queries (delegated to the user's datafusion-postgres session, with cancel,
//! statement timeout, hang-up detection and the audit log), cancel requests and errors.

use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser;
use datafusion_postgres::DfSessionService;
use futures::{Sink, SinkExt, Stream, StreamExt};
use pgwire::api::auth::{
    DefaultServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::cancel::CancelHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, Response};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, ErrorHandler, METADATA_USER, PgWireConnectionState, Type,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::PgWireFrontendMessage;
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::data::DataRow;
use pgwire::messages::startup::{Authentication, SecretKey};

use super::admission::SessionPool;
use super::audit::{self, Outcome};
use super::errors::{self, QUERY_CANCELED, error, fatal};
use super::scram::{self, SCRAM_SHA_256, SCRAM_SHA_256_PLUS, Verifier};
use super::{Shared, UserSession};

/// The statement type of datafusion-postgres's extended-query handler.
pub type DfStatement = (String, Option<(sqlparser::ast::Statement, LogicalPlan)>);

/// One logged-in connection, kept in the session extensions and in the cancel registry.
pub struct Conn {
    pub user: String,
    pub client: SocketAddr,
    pub pid: i32,
    secret: i32,
    pub session: Arc<UserSession>,
    /// This connection's own session.
    pub service: Arc<DfSessionService>,
    /// Its DataFusion context.
    pub ctx: Arc<datafusion::prelude::SessionContext>,
    /// Its share of the memory pool, for accounting.
    pub pool: Arc<SessionPool>,
    /// Its query planner, which keeps the statement's plans for their spill metrics.
    pub planner: Arc<super::admission::RecordingPlanner>,
    /// What it runs now, for `discern.queries`.
    pub activity: Mutex<Option<Activity>>,
    /// The running query, to cancel it.
    current: Mutex<Weak<QueryControl>>,
    /// The socket, to notice a client that hung up while its query runs.
    fd: i32,
}

impl Conn {
    /// Cancels the running query, if any.
    pub fn cancel(&self, reason: &'static str) -> bool {
        let current = self.current.lock().ok().and_then(|c| c.upgrade());
        match current {
            Some(control) => {
                control.cancel(reason);
                true
            }
            None => false,
        }
    }

    /// The pid and secret match (cancel requests).
    pub fn matches(&self, pid: i32, key: &SecretKey) -> bool {
        self.pid == pid && key.eq_value(&SecretKey::I32(self.secret))
    }
}

/// A statement a connection runs or waits to run.
pub struct Activity {
    pub statement: String,
    pub started: Instant,
    pub state: &'static str,
}

/// Why a query should stop; set once.
pub struct QueryControl {
    reason: tokio::sync::watch::Sender<Option<&'static str>>,
}

impl QueryControl {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            reason: tokio::sync::watch::Sender::new(None),
        })
    }

    fn cancel(&self, reason: &'static str) {
        self.reason.send_if_modified(|r| {
            if r.is_none() {
                *r = Some(reason);
                true
            } else {
                false
            }
        });
    }

    async fn cancelled(&self) -> &'static str {
        let mut rx = self.reason.subscribe();
        let reason: Option<&'static str> = rx.wait_for(Option::is_some).await.ok().and_then(|r| *r);
        match reason {
            Some(reason) => reason,
            // The sender lives as long as self: unreachable, but never resolve wrongly.
            None => std::future::pending().await,
        }
    }
}

/// Resolves at the deadline, or never.
async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn cancel_error(reason: &str) -> PgWireError {
    error(
        QUERY_CANCELED,
        format!("canceling statement due to {reason}"),
    )
}

/// Logs a statement when every part of its result is gone.
struct AuditGuard {
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    /// The admission slot, held until the result is gone.
    permit: Mutex<Option<tokio::sync::OwnedSemaphorePermit>>,
    entry: Mutex<audit::Statement>,
    rows: AtomicU64,
    error: Mutex<Option<String>>,
    finished: AtomicBool,
    _control: Arc<QueryControl>,
}

impl AuditGuard {
    fn fail(&self, code: String) {
        if let Ok(mut e) = self.error.lock()
            && e.is_none()
        {
            *e = Some(code);
        }
    }
}

impl Drop for AuditGuard {
    fn drop(&mut self) {
        let error = self.error.lock().ok().and_then(|mut e| e.take());
        let outcome = match error {
            Some(code) => Outcome::Error(code),
            None if self.finished.load(Ordering::Relaxed) => Outcome::Ok,
            // The result was dropped half-sent: the client went away.
            None => Outcome::Error("08006".into()),
        };
        if let Ok(mut entry) = self.entry.lock() {
            entry.rows = self.rows.load(Ordering::Relaxed);
            entry.peak_memory = self.conn.pool.peak();
            (entry.spilled_bytes, entry.cluster) = self.conn.planner.take_finished();
            self.shared.audit.statement(&entry, &outcome);
        }
        if let Ok(mut activity) = self.conn.activity.lock() {
            *activity = None;
        }
        if let Ok(mut permit) = self.permit.lock() {
            permit.take();
        }
    }
}

/// The handlers of one connection.
pub struct Handlers {
    pub shared: Arc<Shared>,
    /// Raw socket descriptor, for hang-up detection.
    pub fd: i32,
    auth: tokio::sync::Mutex<AuthState>,
    parser: Arc<UserParser>,
}

enum AuthState {
    Initial,
    AwaitingFirst {
        user: String,
        plus: bool,
    },
    AwaitingFinal {
        user: String,
        known: bool,
        first: Box<scram::ServerFirst>,
    },
    Done,
}

impl Handlers {
    pub fn new(shared: Arc<Shared>, fd: i32) -> Self {
        let parser = Arc::new(UserParser {
            fallback: shared.fallback_parser.clone(),
        });
        Self {
            shared,
            fd,
            auth: tokio::sync::Mutex::new(AuthState::Initial),
            parser,
        }
    }

    fn auth_failed(&self, user: &str, client: SocketAddr, method: &str) -> PgWireError {
        self.shared.audit.login(user, client, method, "failed");
        fatal(
            "28P01",
            format!("password authentication failed for user \"{user}\""),
        )
    }

    /// Completes the login: session, cancel key, parameters, ReadyForQuery.
    async fn finish<C>(&self, client: &mut C, user: &str, method: &str) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = self.shared.session_for(user).await.map_err(|e| {
            fatal(
                "XX000",
                format!("cannot build the session of user \"{user}\": {e}"),
            )
        })?;
        let pool = Arc::new(SessionPool::new(self.shared.memory_pool()));
        let planner = Arc::new(super::admission::RecordingPlanner::default());
        let source: Arc<dyn super::admission::QuerySource> = self.shared.clone();
        let (service, ctx) = session
            .connection_service(pool.clone(), planner.clone(), source, user)
            .map_err(|e| {
                fatal(
                    "XX000",
                    format!("cannot start the session of user \"{user}\": {e}"),
                )
            })?;
        // current_database() is the name the client asked for (PostgreSQL's default: the
        // user name); the catalog inside stays `datafusion`.
        let database = client
            .metadata()
            .get(pgwire::api::METADATA_DATABASE)
            .filter(|d| !d.is_empty())
            .cloned()
            .unwrap_or_else(|| user.to_string());
        ctx.register_udf(datafusion_pg_catalog::pg_catalog::create_current_database_udf(&database));
        let bytes = session.table_bytes().await;
        // Should pg_class not answer, the sizes stay datafusion-pg-catalog's (0): a
        // catalog nicety is no reason to refuse a login.
        let _ = super::pg_compat::register_sizes(&ctx, &bytes).await;
        let (pid, secret) = self.shared.new_backend_key();
        let conn = Arc::new(Conn {
            service,
            ctx,
            pool,
            planner,
            activity: Mutex::new(None),
            user: user.to_string(),
            client: client.socket_addr(),
            pid,
            secret,
            session,
            current: Mutex::new(Weak::new()),
            fd: self.fd,
        });
        client.set_pid_and_secret_key(pid, SecretKey::I32(secret));
        client.session_extensions().insert(conn.clone());
        self.shared.register(conn);
        let mut params = DefaultServerParameterProvider::default();
        params.server_version = super::SERVER_VERSION.into();
        params.is_superuser = false;
        params.default_transaction_read_only = true;
        params.session_authorization = Some(user.to_string());
        finish_authentication(client, &params).await?;
        self.shared
            .audit
            .login(user, client.socket_addr(), method, "ok");
        Ok(())
    }
}

#[async_trait]
impl StartupHandler for Handlers {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut state = self.auth.lock().await;
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                if !matches!(*state, AuthState::Initial) {
                    return Err(fatal("08P01", "unexpected second startup message"));
                }
                if !client.is_secure() && !self.shared.allow_plaintext {
                    // Before any password exchange: nothing secret has been sent yet.
                    self.shared.audit.login(
                        startup.parameters.get("user").map_or("", String::as_str),
                        client.socket_addr(),
                        "plaintext",
                        "refused",
                    );
                    return Err(fatal(
                        "28000",
                        "this server requires TLS: connect with sslmode=require (or verify-full); \
                         plaintext logins are refused",
                    ));
                }
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                // libpq's `options` (PGOPTIONS): `-c name=value` settings. Only settings a
                // session may change are taken; `user` and the like never come from here.
                if let Some(options) = startup.parameters.get("options") {
                    for (name, value) in startup_options(options) {
                        client.metadata_mut().insert(name, value);
                    }
                }
                let user = client
                    .metadata()
                    .get(METADATA_USER)
                    .cloned()
                    .unwrap_or_default();
                if user.is_empty() {
                    return Err(fatal("28000", "no user name in the startup message"));
                }
                // Certificate login: a certificate from the configured client CA whose
                // common name is the user (rustls has verified the chain).
                if self.shared.client_ca
                    && let Some(cn) = client
                        .client_certificates()
                        .and_then(|certs| certs.first().and_then(super::tls::common_name))
                {
                    if cn == user {
                        *state = AuthState::Done;
                        return self.finish(client, &user, "certificate").await;
                    }
                    self.shared
                        .audit
                        .login(&user, client.socket_addr(), "certificate", "failed");
                    return Err(fatal(
                        "28000",
                        format!(
                            "certificate authentication failed for user \"{user}\": the certificate is for \"{cn}\""
                        ),
                    ));
                }
                let plus = client.is_secure() && self.shared.end_point.is_some();
                let mut mechanisms = Vec::new();
                if plus {
                    mechanisms.push(SCRAM_SHA_256_PLUS.to_string());
                }
                mechanisms.push(SCRAM_SHA_256.to_string());
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client
                    .send(PgWireBackendMessage::Authentication(Authentication::SASL(
                        mechanisms,
                    )))
                    .await?;
                *state = AuthState::AwaitingFirst { user, plus };
            }
            PgWireFrontendMessage::PasswordMessageFamily(msg) => {
                let current = std::mem::replace(&mut *state, AuthState::Done);
                match current {
                    AuthState::AwaitingFirst { user, plus } => {
                        let initial = msg.into_sasl_initial_response()?;
                        let data = initial.data.unwrap_or_default();
                        let (verifier, known) = match self.shared.verifier(&user) {
                            Some(v) => (v, true),
                            None => (Verifier::mock(&user, &self.shared.mock_secret), false),
                        };
                        let end_point = self.shared.end_point.as_deref().filter(|_| plus);
                        match scram::client_first(
                            &data,
                            &initial.auth_method,
                            plus,
                            end_point,
                            verifier,
                        ) {
                            Ok(first) => {
                                client
                                    .send(PgWireBackendMessage::Authentication(
                                        Authentication::SASLContinue(first.message.clone().into()),
                                    ))
                                    .await?;
                                *state = AuthState::AwaitingFinal {
                                    user,
                                    known,
                                    first: Box::new(first),
                                };
                            }
                            Err(_) => {
                                return Err(self.auth_failed(&user, client.socket_addr(), "scram"));
                            }
                        }
                    }
                    AuthState::AwaitingFinal { user, known, first } => {
                        let response = msg.into_sasl_response()?;
                        match first.client_final(&response.data) {
                            Ok(server_final) if known => {
                                client
                                    .send(PgWireBackendMessage::Authentication(
                                        Authentication::SASLFinal(server_final.into()),
                                    ))
                                    .await?;
                                return self.finish(client, &user, "scram-sha-256").await;
                            }
                            _ => {
                                return Err(self.auth_failed(&user, client.socket_addr(), "scram"));
                            }
                        }
                    }
                    AuthState::Initial | AuthState::Done => {
                        return Err(fatal("08P01", "unexpected password message"));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn conn_of<C: ClientInfo + ?Sized>(client: &C) -> PgWireResult<Arc<Conn>> {
    client
        .session_extensions()
        .get::<Arc<Conn>>()
        .map(|c| (*c).clone())
        .ok_or_else(|| fatal("08P01", "query before login"))
}

impl Handlers {
    /// The per-statement timeout: `SET statement_timeout`, else the startup parameter, else
    /// the server default.
    fn statement_timeout<C: ClientInfo>(&self, client: &C) -> Option<Duration> {
        let md = client.metadata();
        let from = |key: &str| md.get(key).and_then(|v| parse_pg_ms(v));
        match from("statement_timeout_ms").or_else(|| from("statement_timeout")) {
            Some(0) => None,
            Some(ms) => Some(Duration::from_millis(ms)),
            None => self.shared.statement_timeout,
        }
    }

    /// Starts tracking a statement: cancel handle, hang-up watch, audit entry.
    fn begin(&self, conn: &Arc<Conn>, text: &str) -> (Arc<QueryControl>, Arc<AuditGuard>) {
        let control = QueryControl::new();
        if let Ok(mut current) = conn.current.lock() {
            *current = Arc::downgrade(&control);
        }
        watch_hangup(conn.fd, Arc::downgrade(&control));
        let guard = Arc::new(AuditGuard {
            shared: self.shared.clone(),
            conn: conn.clone(),
            permit: Mutex::new(None),
            entry: Mutex::new(audit::Statement {
                user: conn.user.clone(),
                client: conn.client,
                pid: conn.pid,
                text: text.to_string(),
                rows: 0,
                peak_memory: 0,
                spilled_bytes: 0,
                cluster: None,
                started: Instant::now(),
            }),
            rows: AtomicU64::new(0),
            error: Mutex::new(None),
            finished: AtomicBool::new(false),
            _control: control.clone(),
        });
        (control, guard)
    }

    /// Waits for an admission slot when the statement reads data (queued in
    /// `discern.queries` meanwhile); a cancel, the statement timeout or the queue timeout
    /// ends the wait.
    async fn admit(
        &self,
        conn: &Arc<Conn>,
        control: &Arc<QueryControl>,
        guard: &Arc<AuditGuard>,
        text: &str,
        needs_slot: bool,
        deadline: Option<tokio::time::Instant>,
    ) -> PgWireResult<()> {
        let set_activity = |state: &'static str| {
            if let Ok(mut a) = conn.activity.lock() {
                let started = a.as_ref().map_or_else(Instant::now, |a| a.started);
                *a = Some(Activity {
                    statement: text.to_string(),
                    started,
                    state,
                });
            }
        };
        if needs_slot {
            set_activity("queued");
            let sleep = until(deadline);
            let permit = tokio::select! {
                p = self.shared.admission.admit() => p,
                reason = control.cancelled() => return Err(cancel_error(reason)),
                () = sleep => return Err(cancel_error("statement timeout")),
            };
            match permit {
                Ok(permit) => {
                    if let Ok(mut slot) = guard.permit.lock() {
                        *slot = Some(permit);
                    }
                }
                Err(super::admission::Refused::Timeout { waited, running }) => {
                    return Err(error(
                        "53000",
                        format!(
                            "the query waited {:.0} s for memory and did not start: {running} \
                             queries hold the {} memory slots; retry later, or raise \
                             memory_limit or queue_timeout",
                            waited.as_secs_f64(),
                            self.shared.admission.slots()
                        ),
                    ));
                }
            }
        }
        set_activity("running");
        conn.pool.reset_peak();
        Ok(())
    }

    /// Runs `work` under the statement's controls and wraps every result stream in them.
    async fn controlled<F, T>(
        &self,
        conn: &Arc<Conn>,
        timeout: Option<Duration>,
        text: &str,
        needs_slot: bool,
        work: F,
        wrap: impl Fn(T, &Arc<QueryControl>, &Arc<AuditGuard>, Option<tokio::time::Instant>) -> T,
    ) -> PgWireResult<T>
    where
        F: std::future::Future<Output = PgWireResult<T>>,
    {
        let (control, guard) = self.begin(conn, text);
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        if let Err(e) = self
            .admit(conn, &control, &guard, text, needs_slot, deadline)
            .await
        {
            guard.fail(errors::sqlstate(&e, &conn.session.hidden));
            return Err(e);
        }
        let sleep = until(deadline);
        let work = OnRuntime::new(self.shared.query_runtime(), work);
        let result = tokio::select! {
            r = work => r,
            reason = control.cancelled() => Err(cancel_error(reason)),
            () = sleep => Err(cancel_error("statement timeout")),
        };
        match result {
            Ok(value) => Ok(wrap(value, &control, &guard, deadline)),
            Err(e) => {
                guard.fail(errors::sqlstate(&e, &conn.session.hidden));
                Err(e)
            }
        }
    }
}

/// Polls a future with another runtime as the current one, so that the tasks DataFusion
/// spawns while planning and running a query (one per partition) land on the query runtime,
/// and CPU-heavy queries never starve the connections, cancel requests and timers of the
/// network runtime.
struct OnRuntime<F> {
    handle: tokio::runtime::Handle,
    inner: std::pin::Pin<Box<F>>,
}

impl<F> OnRuntime<F> {
    fn new(handle: tokio::runtime::Handle, inner: F) -> Self {
        Self {
            handle,
            inner: Box::pin(inner),
        }
    }
}

impl<F: std::future::Future> std::future::Future for OnRuntime<F> {
    type Output = F::Output;
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let this = self.get_mut();
        let _entered = this.handle.enter();
        this.inner.as_mut().poll(cx)
    }
}

/// The `-c name=value` (or `--name=value`) settings of a startup `options` string that a
/// session may set.
fn startup_options(options: &str) -> Vec<(String, String)> {
    const ALLOWED: [&str; 4] = [
        "statement_timeout",
        "application_name",
        "search_path",
        "extra_float_digits",
    ];
    let mut out = Vec::new();
    let mut words = options.split_whitespace();
    while let Some(word) = words.next() {
        let setting = if word == "-c" {
            words.next()
        } else {
            word.strip_prefix("-c").or_else(|| word.strip_prefix("--"))
        };
        if let Some((name, value)) = setting.and_then(|s| s.split_once('=')) {
            let name = name.to_ascii_lowercase().replace('-', "_");
            if ALLOWED.contains(&name.as_str()) {
                out.push((name, value.to_string()));
            }
        }
    }
    out
}

/// Postgres accepts `statement_timeout` as milliseconds or with a unit.
fn parse_pg_ms(value: &str) -> Option<u64> {
    let v = value.trim().trim_matches('\'');
    if let Ok(ms) = v.parse::<u64>() {
        return Some(ms);
    }
    v.parse::<crate::config::Millis>().ok().map(|m| m.0)
}

/// Cancels the query when the client's socket reports a hang-up (checked every 100 ms while
/// the query runs), so that an abandoned query stops and releases its memory.
fn watch_hangup(fd: i32, control: Weak<QueryControl>) {
    if fd < 0 {
        return;
    }
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let Some(control) = control.upgrade() else {
                return;
            };
            if control.reason.borrow().is_some() {
                return;
            }
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLRDHUP,
                revents: 0,
            };
            // SAFETY: one valid pollfd, zero timeout; the descriptor stays open while the
            // connection (which owns the query control) lives.
            let n = unsafe { libc::poll(&mut pfd, 1, 0) };
            if n > 0 && pfd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0 {
                control.cancel("client disconnect");
                return;
            }
        }
    });
}

/// Wraps a row stream: stops at cancel or deadline, counts rows, records the outcome.
fn wrap_rows(
    rows: pgwire::api::results::SendableRowStream,
    control: Arc<QueryControl>,
    guard: Arc<AuditGuard>,
    deadline: Option<tokio::time::Instant>,
) -> impl Stream<Item = PgWireResult<DataRow>> + Send + 'static {
    futures::stream::unfold(
        (rows, control, guard, false),
        move |(mut rows, control, guard, done)| async move {
            if done {
                return None;
            }
            let sleep = until(deadline);
            let item = tokio::select! {
                biased;
                reason = control.cancelled() => Err(cancel_error(reason)),
                () = sleep => Err(cancel_error("statement timeout")),
                next = OnRuntime::new(guard.shared.query_runtime(), rows.next()) => match next {
                    Some(item) => item,
                    None => {
                        guard.finished.store(true, Ordering::Relaxed);
                        return None;
                    }
                },
            };
            match item {
                Ok(row) => {
                    guard.rows.fetch_add(1, Ordering::Relaxed);
                    Some((Ok(row), (rows, control, guard, false)))
                }
                Err(e) => {
                    guard.fail(errors::sqlstate(&e, &guard.conn.session.hidden));
                    Some((Err(e), (rows, control, guard, true)))
                }
            }
        },
    )
}

fn wrap_response(
    response: Response,
    control: &Arc<QueryControl>,
    guard: &Arc<AuditGuard>,
    deadline: Option<tokio::time::Instant>,
) -> Response {
    match response {
        Response::Query(mut q) => {
            let rows = std::mem::replace(&mut q.data_rows, Box::pin(futures::stream::empty()));
            let times = super::pg_text::time_columns(&q.row_schema);
            let rows = wrap_rows(rows, control.clone(), guard.clone(), deadline)
                .map(move |row| row.map(|row| super::pg_text::trim_fractions(row, &times)));
            q.data_rows = Box::pin(rows);
            Response::Query(q)
        }
        Response::Error(info) => {
            guard.fail(info.code.clone());
            Response::Error(info)
        }
        other => {
            if let Response::Execution(_)
            | Response::TransactionStart(_)
            | Response::TransactionEnd(_) = &other
            {
                guard.finished.store(true, Ordering::Relaxed);
            }
            other
        }
    }
}

#[async_trait]
impl SimpleQueryHandler for Handlers {
    async fn on_query<C>(
        &self,
        client: &mut C,
        query: pgwire::messages::simplequery::Query,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // ROLLBACK TO SAVEPOINT clears a failed transaction (status E → T); pgwire computes
        // the status after the statement from the one before it, so set it first.
        if client.transaction_status() == pgwire::messages::response::TransactionStatus::Error
            && is_rollback_to_savepoint(&query.query)
        {
            client
                .set_transaction_status(pgwire::messages::response::TransactionStatus::Transaction);
        }
        self._on_query(client, query).await
    }

    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let conn = conn_of(client)?;
        let timeout = self.statement_timeout(client);
        let service = conn.service.clone();
        let query: &str = &super::pg_rewrite::before_parse(query);
        let needs_slot = {
            use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
            use datafusion::sql::sqlparser::parser::Parser;
            Parser::parse_sql(&PostgreSqlDialect {}, query)
                .map(|statements| statements.iter().any(super::admission::needs_slot))
                .unwrap_or(false)
        };
        self.controlled(
            &conn,
            timeout,
            query,
            needs_slot,
            async {
                <DfSessionService as SimpleQueryHandler>::do_query(&service, client, query).await
            },
            |responses: Vec<Response>, control, guard, deadline| {
                responses
                    .into_iter()
                    .map(|r| wrap_response(r, control, guard, deadline))
                    .collect()
            },
        )
        .await
    }
}

fn is_rollback_to_savepoint(query: &str) -> bool {
    let words: Vec<String> = query
        .split_whitespace()
        .take(2)
        .map(|w| w.trim_end_matches(';').to_ascii_uppercase())
        .collect();
    words.len() == 2 && words[0] == "ROLLBACK" && words[1] == "TO"
}

/// Parses with the connected user's session (its catalog decides what exists).
pub struct UserParser {
    fallback: Arc<datafusion_postgres::Parser>,
}

#[async_trait]
impl QueryParser for UserParser {
    type Statement = DfStatement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let conn = conn_of(client)?;
        let parser = conn.service.query_parser();
        let text = super::pg_rewrite::before_parse(sql);
        let parsed = parser.parse_sql(client, &text, types).await?;
        Ok(parsed.map(|(text, planned)| {
            let planned = planned.map(|(statement, plan)| {
                let plan = super::pg_compat::keep_placeholders(sql, plan);
                let plan = super::pg_compat::type_limit_placeholders(plan);
                (statement, plan)
            });
            (text, planned)
        }))
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        if is_type_introspection(&stmt.0) {
            return Ok(vec![Type::OID_ARRAY]);
        }
        self.fallback.get_parameter_types(stmt)
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        let fields = self.fallback.get_result_schema(stmt, column_format)?;
        if !is_type_introspection(&stmt.0) {
            return Ok(fields);
        }
        // Announce oid[] (a type asyncpg decodes without asking) where the catalog has int4[].
        Ok(fields
            .into_iter()
            .map(|f| {
                if *f.datatype() == Type::INT4_ARRAY {
                    FieldInfo::new(
                        f.name().to_string(),
                        f.table_id(),
                        f.column_id(),
                        Type::OID_ARRAY,
                        f.format(),
                    )
                } else {
                    f
                }
            })
            .collect())
    }
}

#[async_trait]
impl ExtendedQueryHandler for Handlers {
    type Statement = DfStatement;
    type QueryParser = UserParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let conn = conn_of(client)?;
        let timeout = self.statement_timeout(client);
        let service = conn.service.clone();
        let text = portal.statement.statement.0.clone();
        if is_type_introspection(&text) {
            let format = Arc::new(pgwire::types::format::FormatOptions::from_client_metadata(
                client.metadata(),
            ));
            return self
                .controlled(
                    &conn,
                    timeout,
                    &text,
                    false,
                    type_introspection(&conn, portal, format),
                    wrap_response,
                )
                .await;
        }
        let needs_slot = match &portal.statement.statement.1 {
            Some((statement, _)) => super::admission::needs_slot(statement),
            None => false,
        };
        self.controlled(
            &conn,
            timeout,
            &text,
            needs_slot,
            async {
                <DfSessionService as ExtendedQueryHandler>::do_query(
                    &service, client, portal, max_rows,
                )
                .await
            },
            wrap_response,
        )
        .await
    }
}

/// asyncpg's type introspection query (`typeinfo_tree`), which it sends for any result
/// type it has no built-in codec for (arrays of bigint, say).
fn is_type_introspection(sql: &str) -> bool {
    sql.contains("typeinfo_tree") && sql.contains("pg_type")
}

/// An `oid` parameter value, binary or text.
#[derive(Debug)]
struct Oid(u32);

impl<'a> postgres_types::FromSql<'a> for Oid {
    fn from_sql(
        _ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let bytes: [u8; 4] = raw.try_into().map_err(|_| "an oid is 4 bytes")?;
        Ok(Oid(u32::from_be_bytes(bytes)))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::OID
    }
}

impl<'a> pgwire::types::FromSqlText<'a> for Oid {
    fn from_sql_text(
        _ty: &Type,
        input: &'a [u8],
        _format: &pgwire::types::format::FormatOptions,
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Oid(std::str::from_utf8(input)?.trim().parse()?))
    }
}

/// Answers asyncpg's introspection query. DataFusion cannot run the query itself (a
/// recursive CTE over correlated subqueries), and datafusion-postgres cannot decode its
/// `$1::oid[]` parameter; the answer is simple here because the catalog has no domains,
/// ranges or user-defined composite types: each requested type, and the element type of
/// each array, with the columns in the order and types the statement's description gave.
async fn type_introspection(
    conn: &Conn,
    portal: &Portal<DfStatement>,
    format: Arc<pgwire::types::format::FormatOptions>,
) -> PgWireResult<Response> {
    let api = |e: datafusion::error::DataFusionError| PgWireError::ApiError(Box::new(e));
    let oids: Option<Vec<Option<Oid>>> = portal.parameter(0, &Type::OID_ARRAY)?;
    let mut list: Vec<String> = oids
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .map(|o| o.0.to_string())
        .collect();
    if list.is_empty() {
        list.push("-1".into());
    }
    let list = list.join(", ");
    let sql = format!(
        "SELECT t.oid, n.nspname AS ns, t.typname AS name, t.typtype AS kind, \
                CAST(NULL AS INT) AS basetype, t.typelem AS elemtype, t.typdelim AS elemdelim, \
                CAST(NULL AS INT) AS range_subtype, CAST(NULL AS INT[]) AS attrtypoids, \
                CAST(NULL AS TEXT[]) AS attrnames, CAST(d.level AS BIGINT) AS depth, \
                CAST(NULL AS TEXT) AS basetype_name, CAST(NULL AS TEXT) AS elemtype_name, \
                CAST(NULL AS TEXT) AS range_subtype_name \
         FROM pg_catalog.pg_type t \
         JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace \
         JOIN (SELECT oid AS id, 0 AS level FROM pg_catalog.pg_type WHERE oid IN ({list}) \
               UNION \
               SELECT typelem AS id, 1 AS level FROM pg_catalog.pg_type \
               WHERE oid IN ({list}) AND typelem <> 0) d ON t.oid = d.id \
         ORDER BY d.level DESC"
    );
    let df = conn.ctx.sql(&sql).await.map_err(api)?;
    let response = datafusion_postgres::arrow_pg::datatypes::df::encode_dataframe(
        df,
        &portal.result_column_format,
        Some(format),
    )
    .await?;
    Ok(Response::Query(response))
}

#[async_trait]
impl CancelHandler for Handlers {
    async fn on_cancel_request(&self, request: CancelRequest) {
        self.shared.cancel(request.pid, &request.secret_key);
    }
}

impl ErrorHandler for Handlers {
    fn on_error<C>(&self, client: &C, error: &mut PgWireError)
    where
        C: ClientInfo,
    {
        let hidden = client
            .session_extensions()
            .get::<Arc<Conn>>()
            .map(|c| c.session.hidden.clone())
            .unwrap_or_default();
        let original = std::mem::replace(error, PgWireError::QueryCanceled);
        *error = errors::translate(original, &hidden);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_timeouts_parse_like_postgres() {
        assert_eq!(parse_pg_ms("1500"), Some(1500));
        assert_eq!(parse_pg_ms("'2s'"), Some(2000));
        assert_eq!(parse_pg_ms("1min"), Some(60_000));
        assert_eq!(parse_pg_ms("soon"), None);
        assert!(is_rollback_to_savepoint("rollback to savepoint a"));
        assert!(!is_rollback_to_savepoint("ROLLBACK"));
        assert_eq!(
            startup_options("-c statement_timeout=5s --application-name=x -c user=admin"),
            [
                ("statement_timeout".to_string(), "5s".to_string()),
                ("application_name".to_string(), "x".to_string())
            ]
        );
    }
}
