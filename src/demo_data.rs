//! A deterministic generator of case-control data in Discern's data model.
//!
//! ```text
//! OUT/samples/samples.parquet                     sample_id, is_case, age, sex, site, matched_set
//! OUT/measurements/batch=2024-01/part-0.parquet   sample_id, biomarker, value
//! OUT/measurements/batch=2024-02/part-0.parquet   (one shard per batch of samples)
//! ```
//!
//! What it models:
//! - each biomarker is log-normal with its own location and spread;
//! - a handful of biomarkers (5 %, at least 3) are truly shifted in cases, by 0.4 to 1.2
//!   standard deviations on the log scale, up or down;
//! - values are rounded to 3 significant digits like an instrument reports them, so ties
//!   are common (or kept at full precision, as concentrations computed from a calibration
//!   curve are: then a biomarker has about as many distinct values as rows);
//! - about 5 % of measurements are missing: most have no row at all, one in five is a row with
//!   a NULL value (a failed assay);
//! - samples are split into shards by batch, so every biomarker spans every shard; within a
//!   shard rows are ordered by biomarker, so row-group statistics prune by biomarker;
//! - controls are matched 1:2 to cases on sex and nearest age (`matched_set`), for matched
//!   designs; unmatched controls have a NULL `matched_set`.
//!
//! Every value is a pure function of (seed, sample, biomarker), so the same sample has the
//! same measurements whatever the number of shards, and output is byte-for-byte repeatable.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder,
    RecordBatch, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;

use crate::error::{Error, Result};

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoSpec {
    /// Number of samples (people).
    pub samples: usize,
    /// Number of biomarkers measured on each sample.
    pub biomarkers: usize,
    /// Number of measurement shards (batches of samples).
    pub shards: usize,
    /// Fraction of samples that are cases.
    pub case_fraction: f64,
    /// Seed of the generator.
    pub seed: u64,
    /// Significant decimal digits values are rounded to; None keeps full precision.
    pub digits: Option<usize>,
}

/// The dataset shipped in `testdata/demo` and embedded in the binary.
pub const DEFAULT: DemoSpec = DemoSpec {
    samples: 240,
    biomarkers: 24,
    shards: 4,
    case_fraction: 0.25,
    seed: 20_240_101,
    digits: Some(3),
};

/// Rows per Parquet row group and per Arrow batch while writing.
const ROW_GROUP: usize = 65_536;
/// Controls matched to each case.
const CONTROLS_PER_CASE: usize = 2;

const NAMED_BIOMARKERS: [&str; 24] = [
    "iron",
    "ferritin",
    "transferrin",
    "crp",
    "il6",
    "tnf_alpha",
    "albumin",
    "creatinine",
    "urea",
    "glucose",
    "hba1c",
    "cholesterol",
    "hdl",
    "ldl",
    "triglycerides",
    "alt",
    "ast",
    "bilirubin",
    "vitamin_d",
    "vitamin_b12",
    "folate",
    "zinc",
    "copper",
    "selenium",
];
const SITES: [&str; 4] = ["berlin", "lyon", "oslo", "porto"];

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// Rows in `samples`.
    pub samples: usize,
    /// Rows in `measurements` (including NULL-value rows).
    pub measurements: usize,
    /// The biomarkers truly shifted in cases, with the shift in log-SD units.
    pub shifted: Vec<(String, f64)>,
}

/// Writes the dataset under `out`. Existing `samples/` and `measurements/` directories are
/// refused unless `overwrite` is set, so a typo cannot replace real data.
pub fn generate(spec: &DemoSpec, out: &Path, overwrite: bool) -> Result<Generated> {
    validate(spec)?;
    let samples_dir = out.join("samples");
    let measurements_dir = out.join("measurements");
    for dir in [&samples_dir, &measurements_dir] {
        if dir.exists() {
            if !overwrite {
                return Err(Error::output(
                    dir,
                    "already exists (pass --force to replace the generated data)",
                ));
            }
            std::fs::remove_dir_all(dir).map_err(|e| Error::output(dir, e))?;
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::output(dir, e))?;
    }

    let people = make_samples(spec);
    let markers = make_biomarkers(spec);
    write_parquet(
        &samples_dir.join("samples.parquet"),
        samples_schema(),
        samples_batch(&people)?,
    )?;

    let mut measurements = 0;
    for shard in 0..spec.shards {
        let first = shard * spec.samples / spec.shards;
        let last = (shard + 1) * spec.samples / spec.shards;
        let dir = measurements_dir.join(format!("batch={}", batch_label(shard)));
        std::fs::create_dir_all(&dir).map_err(|e| Error::output(&dir, e))?;
        measurements += write_measurements(
            &dir.join("part-0.parquet"),
            spec,
            &people[first..last],
            &markers,
        )?;
    }
    Ok(Generated {
        samples: people.len(),
        measurements,
        shifted: markers
            .iter()
            .filter(|m| m.shift != 0.0)
            .map(|m| (m.name.clone(), m.shift))
            .collect(),
    })
}

fn validate(spec: &DemoSpec) -> Result<()> {
    let bad = |m: &str| Err(Error::Config(format!("demo-data: {m}")));
    if spec.samples < 2 {
        return bad("--samples must be at least 2");
    }
    if spec.biomarkers == 0 {
        return bad("--biomarkers must be at least 1");
    }
    if spec.shards == 0 || spec.shards > spec.samples {
        return bad("--shards must be between 1 and the number of samples");
    }
    if !(spec.case_fraction > 0.0 && spec.case_fraction < 1.0) {
        return bad("--case-fraction must be strictly between 0 and 1");
    }
    Ok(())
}

/// `2024-01`, `2024-02`, … one month per shard.
fn batch_label(shard: usize) -> String {
    format!("{}-{:02}", 2024 + shard / 12, shard % 12 + 1)
}

struct Person {
    id: i64,
    is_case: bool,
    age: i32,
    female: bool,
    site: &'static str,
    matched_set: Option<i64>,
}

struct Biomarker {
    name: String,
    mu: f64,
    sigma: f64,
    /// Shift of the case mean on the log scale, in units of sigma (0 = not discriminating).
    shift: f64,
}

fn make_samples(spec: &DemoSpec) -> Vec<Person> {
    let mut rng = Rng::new(spec.seed, 0x5a3_91e5);
    // Exactly round(n × fraction) cases, at random positions (a partial Fisher-Yates shuffle).
    let n_cases =
        ((spec.samples as f64 * spec.case_fraction).round() as usize).clamp(1, spec.samples - 1);
    let mut order: Vec<usize> = (0..spec.samples).collect();
    for i in 0..n_cases {
        let j = i + (rng.next_u64() % (spec.samples - i) as u64) as usize;
        order.swap(i, j);
    }
    let mut is_case = vec![false; spec.samples];
    for &i in &order[..n_cases] {
        is_case[i] = true;
    }
    let mut people: Vec<Person> = (0..spec.samples)
        .map(|i| Person {
            id: i as i64 + 1,
            is_case: is_case[i],
            age: (55.0 + 12.0 * rng.normal()).round().clamp(18.0, 90.0) as i32,
            female: rng.uniform() < 0.5,
            site: SITES[(rng.next_u64() % SITES.len() as u64) as usize],
            matched_set: None,
        })
        .collect();

    // 1:2 matching on sex and nearest age, cases in id order; ties on age go to the lower id.
    let mut pool: BTreeMap<(bool, i32, i64), usize> = people
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.is_case)
        .map(|(i, p)| ((p.female, p.age, p.id), i))
        .collect();
    let mut set = 0i64;
    for case in 0..people.len() {
        if !people[case].is_case {
            continue;
        }
        let (female, age) = (people[case].female, people[case].age);
        let mut chosen = Vec::new();
        for _ in 0..CONTROLS_PER_CASE {
            let below = pool
                .range((female, i32::MIN, i64::MIN)..=(female, age, i64::MAX))
                .next_back()
                .map(|(k, &v)| (*k, v));
            let above = pool
                .range((female, age + 1, i64::MIN)..=(female, i32::MAX, i64::MAX))
                .next()
                .map(|(k, &v)| (*k, v));
            let pick = match (below, above) {
                (Some(b), Some(a)) => {
                    if age - b.0.1 <= a.0.1 - age {
                        b
                    } else {
                        a
                    }
                }
                (Some(b), None) => b,
                (None, Some(a)) => a,
                (None, None) => break,
            };
            pool.remove(&pick.0);
            chosen.push(pick.1);
        }
        if chosen.is_empty() {
            continue;
        }
        set += 1;
        people[case].matched_set = Some(set);
        for c in chosen {
            people[c].matched_set = Some(set);
        }
    }
    people
}

fn make_biomarkers(spec: &DemoSpec) -> Vec<Biomarker> {
    let mut rng = Rng::new(spec.seed, 0xb10_3a4e4);
    let mut markers: Vec<Biomarker> = (0..spec.biomarkers)
        .map(|i| Biomarker {
            name: NAMED_BIOMARKERS
                .get(i)
                .map_or_else(|| format!("marker_{:04}", i + 1), |s| s.to_string()),
            mu: rng.uniform() * 5.0 - 1.0,
            sigma: 0.2 + 0.5 * rng.uniform(),
            shift: 0.0,
        })
        .collect();
    let n_shifted = ((spec.biomarkers as f64 * 0.05).round() as usize)
        .max(3)
        .min(spec.biomarkers);
    let mut picked = 0;
    while picked < n_shifted {
        let i = (rng.next_u64() % spec.biomarkers as u64) as usize;
        if markers[i].shift == 0.0 {
            let size = 0.4 + 0.8 * rng.uniform();
            let sign = if rng.uniform() < 0.5 { -1.0 } else { 1.0 };
            // Three decimals, so the documented effect is exactly the one applied.
            markers[i].shift = (sign * size * 1000.0).round() / 1000.0;
            picked += 1;
        }
    }
    markers
}

fn write_measurements(
    path: &Path,
    spec: &DemoSpec,
    people: &[Person],
    markers: &[Biomarker],
) -> Result<usize> {
    let file = File::create(path).map_err(|e| Error::output(path, e))?;
    let mut writer = ArrowWriter::try_new(file, measurements_schema(), Some(writer_properties()?))
        .map_err(|e| Error::output(path, e))?;
    let mut batch = MeasurementBatch::default();
    let mut rows = 0;
    // Biomarkers in name order, then samples: row groups are sorted by biomarker.
    let mut order: Vec<usize> = (0..markers.len()).collect();
    order.sort_by(|&a, &b| markers[a].name.cmp(&markers[b].name));
    for &m in &order {
        let marker = &markers[m];
        for person in people {
            let mut rng = Rng::new(spec.seed, (person.id as u64) << 24 ^ m as u64);
            let missing = rng.uniform();
            if missing < 0.04 {
                continue; // not measured: no row
            }
            let value = if missing < 0.05 {
                None // failed assay
            } else {
                let shift = if person.is_case {
                    marker.shift * marker.sigma
                } else {
                    0.0
                };
                let value = (marker.mu + shift + marker.sigma * rng.normal()).exp();
                Some(match spec.digits {
                    Some(digits) => round_significant(value, digits),
                    None => value,
                })
            };
            batch.push(person.id, &marker.name, value);
            rows += 1;
            if batch.ids.len() == ROW_GROUP {
                batch.write_to(&mut writer, path)?;
            }
        }
    }
    if !batch.ids.is_empty() {
        batch.write_to(&mut writer, path)?;
    }
    writer.close().map_err(|e| Error::output(path, e))?;
    Ok(rows)
}

/// Rows of `measurements` being gathered for the next row group.
#[derive(Default)]
struct MeasurementBatch {
    ids: Int64Builder,
    names: StringBuilder,
    values: Float64Builder,
}

impl MeasurementBatch {
    fn push(&mut self, sample_id: i64, biomarker: &str, value: Option<f64>) {
        self.ids.append_value(sample_id);
        self.names.append_value(biomarker);
        self.values.append_option(value);
    }

    /// Writes the gathered rows and starts afresh.
    fn write_to(&mut self, writer: &mut ArrowWriter<File>, path: &Path) -> Result<()> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.ids.finish()),
            Arc::new(self.names.finish()),
            Arc::new(self.values.finish()),
        ];
        let batch = RecordBatch::try_new(measurements_schema(), columns)
            .map_err(|e| Error::output(path, e))?;
        writer.write(&batch).map_err(|e| Error::output(path, e))
    }
}

/// Rounds to `digits` significant decimal digits, through the decimal representation, so the
/// stored double is the one closest to what an instrument would print.
fn round_significant(value: f64, digits: usize) -> f64 {
    format!("{value:.*e}", digits.saturating_sub(1))
        .parse()
        .unwrap_or(value)
}

/// `measurements(sample_id BIGINT, biomarker VARCHAR, value DOUBLE)`.
pub fn measurements_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("sample_id", DataType::Int64, false),
        Field::new("biomarker", DataType::Utf8, false),
        Field::new("value", DataType::Float64, true),
    ]))
}

/// `samples(sample_id BIGINT, is_case BOOLEAN, age INT, sex VARCHAR, site VARCHAR,
/// matched_set BIGINT)`.
pub fn samples_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("sample_id", DataType::Int64, false),
        Field::new("is_case", DataType::Boolean, false),
        Field::new("age", DataType::Int32, false),
        Field::new("sex", DataType::Utf8, false),
        Field::new("site", DataType::Utf8, false),
        Field::new("matched_set", DataType::Int64, true),
    ]))
}

fn samples_batch(people: &[Person]) -> Result<RecordBatch> {
    let mut id = Int64Builder::new();
    let mut case = BooleanBuilder::new();
    let mut age = Int32Builder::new();
    let mut sex = StringBuilder::new();
    let mut site = StringBuilder::new();
    let mut set = Int64Builder::new();
    for p in people {
        id.append_value(p.id);
        case.append_value(p.is_case);
        age.append_value(p.age);
        sex.append_value(if p.female { "F" } else { "M" });
        site.append_value(p.site);
        set.append_option(p.matched_set);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(case.finish()),
        Arc::new(age.finish()),
        Arc::new(sex.finish()),
        Arc::new(site.finish()),
        Arc::new(set.finish()),
    ];
    RecordBatch::try_new(samples_schema(), columns).map_err(|e| Error::output("samples", e))
}

fn writer_properties() -> Result<WriterProperties> {
    let level = ZstdLevel::try_new(3).map_err(|e| Error::output("parquet", e))?;
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(ROW_GROUP))
        .set_created_by("discern demo-data".to_string())
        .build())
}

fn write_parquet(path: &Path, schema: SchemaRef, batch: RecordBatch) -> Result<()> {
    let file = File::create(path).map_err(|e| Error::output(path, e))?;
    let mut writer = ArrowWriter::try_new(file, schema, Some(writer_properties()?))
        .map_err(|e| Error::output(path, e))?;
    writer.write(&batch).map_err(|e| Error::output(path, e))?;
    writer.close().map_err(|e| Error::output(path, e))?;
    Ok(())
}

/// SplitMix64: tiny, fast, and its output is fixed forever (no dependency whose stream could
/// change between versions).
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Self {
        let mut rng = Rng(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        rng.next_u64();
        rng
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform on [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_keeps_three_significant_digits() {
        assert_eq!(round_significant(12.3456, 3), 12.3);
        assert_eq!(round_significant(0.0012345, 3), 0.00123);
        assert_eq!(round_significant(98765.0, 3), 98800.0);
    }

    #[test]
    fn matching_pairs_cases_with_same_sex_controls() {
        let spec = DemoSpec {
            samples: 500,
            ..DEFAULT
        };
        let people = make_samples(&spec);
        let cases = people.iter().filter(|p| p.is_case).count();
        assert_eq!(cases, 125);
        let mut sets: BTreeMap<i64, Vec<&Person>> = BTreeMap::new();
        for p in &people {
            if let Some(s) = p.matched_set {
                sets.entry(s).or_default().push(p);
            }
        }
        assert!(!sets.is_empty());
        for members in sets.values() {
            assert_eq!(members.iter().filter(|p| p.is_case).count(), 1);
            assert!(members.len() <= 1 + CONTROLS_PER_CASE);
            assert!(members.iter().all(|p| p.female == members[0].female));
        }
    }

    #[test]
    fn shifted_biomarkers_are_a_handful() {
        let markers = make_biomarkers(&DemoSpec {
            biomarkers: 1000,
            ..DEFAULT
        });
        assert_eq!(markers.iter().filter(|m| m.shift != 0.0).count(), 50);
        let small = make_biomarkers(&DEFAULT);
        assert_eq!(small.iter().filter(|m| m.shift != 0.0).count(), 3);
    }

    #[test]
    fn bad_specs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for spec in [
            DemoSpec {
                samples: 1,
                ..DEFAULT
            },
            DemoSpec {
                biomarkers: 0,
                ..DEFAULT
            },
            DemoSpec {
                shards: 0,
                ..DEFAULT
            },
            DemoSpec {
                case_fraction: 1.0,
                ..DEFAULT
            },
        ] {
            assert!(generate(&spec, dir.path(), false).is_err(), "{spec:?}");
        }
    }
}
