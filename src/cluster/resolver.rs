//! Which workers a coordinator plans on: a fixed list of URLs or a DNS name looked up every
//! few seconds (a Kubernetes headless Service), minus the workers left out for a while after
//! they failed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use datafusion::error::DataFusionError;
use datafusion_distributed::WorkerResolver;
use url::Url;

use super::{ClusterConfig, QUARANTINE, config_error};
use crate::error::Result;

/// How often a DNS name is looked up again.
const DNS_REFRESH: Duration = Duration::from_secs(5);
/// How long a probe waits for a worker's TCP handshake.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The workers, shared by every session of a coordinator.
#[derive(Debug, Clone)]
pub(super) struct Workers(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// The workers found (configured, or the DNS name's addresses at the last lookup).
    found: Mutex<Vec<Url>>,
    /// Workers left out, and until when.
    left_out: Mutex<HashMap<Url, Instant>>,
}

impl Workers {
    /// Parses the configured workers; with `workers_dns`, starts looking the name up.
    pub(super) fn start(config: &ClusterConfig) -> Result<Self> {
        let mut found = Vec::new();
        for text in &config.workers {
            found.push(parse_worker_url(text)?);
        }
        let workers = Self(Arc::new(Inner {
            found: Mutex::new(found),
            left_out: Mutex::new(HashMap::new()),
        }));
        if let Some(name) = &config.workers_dns {
            let (host, port) = name.rsplit_once(':').ok_or_else(|| {
                config_error(format!(
                    "[cluster] workers_dns = \"{name}\": expected NAME:PORT"
                ))
            })?;
            if host.is_empty() || port.parse::<u16>().is_err() {
                return Err(config_error(format!(
                    "[cluster] workers_dns = \"{name}\": expected NAME:PORT"
                )));
            }
            tokio::spawn(discover(Arc::downgrade(&workers.0), name.clone()));
        }
        Ok(workers)
    }

    /// The workers to plan on now: those found, without the ones left out.
    pub(super) fn live(&self) -> Vec<Url> {
        let found = self.found();
        let now = Instant::now();
        let Ok(mut left_out) = self.0.left_out.lock() else {
            return found;
        };
        left_out.retain(|_, until| *until > now);
        found
            .into_iter()
            .filter(|u| !left_out.contains_key(u))
            .collect()
    }

    /// Every worker found, including those left out.
    pub(super) fn found(&self) -> Vec<Url> {
        self.0.found.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// Tries a TCP handshake with every live worker; leaves out, for [`QUARANTINE`], those
    /// that do not answer. Returns the workers left out.
    pub(super) async fn probe(&self) -> Vec<Url> {
        let live = self.live();
        let checks = live.iter().map(|url| async move {
            let addr = match (url.host_str(), url.port_or_known_default()) {
                (Some(host), Some(port)) => format!("{host}:{port}"),
                _ => return Some(url.clone()),
            };
            let connected =
                tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await;
            match connected {
                Ok(Ok(_)) => None,
                _ => Some(url.clone()),
            }
        });
        let dead: Vec<Url> = futures::future::join_all(checks)
            .await
            .into_iter()
            .flatten()
            .collect();
        if let Ok(mut left_out) = self.0.left_out.lock() {
            for url in &dead {
                left_out.insert(url.clone(), Instant::now() + QUARANTINE);
            }
        }
        dead
    }
}

impl WorkerResolver for Workers {
    fn get_urls(&self) -> std::result::Result<Vec<Url>, DataFusionError> {
        Ok(self.live())
    }
}

/// A worker URL: `https://host:port` (plaintext is never used between nodes).
pub(super) fn parse_worker_url(text: &str) -> Result<Url> {
    let url = Url::parse(text.trim())
        .map_err(|e| config_error(format!("cluster worker '{text}': {e}")))?;
    if url.scheme() != "https" {
        return Err(config_error(format!(
            "cluster worker '{text}': use https://HOST:PORT (every hop between nodes uses TLS)"
        )));
    }
    if url.host_str().is_none() || url.port().is_none() {
        return Err(config_error(format!(
            "cluster worker '{text}': expected https://HOST:PORT"
        )));
    }
    Ok(url)
}

/// Looks `name` (`host:port`) up every [`DNS_REFRESH`] while the workers are in use; a
/// failed lookup keeps the previous addresses.
async fn discover(workers: Weak<Inner>, name: String) {
    loop {
        let Some(inner) = workers.upgrade() else {
            return;
        };
        if let Ok(addrs) = tokio::net::lookup_host(name.as_str()).await {
            let mut urls: Vec<Url> = addrs
                .filter_map(|a| Url::parse(&format!("https://{a}")).ok())
                .collect();
            urls.sort();
            urls.dedup();
            if let Ok(mut found) = inner.found.lock() {
                *found = urls;
            }
        }
        drop(inner);
        tokio::time::sleep(DNS_REFRESH).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_dns_name_is_looked_up_and_failing_workers_are_left_out()
    -> std::result::Result<(), Box<dyn std::error::Error>> {
        let config = ClusterConfig {
            workers_dns: Some("localhost:7443".into()),
            ..ClusterConfig::default()
        };
        let workers = Workers::start(&config)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while workers.found().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let found = workers.found();
        assert!(
            found
                .iter()
                .any(|u| u.as_str() == "https://127.0.0.1:7443/"),
            "{found:?}"
        );
        // Nothing listens on that port: a probe leaves every address out.
        let left_out = workers.probe().await;
        assert_eq!(left_out.len(), found.len());
        assert!(workers.live().is_empty());
        assert_eq!(workers.found(), found);
        Ok(())
    }

    #[test]
    fn worker_urls_must_be_https_with_a_port() {
        assert!(parse_worker_url("https://w1:7443").is_ok());
        for bad in ["http://w1:7443", "w1:7443", "https://w1"] {
            assert!(parse_worker_url(bad).is_err(), "{bad}");
        }
    }
}
