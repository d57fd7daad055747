//! A real `discern serve` child on 127.0.0.1:0, and a real Postgres driver (tokio-postgres
//! with rustls) that trusts only the certificate the server generated.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::{Client, Config, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_rustls::rustls;

/// A running server; killed on drop.
pub struct Server {
    child: Child,
    pub port: u16,
    pub data_dir: tempfile::TempDir,
    pub cert: PathBuf,
    pub user: String,
    pub password: String,
    pub stderr: Arc<std::sync::Mutex<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `discern serve --listen 127.0.0.1:0` with a fresh data directory and `extra`
    /// arguments; waits until it prints how to connect.
    pub fn start(extra: &[&str]) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        Self::start_in(data_dir, extra)
    }

    /// As [`Server::start`], in a given data directory.
    pub fn start_in(data_dir: tempfile::TempDir, extra: &[&str]) -> Self {
        let mut cmd = super::discern();
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir.path())
            .args(["--audit-log"])
            .arg(data_dir.path().join("audit.log"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start discern serve");
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = String::new();
        let (mut port, mut user, mut password, mut cert) = (None, None, None, None);
        while let Some(Ok(line)) = lines.next() {
            seen.push_str(&line);
            seen.push('\n');
            if let Some(rest) = line.split(" on 127.0.0.1:").nth(1) {
                port = rest.split_whitespace().next().and_then(|p| p.parse().ok());
            }
            if let Some(rest) = line.trim().strip_prefix("first user: ") {
                let (u, p) = rest.split_once(", password: ").unwrap();
                user = Some(u.to_string());
                password = Some(p.to_string());
            }
            if let Some(rest) = line.trim().strip_prefix("certificate: ") {
                cert = Some(PathBuf::from(rest.split(" (").next().unwrap()));
            }
            if line.trim().starts_with("or, checking the certificate") {
                break;
            }
        }
        let stderr_log = Arc::new(std::sync::Mutex::new(seen.clone()));
        let sink = stderr_log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let port = port.unwrap_or_else(|| panic!("server did not start:\n{seen}"));
        Server {
            child,
            port,
            cert: cert.unwrap(),
            user: user.unwrap_or_default(),
            password: password.unwrap_or_default(),
            data_dir,
            stderr: stderr_log,
        }
    }

    /// The server's peak resident set size so far, in bytes (VmHWM).
    pub fn peak_rss(&self) -> u64 {
        self.status_bytes("VmHWM:")
    }

    /// The server's resident set size now, in bytes (VmRSS).
    pub fn rss(&self) -> u64 {
        self.status_bytes("VmRSS:")
    }

    /// A kB line of the server's /proc status, in bytes.
    fn status_bytes(&self, key: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with(key)).unwrap();
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib * 1024
    }

    /// The audit log's events so far, parsed.
    pub fn audit_events(&self) -> Vec<serde_json::Value> {
        self.audit()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The audit log so far.
    pub fn audit(&self) -> String {
        std::fs::read_to_string(self.data_dir.path().join("audit.log")).unwrap_or_default()
    }

    /// The users file of this server.
    pub fn users_file(&self) -> PathBuf {
        self.data_dir.path().join("users.toml")
    }

    /// A driver config for this server.
    pub fn config(&self, user: &str, password: &str) -> Config {
        let mut c = Config::new();
        c.host("127.0.0.1")
            .port(self.port)
            .user(user)
            .password(password)
            .dbname("discern")
            .connect_timeout(Duration::from_secs(10));
        c
    }

    /// The rustls connector trusting this server's certificate only.
    pub fn tls(&self) -> MakeRustlsConnect {
        tls_trusting(&self.cert)
    }

    /// Connects as the first user over TLS.
    pub async fn connect(&self) -> Client {
        self.connect_as(&self.user.clone(), &self.password.clone())
            .await
            .expect("connect")
    }

    /// Connects over TLS.
    pub async fn connect_as(
        &self,
        user: &str,
        password: &str,
    ) -> Result<Client, tokio_postgres::Error> {
        let mut config = self.config(user, password);
        config.ssl_mode(tokio_postgres::config::SslMode::Require);
        let (client, connection) = config.connect(self.tls()).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// Tries a plaintext login.
    pub async fn connect_plain(&self) -> Result<Client, tokio_postgres::Error> {
        let mut config = self.config(&self.user, &self.password);
        config.ssl_mode(tokio_postgres::config::SslMode::Disable);
        let (client, connection) = config.connect(NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }
}

/// A rustls client configuration trusting one PEM certificate.
pub fn rustls_config(cert: &Path) -> rustls::ClientConfig {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// The tokio-postgres connector for [`rustls_config`].
pub fn tls_trusting(cert: &Path) -> MakeRustlsConnect {
    MakeRustlsConnect::new(rustls_config(cert))
}

/// The SQLSTATE of a driver error.
pub fn code(e: &tokio_postgres::Error) -> String {
    e.code()
        .map(|c| c.code().to_string())
        .unwrap_or_else(|| format!("no SQLSTATE: {e}"))
}
