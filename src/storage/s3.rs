//! S3 object stores, configured the way the rest of the AWS tooling is.
//!
//! Credentials, region and endpoint come only from object_store's standard `AWS_*`
//! environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//! `AWS_REGION`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`, web identity / container credentials) or the
//! instance profile. HTTPS is the default; `AWS_ALLOW_HTTP=true` is needed for plain HTTP.
//! A private CA is trusted through `[s3] ca_bundle` or `AWS_CA_BUNDLE`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use datafusion::datasource::listing::ListingTableUrl;
use datafusion::prelude::SessionContext;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::{Certificate, ClientOptions, RetryConfig};

use crate::config::S3Config;
use crate::error::{Error, Result, one_line};

/// Builds one S3 store per bucket and registers it with the session.
#[derive(Debug)]
pub(crate) struct S3Stores {
    ca_certificates: Vec<Certificate>,
    registered: BTreeSet<String>,
}

impl S3Stores {
    pub(crate) fn new(config: &S3Config) -> Result<Self> {
        let bundle = config
            .ca_bundle
            .clone()
            .or_else(|| std::env::var_os("AWS_CA_BUNDLE").map(Into::into));
        let ca_certificates = match bundle {
            None => Vec::new(),
            Some(path) => {
                let pem = std::fs::read(&path)
                    .map_err(|e| Error::Config(format!("S3 CA bundle {}: {e}", path.display())))?;
                let certs = Certificate::from_pem_bundle(&pem).map_err(|e| {
                    Error::Config(format!("S3 CA bundle {}: {}", path.display(), one_line(&e)))
                })?;
                if certs.is_empty() {
                    return Err(Error::Config(format!(
                        "S3 CA bundle {}: no PEM certificate in the file",
                        path.display()
                    )));
                }
                certs
            }
        };
        Ok(Self {
            ca_certificates,
            registered: BTreeSet::new(),
        })
    }

    /// Registers the store for the bucket of `url` (once per bucket).
    pub(crate) fn register(
        &mut self,
        ctx: &SessionContext,
        table: &str,
        url: &ListingTableUrl,
    ) -> Result<()> {
        let bucket = url.get_url().host_str().unwrap_or_default().to_string();
        if self.registered.contains(&bucket) {
            return Ok(());
        }
        let store = self
            .builder(&bucket)
            .build()
            .map_err(|e| Error::table(table, url.as_str(), one_line(&e)))?;
        ctx.register_object_store(url.object_store().as_ref(), Arc::new(store));
        self.registered.insert(bucket);
        Ok(())
    }

    /// A store for `bucket`, configured from the environment.
    pub(crate) fn store(&self, bucket: &str) -> std::result::Result<AmazonS3, String> {
        self.builder(bucket).build().map_err(|e| one_line(&e))
    }

    fn builder(&self, bucket: &str) -> AmazonS3Builder {
        // Client settings (AWS_ALLOW_HTTP, timeouts, proxies) live in ClientOptions, which
        // `with_client_options` would replace wholesale: route every AWS_* variable to the
        // right place so that adding the CA certificates keeps them.
        let mut builder = AmazonS3Builder::new().with_bucket_name(bucket);
        let mut client = ClientOptions::new().with_connect_timeout(Duration::from_secs(10));
        for (key, value) in std::env::vars() {
            if !key.starts_with("AWS_") {
                continue;
            }
            match key.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                Ok(AmazonS3ConfigKey::Client(k)) => client = client.with_config(k, value),
                Ok(k) => builder = builder.with_config(k, value),
                Err(_) => {}
            }
        }
        for cert in &self.ca_certificates {
            client = client.with_root_certificate(cert.clone());
        }
        // Fail in seconds, not minutes, when the endpoint is down; transient errors still
        // get retried with backoff.
        let retry = RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
            ..RetryConfig::default()
        };
        builder
            .with_client_options(client)
            .with_retry(retry)
            .with_bucket_name(bucket)
    }
}
