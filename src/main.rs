//! `discern`: a SQL query engine for case-control statistics.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use discern::config::{ByteSize, Config, default_memory_limit};
use discern::demo_data::{self, DemoSpec};
use discern::error::{Error, Result};
use discern::output::Format;
use discern::query::{self, Sink};
use discern::session::Engine;

/// Discern: which biomarkers tell cases from controls, how well, and how sure we are, in SQL.
#[derive(Parser)]
#[command(name = "discern", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run SQL and print the result as a table, or write it to a file.
    ///
    /// With no --config and no --table, the embedded demo dataset is served
    /// (tables `samples` and `measurements`).
    Query(QueryArgs),
    /// Generate a deterministic case-control dataset in Discern's data model.
    DemoData(DemoArgs),
    /// Serve SQL over the Postgres wire protocol (TLS required, SCRAM-SHA-256 logins).
    ///
    /// With no configuration: the embedded demo dataset on 127.0.0.1:5433, a self-signed
    /// certificate and a first user with a random password, created in the data directory
    /// and printed with a ready-to-paste psql command.
    Serve(ServeArgs),
    /// Manage the users who may log in to `discern serve`.
    #[command(subcommand)]
    User(UserCommand),
    /// Run a cluster worker: coordinators (`serve` or `query` with --worker or [cluster])
    /// send it parts of their queries over mutual TLS.
    Worker(WorkerArgs),
}

#[derive(Args)]
struct WorkerArgs {
    /// Address to listen on (port 0: any free port; the real one is printed).
    #[arg(long, value_name = "HOST:PORT")]
    listen: String,
    /// This worker's certificate chain (PEM), signed by the cluster CA.
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// This worker's private key (PEM).
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// The cluster CA (PEM): every coordinator and worker must present a certificate it signed.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    #[command(flatten)]
    resources: ResourceArgs,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:5433].
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
    /// Directory for the generated certificate and the users file
    /// [default: $XDG_DATA_HOME/discern or ~/.local/share/discern].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The users file [default: users.toml in the data directory].
    #[arg(long = "users", value_name = "FILE")]
    users_file: Option<PathBuf>,
    /// Server certificate chain (PEM); with --tls-key. Default: a generated self-signed one.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Server private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// CA bundle for client certificates (certificate login, common name = user name).
    #[arg(long, value_name = "FILE")]
    client_ca: Option<PathBuf>,
    /// Most sessions at once [default: 100].
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Close sessions idle this long (e.g. 30min; 0 = never) [default: 1h].
    #[arg(long, value_name = "DURATION")]
    idle_timeout: Option<discern::config::Millis>,
    /// Cancel statements running longer than this (e.g. 10min; 0 = none) [default: none].
    #[arg(long, value_name = "DURATION")]
    statement_timeout: Option<discern::config::Millis>,
    /// Audit log: stdout, off, or a file to append to [default: stdout].
    #[arg(long, value_name = "TARGET")]
    audit_log: Option<String>,
    /// Memory each running query can count on: at most memory-limit / query-memory queries
    /// run at once, the others wait in a queue [default: 256MiB].
    #[arg(long, value_name = "SIZE")]
    query_memory: Option<ByteSize>,
    /// How long a query may wait in the queue (0 = forever) [default: 10min].
    #[arg(long, value_name = "DURATION")]
    queue_timeout: Option<discern::config::Millis>,
    /// Accept logins without TLS. Passwords and medical data would cross the network in
    /// clear text: for a loopback-only sidecar at most.
    #[arg(long)]
    insecure_allow_plaintext: bool,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user, or change their password. The password is read from standard input
    /// (one line), so that it never appears in the process list or shell history.
    Add(UserArgs),
    /// Remove a user.
    Remove(UserArgs),
    /// List the users.
    List(UserFileArgs),
}

#[derive(Args)]
struct UserArgs {
    /// The user name.
    name: String,
    #[command(flatten)]
    file: UserFileArgs,
}

#[derive(Args)]
struct UserFileArgs {
    /// The users file [default: users.toml in the data directory].
    #[arg(long = "users", value_name = "FILE")]
    users_file: Option<PathBuf>,
    /// The data directory whose users.toml to use.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// A config file whose [server] section names the users file or data directory.
    #[arg(long, value_name = "FILE", env = "DISCERN_CONFIG")]
    config: Option<PathBuf>,
}

impl UserFileArgs {
    fn path(&self) -> Result<PathBuf> {
        if let Some(path) = &self.users_file {
            return Ok(path.clone());
        }
        let config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        let mut options = discern::server::ServeOptions::from_config(&config);
        if let Some(dir) = &self.data_dir
            && config.server.users_file.is_none()
        {
            options.users_file = dir.join("users.toml");
        }
        Ok(options.users_file)
    }
}

#[derive(Args)]
struct QueryArgs {
    /// The SQL to run (one or more statements separated by `;`).
    #[arg(conflicts_with = "file", required_unless_present = "file")]
    sql: Option<String>,
    /// Read the SQL from this file (`-` for standard input).
    #[arg(short, long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Write the last statement's result to this file (.csv, .json, .ndjson, .parquet).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// The output file's format, when the extension does not say it.
    #[arg(long, value_enum, requires = "output")]
    format: Option<Format>,
    /// Rows shown on the terminal; the rest are counted.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    max_rows: usize,
    /// Print rows, time, peak memory, spill and peak RSS to standard error.
    #[arg(long)]
    stats: bool,
    #[command(flatten)]
    engine: EngineArgs,
}

/// The config file and the resources of a process that runs queries (or tasks of them).
#[derive(Args)]
struct ResourceArgs {
    /// A TOML config file (tables, memory limit, spill directory, S3 CA bundle, [cluster]).
    #[arg(long, value_name = "FILE", env = "DISCERN_CONFIG")]
    config: Option<PathBuf>,
    /// Memory that queries may hold before they spill to disk or fail (e.g. 512MiB, 2GiB).
    /// [default: half of the memory available to the process: the cgroup limit, else RAM]
    #[arg(long, value_name = "SIZE")]
    memory_limit: Option<ByteSize>,
    /// Directory for spill files [default: the system temporary directory].
    #[arg(long, value_name = "DIR")]
    spill_dir: Option<PathBuf>,
    /// Partitions a query runs in parallel [default: the number of CPU cores].
    #[arg(long, value_name = "N")]
    target_partitions: Option<usize>,
}

impl ResourceArgs {
    /// The config file, with these flags applied over it.
    fn config(&self) -> Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if self.memory_limit.is_some() {
            config.memory_limit = self.memory_limit;
        }
        if self.spill_dir.is_some() {
            config.spill_dir.clone_from(&self.spill_dir);
        }
        if let Some(n) = self.target_partitions {
            if n == 0 {
                return Err(Error::Config(
                    "--target-partitions must be at least 1".into(),
                ));
            }
            config.target_partitions = Some(n);
        }
        Ok(config)
    }
}

/// Settings shared by every command that runs queries.
#[derive(Args)]
struct EngineArgs {
    #[command(flatten)]
    resources: ResourceArgs,
    /// A table as NAME=LOCATION: a local directory of Parquet files or s3://BUCKET/PREFIX/.
    /// Repeatable; adds to (or replaces) the tables of the config file.
    #[arg(long = "table", value_name = "NAME=LOCATION")]
    tables: Vec<String>,
    /// A cluster worker to run queries on (https://HOST:PORT; repeatable). Replaces the
    /// workers of [cluster] in the config file.
    #[arg(long = "worker", value_name = "URL")]
    workers: Vec<String>,
    /// This node's certificate (PEM) for the cluster's mutual TLS.
    #[arg(long, value_name = "FILE")]
    cluster_cert: Option<PathBuf>,
    /// This node's private key (PEM) for the cluster's mutual TLS.
    #[arg(long, value_name = "FILE")]
    cluster_key: Option<PathBuf>,
    /// The cluster CA (PEM): workers must present a certificate it signed.
    #[arg(long, value_name = "FILE")]
    cluster_ca: Option<PathBuf>,
}

impl EngineArgs {
    /// The config file, with the flags applied over it.
    fn config(&self) -> Result<Config> {
        let mut config = self.resources.config()?;
        for table in &self.tables {
            config.add_table_flag(table)?;
        }
        let cluster = &mut config.cluster;
        if !self.workers.is_empty() {
            cluster.workers.clone_from(&self.workers);
            cluster.workers_dns = None;
        }
        if self.cluster_cert.is_some() {
            cluster.tls_cert.clone_from(&self.cluster_cert);
        }
        if self.cluster_key.is_some() {
            cluster.tls_key.clone_from(&self.cluster_key);
        }
        if self.cluster_ca.is_some() {
            cluster.ca.clone_from(&self.cluster_ca);
        }
        Ok(config)
    }
}

#[derive(Args)]
struct DemoArgs {
    /// Directory to write `samples/` and `measurements/` into.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Number of samples.
    #[arg(long, default_value_t = demo_data::DEFAULT.samples)]
    samples: usize,
    /// Number of biomarkers per sample.
    #[arg(long, default_value_t = demo_data::DEFAULT.biomarkers)]
    biomarkers: usize,
    /// Number of measurement shards (batches of samples, one Parquet file each).
    #[arg(long, default_value_t = demo_data::DEFAULT.shards)]
    shards: usize,
    /// Fraction of samples that are cases.
    #[arg(long, default_value_t = demo_data::DEFAULT.case_fraction)]
    case_fraction: f64,
    /// Seed of the generator (the same seed gives the same bytes).
    #[arg(long, default_value_t = demo_data::DEFAULT.seed)]
    seed: u64,
    /// Significant digits values are rounded to, as an instrument reports them (ties).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=17))]
    digits: u8,
    /// Keep values at full precision (no rounding: about as many distinct values as rows, as
    /// concentrations computed from a calibration curve are).
    #[arg(long, conflicts_with = "digits")]
    full_precision: bool,
    /// Replace `samples/` and `measurements/` if they exist.
    #[arg(long)]
    force: bool,
}

fn main() -> ExitCode {
    // The default memory limit depends on the machine: show the value in force in --help.
    let memory_help = format!(
        "Memory that queries may hold before they spill to disk or fail (e.g. 512MiB, 2GiB) \
         [default: half of the memory available to the process (the cgroup limit, else RAM): \
         {} here]",
        default_memory_limit()
    );
    let command = Cli::command()
        .mut_subcommand("query", |c| {
            c.mut_arg("memory_limit", |a| a.help(memory_help.clone()))
        })
        .mut_subcommand("serve", |c| {
            c.mut_arg("memory_limit", |a| a.help(memory_help.clone()))
        });
    let cli = match Cli::from_arg_matches(&command.get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(cli));
    // A failed statement leaves aborted tasks behind (a distributed query's coordinator drains
    // its worker channels in one). Dropping the runtime while one of them is being polled
    // cancels its children under it, and datafusion-distributed panics on a cancelled child:
    // let them wind down first (bounded), so the error stays the one line printed below.
    runtime.block_on(settle(Duration::from_secs(2)));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Waits until no task is alive on the runtime other than the caller, or `limit` has passed.
async fn settle(limit: Duration) {
    let metrics = tokio::runtime::Handle::current().metrics();
    let deadline = tokio::time::Instant::now() + limit;
    while metrics.num_alive_tasks() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Query(args) => run_query(args).await,
        Command::Serve(args) => run_serve(args).await,
        Command::User(command) => run_user(command),
        Command::Worker(args) => run_worker(args).await,
        Command::DemoData(args) => {
            let spec = DemoSpec {
                samples: args.samples,
                biomarkers: args.biomarkers,
                shards: args.shards,
                case_fraction: args.case_fraction,
                seed: args.seed,
                digits: (!args.full_precision).then_some(usize::from(args.digits)),
            };
            let generated = demo_data::generate(&spec, &args.out, args.force)?;
            let shifted: Vec<String> = generated
                .shifted
                .iter()
                .map(|(name, shift)| format!("{name} ({shift:+.3} SD)"))
                .collect();
            println!(
                "wrote {} samples and {} measurements in {} shards to {}; shifted in cases: {}",
                generated.samples,
                generated.measurements,
                spec.shards,
                args.out.display(),
                shifted.join(", ")
            );
            Ok(())
        }
    }
}

async fn run_query(args: QueryArgs) -> Result<()> {
    let sql = match (&args.sql, &args.file) {
        (Some(sql), _) => sql.clone(),
        (None, Some(path)) if path.as_os_str() == "-" => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|source| Error::SqlFile {
                    path: path.clone(),
                    source,
                })?;
            text
        }
        (None, Some(path)) => std::fs::read_to_string(path).map_err(|source| Error::SqlFile {
            path: path.clone(),
            source,
        })?,
        (None, None) => return Err(Error::Config("give SQL or --file".into())),
    };
    let config = args.engine.config()?;
    let sink = match &args.output {
        Some(path) => Sink::File {
            path: path.clone(),
            format: match args.format {
                Some(format) => format,
                None => Format::from_path(path)?,
            },
            max_rows: args.max_rows,
        },
        None => Sink::Terminal {
            max_rows: args.max_rows,
        },
    };
    let engine = Engine::new(&config).await?;
    engine.pool.reset_peak();
    let stats = query::run(&engine, &sql, &sink).await?;
    if let Sink::File { path, .. } = &sink {
        eprintln!("wrote {} rows to {}", stats.rows, path.display());
    }
    if args.stats {
        eprintln!(
            "stats: statements={} rows={} elapsed={:.3}s peak_memory={} memory_limit={} \
             spilled={} spill_files={} peak_rss={}",
            stats.statements,
            stats.rows,
            stats.elapsed.as_secs_f64(),
            ByteSize(engine.pool.peak() as u64),
            engine.pool.limit(),
            ByteSize(stats.spilled_bytes as u64),
            stats.spill_count,
            query::peak_rss().map_or("unknown".to_string(), |b| ByteSize(b).to_string()),
        );
        if let Some(run) = &stats.cluster {
            eprintln!("cluster: {run}");
        }
    }
    Ok(())
}

async fn run_worker(args: WorkerArgs) -> Result<()> {
    let config = args.resources.config()?;
    discern::cluster::worker::run(discern::cluster::worker::WorkerOptions {
        listen: args.listen,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        ca: args.ca,
        config,
    })
    .await
}

async fn run_serve(args: ServeArgs) -> Result<()> {
    let mut config = args.engine.config()?;
    let s = &mut config.server;
    if args.listen.is_some() {
        s.listen.clone_from(&args.listen);
    }
    if args.data_dir.is_some() {
        s.data_dir.clone_from(&args.data_dir);
    }
    if args.users_file.is_some() {
        s.users_file.clone_from(&args.users_file);
    }
    if args.tls_cert.is_some() {
        s.tls_cert.clone_from(&args.tls_cert);
        s.tls_key.clone_from(&args.tls_key);
    }
    if args.client_ca.is_some() {
        s.client_ca.clone_from(&args.client_ca);
    }
    if args.max_connections.is_some() {
        s.max_connections = args.max_connections;
    }
    if args.idle_timeout.is_some() {
        s.idle_timeout = args.idle_timeout;
    }
    if args.statement_timeout.is_some() {
        s.statement_timeout = args.statement_timeout;
    }
    if args.audit_log.is_some() {
        s.audit_log.clone_from(&args.audit_log);
    }
    if args.query_memory.is_some() {
        s.query_memory = args.query_memory;
    }
    if args.queue_timeout.is_some() {
        s.queue_timeout = args.queue_timeout;
    }
    if args.insecure_allow_plaintext {
        s.insecure_allow_plaintext = true;
    }
    let demo = config.tables.is_empty();
    let options = discern::server::ServeOptions::from_config(&config);
    let plaintext = options.allow_plaintext;
    let server = discern::server::Server::bind(config, options).await?;
    let st = &server.started;
    let host = st.addr.ip();
    let port = st.addr.port();
    eprintln!(
        "discern {} serving {} on {} (TLS 1.2/1.3 required, SCRAM-SHA-256)",
        env!("CARGO_PKG_VERSION"),
        if demo {
            "the embedded demo data (tables samples, measurements)"
        } else {
            "the configured tables"
        },
        st.addr
    );
    if plaintext {
        eprintln!("WARNING: --insecure-allow-plaintext: logins without TLS are accepted");
    }
    eprintln!(
        "  certificate: {}{}",
        st.cert_path.display(),
        if st.generated_cert {
            " (self-signed, generated now)"
        } else {
            ""
        }
    );
    eprintln!("  SHA-256 fingerprint: {}", st.fingerprint);
    let user = match &st.initial_user {
        Some((name, password)) => {
            eprintln!(
                "  first user: {name}, password: {password}\n  (shown once: {} keeps only a SCRAM verifier; \
                 add users with `discern user add NAME`)",
                st.users_file.display()
            );
            name.clone()
        }
        None => {
            eprintln!(
                "  users: {} (`discern user add NAME` to add one)",
                st.users_file.display()
            );
            "USER".to_string()
        }
    };
    eprintln!("connect with:");
    eprintln!("  psql \"host={host} port={port} user={user} sslmode=require\"");
    eprintln!(
        "  or, checking the certificate: psql \"host={host} port={port} user={user} sslmode=verify-ca sslrootcert={}\"",
        st.cert_path.display()
    );
    server.run().await
}

fn run_user(command: UserCommand) -> Result<()> {
    use discern::server::users::Users;
    match command {
        UserCommand::Add(args) => {
            let path = args.file.path()?;
            let mut users = Users::load(&path)?;
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).map_err(|e| {
                Error::Config(format!("reading the password from standard input: {e}"))
            })?;
            let password = line.trim_end_matches(['\n', '\r']);
            let existed = users.get(&args.name).is_some();
            users.set_password(&args.name, password)?;
            users.save(&path)?;
            eprintln!(
                "{} user {} in {}",
                if existed { "updated" } else { "added" },
                args.name,
                path.display()
            );
            Ok(())
        }
        UserCommand::Remove(args) => {
            let path = args.file.path()?;
            let mut users = Users::load(&path)?;
            if !users.remove(&args.name) {
                return Err(Error::Config(format!(
                    "no user {} in {}",
                    args.name,
                    path.display()
                )));
            }
            users.save(&path)?;
            eprintln!("removed user {} from {}", args.name, path.display());
            Ok(())
        }
        UserCommand::List(args) => {
            let path = args.path()?;
            for name in Users::load(&path)?.names() {
                println!("{name}");
            }
            Ok(())
        }
    }
}
