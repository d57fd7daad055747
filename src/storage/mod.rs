//! Tables: sharded Parquet in a local directory, under an S3 prefix, or the embedded demo.
//!
//! Every table is a DataFusion `ListingTable` over many Parquet files, optionally
//! hive-partitioned (`batch=2024-01/part-0.parquet`): the partition columns are queryable and
//! filters on them prune whole directories before any file is opened.

pub mod demo;
pub mod parquet;
mod s3;

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;

use crate::config::{Config, TableConfig};
use crate::error::{Error, Result, one_line};
use parquet::{FileTracker, TrackedParquetFormat};

/// Registers the configured tables, or the embedded demo dataset when none is configured.
/// Scans of every table report the files they read to `files`.
pub async fn register_tables(
    ctx: &SessionContext,
    config: &Config,
    files: &Arc<FileTracker>,
) -> Result<()> {
    if config.tables.is_empty() {
        return demo::register(ctx, files).await;
    }
    let mut s3 = s3::S3Stores::new(&config.s3)?;
    for (name, table) in &config.tables {
        let url = table_url(name, &table.location)?;
        if url.scheme() == "s3" {
            s3.register(ctx, name, &url)?;
        }
        register_listing_table(ctx, name, &table.location, url, table, files).await?;
    }
    Ok(())
}

/// Object stores for a process that reads whatever locations its plans name (a cluster
/// worker): local files, the embedded demo dataset, and any S3 bucket, whose store is made on
/// first use from this process's own `AWS_*` environment and `[s3]` settings.
pub async fn on_demand_stores(config: &Config) -> Result<Arc<dyn ObjectStoreRegistry>> {
    let registry = DefaultObjectStoreRegistry::new();
    let (url, store, _) = demo::store().await?;
    registry.register_store(&url, store);
    Ok(Arc::new(OnDemandStores {
        registry,
        s3: s3::S3Stores::new(&config.s3)?,
    }))
}

/// See [`on_demand_stores`].
#[derive(Debug)]
struct OnDemandStores {
    registry: DefaultObjectStoreRegistry,
    s3: s3::S3Stores,
}

impl ObjectStoreRegistry for OnDemandStores {
    fn register_store(
        &self,
        url: &url::Url,
        store: Arc<dyn object_store::ObjectStore>,
    ) -> Option<Arc<dyn object_store::ObjectStore>> {
        self.registry.register_store(url, store)
    }

    fn get_store(&self, url: &url::Url) -> DfResult<Arc<dyn object_store::ObjectStore>> {
        if let Ok(store) = self.registry.get_store(url) {
            return Ok(store);
        }
        let Some(bucket) = url.host_str().filter(|_| url.scheme() == "s3") else {
            return self.registry.get_store(url);
        };
        let store: Arc<dyn object_store::ObjectStore> = Arc::new(
            self.s3
                .store(bucket)
                .map_err(|e| DataFusionError::Configuration(format!("S3 bucket {bucket}: {e}")))?,
        );
        self.registry.register_store(url, Arc::clone(&store));
        Ok(store)
    }
}

/// Parses a table location into a listing URL: a local directory or file, or an S3 prefix.
fn table_url(name: &str, location: &str) -> Result<ListingTableUrl> {
    let bad = |msg: &str| Error::table(name, location, msg);
    if let Some(rest) = location.strip_prefix("s3://") {
        let (bucket, _) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("expected s3://BUCKET/PREFIX/"));
        }
        let mut url = location.to_string();
        if !url.ends_with('/') && !url.ends_with(".parquet") {
            url.push('/');
        }
        return ListingTableUrl::parse(&url).map_err(|e| bad(&one_line(&e)));
    }
    if location.contains("://") && !location.starts_with("file://") {
        return Err(bad(
            "unsupported location: use a local path or s3://BUCKET/PREFIX/",
        ));
    }
    let path = Path::new(location.strip_prefix("file://").unwrap_or(location));
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => bad("no such file or directory"),
        _ => bad(&e.to_string()),
    })?;
    let absolute = std::path::absolute(path).map_err(|e| bad(&e.to_string()))?;
    let mut text = absolute.to_string_lossy().into_owned();
    if meta.is_dir() && !text.ends_with('/') {
        text.push('/');
    }
    ListingTableUrl::parse(&text).map_err(|e| bad(&one_line(&e)))
}

/// Registers one listing table of Parquet files, inferring hive partitions and the schema.
///
/// Reading every file's footer up front makes a truncated or foreign file fail here, with its
/// name, rather than in the middle of a query.
pub(crate) async fn register_listing_table(
    ctx: &SessionContext,
    name: &str,
    location: &str,
    url: ListingTableUrl,
    table: &TableConfig,
    files: &Arc<FileTracker>,
) -> Result<()> {
    let state = ctx.state();
    let err = |cause: &dyn std::fmt::Display| Error::table(name, location, explain(cause));
    let format = TrackedParquetFormat::new(name, url.prefix_display(), files.clone());
    let mut options = ListingOptions::new(Arc::new(format)).with_file_extension(".parquet");
    let partitions = match &table.partitions {
        Some(cols) => cols.clone(),
        None => options
            .infer_partitions(&state, &url)
            .await
            .map_err(|e| err(&e))?,
    };
    options = options.with_table_partition_cols(
        partitions
            .into_iter()
            .map(|c| (c, DataType::Utf8))
            .collect(),
    );
    let schema = match options.infer_schema(&state, &url).await {
        Ok(schema) => schema,
        Err(e) => {
            let culprit = find_culprit(ctx, &options, &url).await;
            return Err(culprit.map_or_else(|| err(&e), |m| Error::table(name, location, m)));
        }
    };
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(schema);
    let provider = ListingTable::try_new(config).map_err(|e| err(&e))?;
    ctx.register_table(name, Arc::new(provider))
        .map_err(|e| err(&e))?;
    Ok(())
}

/// When a table's schema cannot be read, reads each file's footer alone to name the file
/// that is at fault.
async fn find_culprit(
    ctx: &SessionContext,
    options: &ListingOptions,
    url: &ListingTableUrl,
) -> Option<String> {
    let state = ctx.state();
    let store = state.runtime_env().object_store(url).ok()?;
    let files: Vec<_> = url
        .list_all_files(&state, store.as_ref(), &options.file_extension)
        .await
        .ok()?
        .try_collect()
        .await
        .ok()?;
    for file in files {
        if let Err(e) = options
            .format
            .infer_schema(&state, &store, std::slice::from_ref(&file))
            .await
        {
            return Some(format!(
                "{}{} is not a readable Parquet file: {}",
                url.prefix_display(),
                file.location,
                one_line(&e)
            ));
        }
    }
    None
}

/// Makes object-store errors actionable: the raw S3 message is kept, with a hint in front.
pub(crate) fn explain(cause: &dyn std::fmt::Display) -> String {
    let raw = one_line(&cause);
    let hint = if raw.contains("NoSuchBucket") {
        "the bucket does not exist"
    } else if raw.contains("169.254.169.254") || raw.contains("/latest/api/token") {
        "no S3 credentials: set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or run with an \
         instance or pod role (the instance metadata service did not provide one)"
    } else if raw.contains("SignatureDoesNotMatch")
        || raw.contains("InvalidAccessKeyId")
        || raw.contains("AccessDenied")
        || raw.contains("403 Forbidden")
    {
        "access denied: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the instance role"
    } else if raw.contains("certificate") || raw.contains("UnknownIssuer") {
        "the S3 endpoint's TLS certificate is not trusted: add its CA with [s3] ca_bundle or \
         AWS_CA_BUNDLE"
    } else if raw.contains("error sending request") && raw.contains("https://") {
        // reqwest does not say whether the connection or the TLS handshake failed.
        "the S3 endpoint cannot be reached, or its TLS certificate is not trusted (a private \
         CA goes in [s3] ca_bundle or AWS_CA_BUNDLE)"
    } else if raw.contains("Connection refused")
        || raw.contains("error sending request")
        || raw.contains("dns error")
    {
        "the S3 endpoint cannot be reached"
    } else if raw.contains("No files found") {
        "no Parquet files found"
    } else {
        return raw;
    };
    format!("{hint} ({raw})")
}

/// A display helper for listing URLs: `s3://bucket/` or `file:///`.
trait PrefixDisplay {
    fn prefix_display(&self) -> String;
}

impl PrefixDisplay for ListingTableUrl {
    fn prefix_display(&self) -> String {
        let url = self.get_url();
        match url.host_str() {
            Some(host) => format!("{}://{host}/", url.scheme()),
            None => format!("{}:///", url.scheme()),
        }
    }
}
