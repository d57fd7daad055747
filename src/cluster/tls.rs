//! Mutual TLS between the nodes of a cluster: one certificate per node, signed by the cluster
//! CA, presented as a client and as a server; nothing signed by another CA is accepted, and
//! nothing is spoken in plaintext.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use datafusion::error::DataFusionError;
use datafusion_distributed::grpc::{BoxCloneSyncChannel, create_worker_client};
use datafusion_distributed::{ChannelResolver, WorkerChannel};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, ServerTlsConfig};
use url::Url;

use super::config_error;
use crate::error::Result;

/// How long a node waits for a TCP and TLS connection to another.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 pings on every connection between nodes, so that a peer that vanishes without a
/// reset (a node powered off, a network partition) fails its queries in seconds instead of
/// when TCP gives up.
pub(super) const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
pub(super) const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// A node's certificate, key and the cluster CA, as PEM text checked to parse.
#[derive(Clone)]
pub(super) struct Identity {
    cert: Vec<u8>,
    key: Vec<u8>,
    ca: Vec<u8>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.write_str("Identity { .. }")
    }
}

impl Identity {
    /// Reads the three files; `missing` is the error when one is not given.
    pub(super) fn load(
        cert: Option<&Path>,
        key: Option<&Path>,
        ca: Option<&Path>,
        missing: &str,
    ) -> Result<Self> {
        let (Some(cert), Some(key), Some(ca)) = (cert, key, ca) else {
            return Err(config_error(missing));
        };
        let read = |what: &str, path: &Path| {
            std::fs::read(path)
                .map_err(|e| config_error(format!("cluster {what} {}: {e}", path.display())))
        };
        let (cert_pem, key_pem, ca_pem) = (
            read("certificate", cert)?,
            read("key", key)?,
            read("CA", ca)?,
        );
        for (what, path, pem) in [("certificate", cert, &cert_pem), ("CA", ca, &ca_pem)] {
            let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| config_error(format!("cluster {what} {}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(config_error(format!(
                    "cluster {what} {}: no PEM certificate in the file",
                    path.display()
                )));
            }
        }
        PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            config_error(format!(
                "cluster key {}: no PEM private key ({e})",
                key.display()
            ))
        })?;
        Ok(Self {
            cert: cert_pem,
            key: key_pem,
            ca: ca_pem,
        })
    }

    /// A worker's listener: TLS 1.2/1.3, a client certificate from the cluster CA required.
    pub(super) fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(&self.cert, &self.key))
            .client_ca_root(Certificate::from_pem(&self.ca))
            .client_auth_optional(false)
    }

    /// A node's connections to workers: their certificates checked against the cluster CA
    /// only (no system roots), ours presented.
    fn client_config(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca))
            .identity(tonic::transport::Identity::from_pem(&self.cert, &self.key))
    }
}

/// Connections to workers over mutual TLS, one channel per worker, made on first use.
#[derive(Clone)]
pub(super) struct Channels(Arc<ChannelsInner>);

struct ChannelsInner {
    tls: ClientTlsConfig,
    /// The name expected in the workers' certificates, when not the URL's host.
    server_name: Option<String>,
    channels: Mutex<HashMap<Url, BoxCloneSyncChannel>>,
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channels")
            .field("server_name", &self.0.server_name)
            .finish_non_exhaustive()
    }
}

impl Channels {
    pub(super) fn new(identity: &Identity, server_name: Option<String>) -> Self {
        Self(Arc::new(ChannelsInner {
            tls: identity.client_config(),
            server_name,
            channels: Mutex::new(HashMap::new()),
        }))
    }

    fn channel(&self, url: &Url) -> std::result::Result<BoxCloneSyncChannel, DataFusionError> {
        if let Ok(channels) = self.0.channels.lock()
            && let Some(channel) = channels.get(url)
        {
            return Ok(channel.clone());
        }
        let external = |e: tonic::transport::Error| DataFusionError::External(Box::new(e));
        let mut tls = self.0.tls.clone();
        if let Some(name) = &self.0.server_name {
            tls = tls.domain_name(name.clone());
        }
        let endpoint = Endpoint::from_shared(url.to_string())
            .map_err(external)?
            .tls_config(tls)
            .map_err(external)?
            .connect_timeout(CONNECT_TIMEOUT)
            .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
            .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .tcp_keepalive(Some(Duration::from_secs(30)))
            .tcp_nodelay(true);
        // Lazy: the connection is made (and remade after a failure) by the first request.
        let channel = BoxCloneSyncChannel::new(endpoint.connect_lazy());
        if let Ok(mut channels) = self.0.channels.lock() {
            channels.insert(url.clone(), channel.clone());
        }
        Ok(channel)
    }
}

#[async_trait]
impl ChannelResolver for Channels {
    async fn get_worker_client_for_url(
        &self,
        url: &Url,
    ) -> std::result::Result<Box<dyn WorkerChannel>, DataFusionError> {
        Ok(create_worker_client(self.channel(url)?))
    }
}
