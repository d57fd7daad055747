//! Spill buckets: batches of group states split by a hash of their group key into
//! [`FANOUT`] spill channels, each read back later as a stream. A group's states all land in
//! the same bucket, at every level with a different hash, so that a bucket that does not fit
//! splits into smaller ones.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use datafusion::arrow::compute::take_record_batch;
use datafusion::common::Result;
use datafusion::common::hash_utils::{RandomState, create_hashes};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::SpillManager;
use datafusion::physical_plan::spill::spill_pool::{SpillPoolSink, spsc_channel};

/// Buckets per split.
pub const FANOUT: usize = 16;

/// The hash of level `level` (independent of RepartitionExec's, which has already split the
/// rows between partitions, and of every other level's).
fn hasher(level: usize) -> RandomState {
    RandomState::with_seed(
        0x5eed_d15c_e4a0_0000 ^ (level as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
    )
}

/// [`FANOUT`] spill channels being written.
pub struct Buckets {
    level: usize,
    keys: usize,
    sinks: Vec<SpillPoolSink>,
    readers: Vec<SendableRecordBatchStream>,
    rows: Vec<usize>,
    hashes: Vec<u64>,
}

impl Buckets {
    /// Buckets for states whose first `keys` columns are the group key, at split `level`.
    pub fn new(
        spill: &Arc<SpillManager>,
        max_file_bytes: usize,
        keys: usize,
        level: usize,
    ) -> Self {
        let (sinks, readers) = (0..FANOUT)
            .map(|_| spsc_channel(max_file_bytes, Arc::clone(spill)))
            .unzip();
        Self {
            level,
            keys,
            sinks,
            readers,
            rows: vec![0; FANOUT],
            hashes: Vec::new(),
        }
    }

    /// Writes each row of `batch` to the bucket of its group key.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let keys: Vec<ArrayRef> = batch.columns()[..self.keys].to_vec();
        self.hashes.clear();
        self.hashes.resize(n, 0);
        create_hashes(&keys, &hasher(self.level), &mut self.hashes)?;
        let mut rows: Vec<Vec<u32>> = vec![Vec::new(); FANOUT];
        for (row, h) in self.hashes.iter().enumerate() {
            // The top bits: the low ones are what hash tables of the same hash family use.
            rows[(h >> 60) as usize % FANOUT].push(row as u32);
        }
        for (bucket, indices) in rows.into_iter().enumerate() {
            if indices.is_empty() {
                continue;
            }
            let part = if indices.len() == n {
                batch.clone()
            } else {
                take_record_batch(batch, &UInt32Array::from(indices))?
            };
            self.rows[bucket] += part.num_rows();
            self.sinks[bucket].push_batch(&part)?;
        }
        Ok(())
    }

    /// Ends the writing; returns the streams of the buckets that received rows, with the level
    /// their contents would be split at next.
    pub fn finish(self) -> Vec<(SendableRecordBatchStream, usize)> {
        let Self {
            level,
            sinks,
            readers,
            rows,
            ..
        } = self;
        // Dropping a sink finalises its files, so that its reader sees the end.
        drop(sinks);
        readers
            .into_iter()
            .zip(rows)
            .filter(|(_, rows)| *rows > 0)
            .map(|(reader, _)| (reader, level + 1))
            .collect()
    }
}
