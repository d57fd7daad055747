//! Parquet with culprits: DataFusion's Parquet format, plus a record of which file each scan
//! partition is reading, so that a file that is corrupt in the middle (its footer reads, a
//! data page does not) is named in the error instead of a bare "failed to fill whole buffer".
//!
//! The record costs a map update per byte-range fetch. When a query fails, only the files
//! being read at that moment (at most one per partition per table) are decoded again, one by
//! one, to find the one at fault.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::{GetExt, Statistics};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::ParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{
    FileScanConfig, FileScanConfigBuilder, FileSource, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::Result;
use datafusion::parquet::arrow::arrow_reader::ArrowReaderOptions;
use datafusion::parquet::arrow::async_reader::AsyncFileReader;
use datafusion::parquet::file::metadata::ParquetMetaData;
use datafusion::physical_expr_common::sort_expr::LexOrdering;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::StreamExt;
use futures::future::BoxFuture;
use object_store::{ObjectMeta, ObjectStore};

/// Which file each (table, partition) fetched data from last.
#[derive(Debug, Default)]
pub struct FileTracker {
    reading: Mutex<BTreeMap<(String, usize), String>>,
}

impl FileTracker {
    fn touch(&self, table: &str, partition: usize, url: &str) {
        if let Ok(mut map) = self.reading.lock() {
            match map.get_mut(&(table.to_string(), partition)) {
                Some(current) if current == url => {}
                Some(current) => url.clone_into(current),
                None => {
                    map.insert((table.to_string(), partition), url.to_string());
                }
            }
        }
    }

    /// The files read most recently, as (table, URL).
    fn candidates(&self) -> BTreeSet<(String, String)> {
        self.reading
            .lock()
            .map(|map| {
                map.iter()
                    .map(|((table, _), url)| (table.clone(), url.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// After a failed query: decodes the files that were being read, one at a time, and
    /// returns the first that cannot be read, as "table 'x': file URL: cause".
    pub async fn find_corrupt_file(&self, ctx: &SessionContext) -> Option<String> {
        for (table, url) in self.candidates() {
            if let Err(e) = decode_whole_file(ctx, &url).await {
                return Some(format!(
                    "table '{table}': {url} is not a readable Parquet file: {}",
                    crate::error::one_line(&e)
                ));
            }
        }
        None
    }
}

async fn decode_whole_file(ctx: &SessionContext, url: &str) -> Result<()> {
    let frame = ctx.read_parquet(url, ParquetReadOptions::default()).await?;
    let mut stream = frame.execute_stream().await?;
    while let Some(batch) = stream.next().await {
        batch?;
    }
    Ok(())
}

/// `ParquetFormat`, whose scans record the file each partition reads.
#[derive(Debug)]
pub struct TrackedParquetFormat {
    inner: ParquetFormat,
    table: String,
    /// `s3://bucket/`, `file:///`, …: turns an object path back into a URL.
    store_prefix: String,
    tracker: Arc<FileTracker>,
}

impl TrackedParquetFormat {
    pub fn new(table: &str, store_prefix: String, tracker: Arc<FileTracker>) -> Self {
        Self {
            inner: ParquetFormat::default(),
            table: table.to_string(),
            store_prefix,
            tracker,
        }
    }
}

#[async_trait]
impl FileFormat for TrackedParquetFormat {
    fn get_ext(&self) -> String {
        self.inner.get_ext()
    }

    fn get_ext_with_compression(&self, c: &FileCompressionType) -> Result<String> {
        self.inner.get_ext_with_compression(c)
    }

    fn compression_type(&self) -> Option<FileCompressionType> {
        self.inner.compression_type()
    }

    async fn infer_schema(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        objects: &[ObjectMeta],
    ) -> Result<SchemaRef> {
        self.inner.infer_schema(state, store, objects).await
    }

    async fn infer_stats(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        table_schema: SchemaRef,
        object: &ObjectMeta,
    ) -> Result<Statistics> {
        self.inner
            .infer_stats(state, store, table_schema, object)
            .await
    }

    async fn infer_ordering(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        table_schema: SchemaRef,
        object: &ObjectMeta,
    ) -> Result<Option<LexOrdering>> {
        self.inner
            .infer_ordering(state, store, table_schema, object)
            .await
    }

    async fn infer_stats_and_ordering(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        table_schema: SchemaRef,
        object: &ObjectMeta,
    ) -> Result<datafusion::datasource::file_format::FileMeta> {
        self.inner
            .infer_stats_and_ordering(state, store, table_schema, object)
            .await
    }

    async fn create_physical_plan(
        &self,
        state: &dyn Session,
        conf: FileScanConfig,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = self.inner.create_physical_plan(state, conf).await?;
        // Swap the reader factory ParquetFormat chose (metadata-cached) for one that also
        // records what it reads; anything unexpected keeps the plan as it is.
        let tracked = (|| {
            let exec = plan.downcast_ref::<DataSourceExec>()?;
            let scan = exec.data_source().downcast_ref::<FileScanConfig>()?;
            let source = scan.file_source().downcast_ref::<ParquetSource>()?;
            let factory = source.parquet_file_reader_factory()?.clone();
            let source =
                source
                    .clone()
                    .with_parquet_file_reader_factory(Arc::new(TrackingReaderFactory {
                        inner: factory,
                        table: self.table.clone(),
                        store_prefix: self.store_prefix.clone(),
                        tracker: self.tracker.clone(),
                    }));
            let conf = FileScanConfigBuilder::from(scan.clone())
                .with_source(Arc::new(source))
                .build();
            Some(DataSourceExec::from_data_source(conf) as Arc<dyn ExecutionPlan>)
        })();
        Ok(tracked.unwrap_or(plan))
    }

    fn file_source(&self, table_schema: TableSchema) -> Arc<dyn FileSource> {
        self.inner.file_source(table_schema)
    }
}

impl GetExt for TrackedParquetFormat {
    fn get_ext(&self) -> String {
        self.inner.get_ext()
    }
}

#[derive(Debug)]
struct TrackingReaderFactory {
    inner: Arc<dyn ParquetFileReaderFactory>,
    table: String,
    store_prefix: String,
    tracker: Arc<FileTracker>,
}

impl ParquetFileReaderFactory for TrackingReaderFactory {
    fn create_reader(
        &self,
        partition_index: usize,
        partitioned_file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> Result<Box<dyn AsyncFileReader + Send>> {
        let url = format!(
            "{}{}",
            self.store_prefix, partitioned_file.object_meta.location
        );
        let inner = self.inner.create_reader(
            partition_index,
            partitioned_file,
            metadata_size_hint,
            metrics,
        )?;
        Ok(Box::new(TrackingReader {
            inner,
            table: self.table.clone(),
            partition: partition_index,
            url,
            tracker: self.tracker.clone(),
        }))
    }
}

struct TrackingReader {
    inner: Box<dyn AsyncFileReader + Send>,
    table: String,
    partition: usize,
    url: String,
    tracker: Arc<FileTracker>,
}

impl AsyncFileReader for TrackingReader {
    fn get_bytes(
        &mut self,
        range: Range<u64>,
    ) -> BoxFuture<'_, datafusion::parquet::errors::Result<Bytes>> {
        self.tracker.touch(&self.table, self.partition, &self.url);
        self.inner.get_bytes(range)
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, datafusion::parquet::errors::Result<Vec<Bytes>>> {
        self.tracker.touch(&self.table, self.partition, &self.url);
        self.inner.get_byte_ranges(ranges)
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, datafusion::parquet::errors::Result<Arc<ParquetMetaData>>> {
        self.inner.get_metadata(options)
    }
}
