//! The embedded demo dataset: `testdata/demo`, compiled into the binary.
//!
//! It is served through an in-memory object store at `demo://builtin/`, so it goes through
//! exactly the same listing, hive-partition and Parquet code as a local directory or S3.
//! `discern demo-data` regenerates it (see `crate::demo_data::DEFAULT`).

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::datasource::listing::ListingTableUrl;
use datafusion::prelude::SessionContext;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::parquet::FileTracker;
use crate::config::TableConfig;
use crate::error::{Error, Result};

include!(concat!(env!("OUT_DIR"), "/demo_files.rs"));

/// Where the demo dataset is served from.
pub const DEMO_URL: &str = "demo://builtin/";

/// The in-memory store of the demo files at [`DEMO_URL`], and the names of its tables.
pub async fn store() -> Result<(url::Url, Arc<dyn ObjectStore>, BTreeSet<String>)> {
    let store = InMemory::new();
    let mut tables = BTreeSet::new();
    for (path, bytes) in DEMO_FILES {
        if let Some((table, _)) = path.split_once('/') {
            tables.insert(table.to_string());
        }
        store
            .put(&Path::from(*path), PutPayload::from_static(bytes))
            .await
            .map_err(|e| Error::table("demo", DEMO_URL, e))?;
    }
    if tables.is_empty() {
        return Err(Error::table(
            "demo",
            DEMO_URL,
            "the binary was built without testdata/demo",
        ));
    }
    let url = url::Url::parse(DEMO_URL).map_err(|e| Error::table("demo", DEMO_URL, e))?;
    Ok((url, Arc::new(store), tables))
}

/// Registers the demo tables (`samples`, `measurements`).
pub async fn register(ctx: &SessionContext, files: &Arc<FileTracker>) -> Result<()> {
    let (url, store, tables) = store().await?;
    ctx.register_object_store(&url, store);
    for table in tables {
        let location = format!("{DEMO_URL}{table}/");
        let listing =
            ListingTableUrl::parse(&location).map_err(|e| Error::table(&table, &location, e))?;
        let config = TableConfig {
            location: location.clone(),
            partitions: None,
        };
        super::register_listing_table(ctx, &table, &location, listing, &config, files).await?;
    }
    Ok(())
}
