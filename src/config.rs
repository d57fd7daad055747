//! Process settings: the TOML config file, merged with command-line flags.
//!
//! ```toml
//! # Memory the query engine may hold before it spills or fails (default: half of the
//! # memory available to the process: the container's cgroup limit, else physical RAM).
//! memory_limit = "2GiB"
//! # Where spill files go (default: the system temporary directory).
//! spill_dir = "/var/tmp/discern"
//!
//! [tables.measurements]
//! location = "s3://lab-data/measurements/"   # a directory or prefix of Parquet files
//!
//! [tables.samples]
//! location = "/data/samples/"
//!
//! [s3]
//! ca_bundle = "/etc/ssl/certs/private-ca.pem"  # extra trusted CA for a private endpoint
//!
//! [server]                          # `discern serve` (every key optional)
//! listen = "0.0.0.0:5433"
//! data_dir = "/var/lib/discern"     # generated certificate, users file
//! tls_cert = "/etc/discern/tls.crt" # with tls_key; default: generated, self-signed
//! tls_key = "/etc/discern/tls.key"
//! client_ca = "/etc/discern/clients-ca.pem"  # certificate login (CN = user name)
//! max_connections = 200
//! idle_timeout = "30min"            # close sessions idle this long ("0" = never)
//! statement_timeout = "0"           # default per-statement limit ("0" = none)
//! audit_log = "/var/log/discern/audit.log"   # or "stdout" (default) or "off"
//! query_memory = "256MiB"          # admission: memory_limit / query_memory queries at once
//! queue_timeout = "10min"           # how long a query may wait for its turn
//!
//! [cluster]                         # run queries on `discern worker`s (see src/cluster)
//! workers = ["https://worker-1:7443", "https://worker-2:7443"]  # or workers_dns = "name:port"
//! tls_cert = "/etc/discern/cluster/tls.crt"   # mutual TLS: this node's certificate,
//! tls_key = "/etc/discern/cluster/tls.key"    # its key,
//! ca = "/etc/discern/cluster/ca.crt"          # and the CA that signs every node's
//!
//! [grants]                          # who may read which tables (default: everyone, all)
//! alice = ["measurements", "samples"]
//! "*" = ["samples"]                 # users not listed
//! ```
//!
//! S3 credentials, region and endpoint are never read from this file: they come from the
//! standard `AWS_*` environment variables or the instance/pod role, like the rest of the AWS
//! tooling.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The settings Discern runs with.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Memory the query engine may hold before it spills or fails.
    /// Default: [`default_memory_limit`].
    pub memory_limit: Option<ByteSize>,
    /// Directory for spill files. Default: the system temporary directory.
    pub spill_dir: Option<PathBuf>,
    /// How many partitions a query runs in parallel. Default: the number of CPU cores.
    pub target_partitions: Option<usize>,
    /// The tables to serve, by SQL name. Default: the embedded demo dataset.
    #[serde(default)]
    pub tables: BTreeMap<String, TableConfig>,
    /// S3 client settings that are not secrets.
    #[serde(default)]
    pub s3: S3Config,
    /// The Postgres-wire endpoint (`discern serve`).
    #[serde(default)]
    pub server: ServerConfig,
    /// Tables each user may read (`"*"`: users not listed). Empty: every user reads every
    /// table. A user without an entry (and no `"*"`) reads nothing.
    #[serde(default)]
    pub grants: BTreeMap<String, Vec<String>>,
    /// Workers to run queries on (cluster mode). Default: none, queries run in this process.
    #[serde(default)]
    pub cluster: crate::cluster::ClusterConfig,
}

/// Settings of `discern serve`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on. Default: 127.0.0.1:5433.
    pub listen: Option<String>,
    /// Directory for the generated certificate and the users file.
    pub data_dir: Option<PathBuf>,
    /// The users file. Default: `users.toml` in the data directory.
    pub users_file: Option<PathBuf>,
    /// Server certificate chain (PEM).
    pub tls_cert: Option<PathBuf>,
    /// Server private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<PathBuf>,
    /// CA bundle for client certificates: a client presenting a certificate it signed, with
    /// the user name as common name, logs in without a password.
    pub client_ca: Option<PathBuf>,
    /// Accept logins without TLS. Never the default; for a loopback-only sidecar at most.
    #[serde(default)]
    pub insecure_allow_plaintext: bool,
    /// Most sessions at once. Default: 100.
    pub max_connections: Option<usize>,
    /// Close sessions idle for this long. Default: 1h; "0" = never.
    pub idle_timeout: Option<Millis>,
    /// Cancel statements running longer than this. Default: none.
    pub statement_timeout: Option<Millis>,
    /// Where the audit log goes: "stdout", "off" or a file path. Default: stdout.
    pub audit_log: Option<String>,
    /// Memory each running query can count on (admission control): at most
    /// `memory_limit / query_memory` queries run at once, the others wait. Default: 256MiB.
    pub query_memory: Option<ByteSize>,
    /// How long a query may wait for its turn. Default: 10min; "0" = forever.
    pub queue_timeout: Option<Millis>,
}

/// A duration in milliseconds, written `250ms`, `30s`, `15min`, `2h` or `0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Millis(pub u64);

impl Millis {
    /// None for zero (no limit).
    pub fn non_zero(self) -> Option<std::time::Duration> {
        (self.0 > 0).then(|| std::time::Duration::from_millis(self.0))
    }
}

impl FromStr for Millis {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("'{s}' is not a duration (e.g. 500ms, 30s, 15min, 2h, 0)"))?;
        let scale = match unit.trim() {
            "ms" => 1,
            "" if n == 0 => 1,
            "s" => 1_000,
            "min" => 60_000,
            "h" => 3_600_000,
            _ => {
                return Err(format!(
                    "'{s}' is not a duration (e.g. 500ms, 30s, 15min, 2h, 0)"
                ));
            }
        };
        Ok(Millis(n.saturating_mul(scale)))
    }
}

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One table: a directory (or S3 prefix) of Parquet files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// A local directory, a single Parquet file, or `s3://bucket/prefix/`.
    pub location: String,
    /// Hive partition columns (`batch=2024-01/…`). Default: inferred from the paths.
    pub partitions: Option<Vec<String>>,
}

/// S3 settings that are not secrets.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// A PEM bundle of extra CA certificates to trust (for a private S3 endpoint).
    /// Default: the `AWS_CA_BUNDLE` environment variable, else only the system roots.
    pub ca_bundle: Option<PathBuf>,
}

impl Config {
    /// Reads a config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigFile {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// Parses the TOML text of a config file.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let config: Config = toml::from_str(text).map_err(|e| {
            // Only the message and the line: toml's own rendering quotes the offending
            // source line, which could be a secret someone pasted into the file.
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let msg = match line {
                Some(line) => format!("line {line}: {}", crate::error::one_line(&e.message())),
                None => crate::error::one_line(&e.message()),
            };
            if ["secret", "access_key", "session_token", "password"]
                .iter()
                .any(|w| msg.contains(w))
            {
                format!(
                    "{msg} (credentials are never read from the config file: \
                     set the AWS_* environment variables or use an instance role)"
                )
            } else {
                msg
            }
        })?;
        for name in config.tables.keys() {
            validate_table_name(name)?;
        }
        Ok(config)
    }

    /// Adds or replaces a table given as `NAME=LOCATION` on the command line.
    pub fn add_table_flag(&mut self, flag: &str) -> Result<()> {
        let (name, location) = flag
            .split_once('=')
            .ok_or_else(|| Error::Config(format!("--table {flag}: expected NAME=LOCATION")))?;
        let name = name.trim();
        validate_table_name(name).map_err(|e| Error::Config(format!("--table {flag}: {e}")))?;
        if location.trim().is_empty() {
            return Err(Error::Config(format!(
                "--table {flag}: the location is empty"
            )));
        }
        self.tables.insert(
            name.to_string(),
            TableConfig {
                location: location.trim().to_string(),
                partitions: None,
            },
        );
        Ok(())
    }

    /// The memory limit in force: configured, or the default.
    pub fn effective_memory_limit(&self) -> ByteSize {
        self.memory_limit.unwrap_or_else(default_memory_limit)
    }
}

fn validate_table_name(name: &str) -> std::result::Result<(), String> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "table name '{name}' must be a lower-case SQL identifier ([a-z_][a-z0-9_]*)"
        ))
    }
}

/// The default memory limit: half of the memory available to the process, which is the
/// container's cgroup limit when one is set (Kubernetes `resources.limits.memory`) and
/// physical RAM otherwise. The other half covers what the pool does not account for
/// (Parquet decoding buffers, the binary, result batches in flight) and the page cache.
pub fn default_memory_limit() -> ByteSize {
    ByteSize(available_memory() / 2)
}

/// Memory available to this process: the cgroup (v2, then v1) limit, else physical RAM,
/// else 4 GiB if neither can be read.
pub fn available_memory() -> u64 {
    let physical = read_meminfo_total().unwrap_or(4 << 30);
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .filter_map(|p| std::fs::read_to_string(p).ok())
    .filter_map(|s| s.trim().parse::<u64>().ok())
    .next();
    match cgroup {
        Some(limit) if limit < physical => limit,
        _ => physical,
    }
}

fn read_meminfo_total() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A size in bytes, written as `512MiB`, `2GiB`, `1.5GiB`, `2G` (binary) or `2GB` (decimal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// The size in bytes as `usize`, saturating.
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let number: f64 = number
            .parse()
            .map_err(|_| format!("invalid size '{s}': expected e.g. 512MiB, 2GiB or 1073741824"))?;
        let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kib" => 1 << 10,
            "m" | "mib" => 1 << 20,
            "g" | "gib" => 1 << 30,
            "t" | "tib" => 1 << 40,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            "tb" => 1_000_000_000_000,
            other => return Err(format!("invalid size '{s}': unknown unit '{other}'")),
        };
        let bytes = number * multiplier as f64;
        if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
            return Err(format!("invalid size '{s}': out of range"));
        }
        Ok(ByteSize(bytes as u64))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(ByteSize(n)),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
        let mut value = self.0 as f64;
        let mut unit = 0;
        while value >= 1024.0 && unit < UNITS.len() - 1 {
            value /= 1024.0;
            unit += 1;
        }
        if unit == 0 || value.fract() == 0.0 {
            write!(f, "{}{}", value as u64, UNITS[unit])
        } else {
            write!(f, "{value:.1}{}", UNITS[unit])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_parse_binary_and_decimal_units() {
        assert_eq!("2GiB".parse(), Ok(ByteSize(2 << 30)));
        assert_eq!("512MiB".parse(), Ok(ByteSize(512 << 20)));
        assert_eq!("1.5GiB".parse(), Ok(ByteSize(3 << 29)));
        assert_eq!("2G".parse(), Ok(ByteSize(2 << 30)));
        assert_eq!("2GB".parse(), Ok(ByteSize(2_000_000_000)));
        assert_eq!("1048576".parse(), Ok(ByteSize(1 << 20)));
        assert!("two GiB".parse::<ByteSize>().is_err());
        assert!("2 parsecs".parse::<ByteSize>().is_err());
        assert!("0".parse::<ByteSize>().is_err());
        assert_eq!(ByteSize(3 << 29).to_string(), "1.5GiB");
        assert_eq!(ByteSize(256 << 20).to_string(), "256MiB");
    }

    #[test]
    fn config_file_parses_tables_and_sizes() {
        let c = Config::parse(
            r#"
            memory_limit = "1GiB"
            [tables.measurements]
            location = "s3://lab/measurements/"
            partitions = ["batch"]
            [s3]
            ca_bundle = "ca.pem"
            "#,
        )
        .unwrap();
        assert_eq!(c.memory_limit, Some(ByteSize(1 << 30)));
        assert_eq!(c.tables["measurements"].location, "s3://lab/measurements/");
        assert_eq!(c.s3.ca_bundle, Some(PathBuf::from("ca.pem")));
    }

    #[test]
    fn config_rejects_unknown_keys_and_credentials() {
        let err = Config::parse("memory_limt = \"1GiB\"").unwrap_err();
        assert!(err.contains("memory_limt"), "{err}");
        let err = Config::parse("[s3]\nsecret_access_key = \"x\"").unwrap_err();
        assert!(err.contains("AWS_* environment variables"), "{err}");
        assert!(
            !err.contains("\"x\""),
            "the secret must not be echoed: {err}"
        );
        let err = Config::parse("[tables.Bad-Name]\nlocation = \"/x\"").unwrap_err();
        assert!(err.contains("Bad-Name"), "{err}");
    }

    #[test]
    fn the_example_config_parses() {
        let text = include_str!("../deploy/discern.example.toml");
        let c = Config::parse(text).unwrap();
        assert_eq!(c.memory_limit, Some(ByteSize(2 << 30)));
        assert_eq!(c.tables.len(), 2);
        assert!(c.tables["samples"].location.starts_with("s3://"));
        assert_eq!(c.server.idle_timeout, Some(Millis(30 * 60_000)));
        assert_eq!(c.server.statement_timeout.and_then(Millis::non_zero), None);
        assert_eq!(c.grants["alice"], ["measurements", "samples"]);
        assert!("15 minutes".parse::<Millis>().is_err());
        assert_eq!("250ms".parse(), Ok(Millis(250)));
    }

    #[test]
    fn table_flags_need_name_and_location() {
        let mut c = Config::default();
        c.add_table_flag("m=/data/m/").unwrap();
        assert_eq!(c.tables["m"].location, "/data/m/");
        assert!(c.add_table_flag("no-equals-sign").is_err());
        assert!(c.add_table_flag("m=").is_err());
    }

    #[test]
    fn default_memory_limit_is_half_of_available() {
        let d = default_memory_limit();
        assert!(d.0 > 0 && d.0 <= available_memory() / 2 + 1);
    }
}
