//! Cluster mode: `discern worker` processes on 127.0.0.1 with certificates made here, a
//! coordinator (`discern query`, `discern serve`) running every function family and the
//! discrimination report on them, compared with the single-node answers; peers without a
//! certificate from the cluster CA refused; a worker killed mid-query; every worker dead.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/s3.rs"]
mod s3_server;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{Outcome, discern, run};
use discern::demo_data::DemoSpec;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use serde_json::Value;
use tokio_rustls::rustls;

/// A cluster CA and the certificates it signs (every node is client and server).
struct Pki {
    dir: tempfile::TempDir,
    issuer: Issuer<'static, KeyPair>,
    ca: PathBuf,
}

impl Pki {
    fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        let ca = dir.path().join("ca.crt");
        std::fs::write(&ca, cert.pem()).unwrap();
        Self {
            issuer: Issuer::new(params, key),
            dir,
            ca,
        }
    }

    /// A node certificate for localhost / 127.0.0.1: (certificate, key).
    fn node(&self, name: &str) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let cert_path = self.dir.path().join(format!("{name}.crt"));
        let key_path = self.dir.path().join(format!("{name}.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }
}

/// A `discern worker` process; killed when dropped.
struct Worker {
    child: Child,
    url: String,
}

impl Worker {
    fn start(pki: &Pki, memory_limit: &str) -> Self {
        Self::start_with(pki, memory_limit, discern())
    }

    /// Starts `command` (a `discern` with its environment) as a worker.
    fn start_with(pki: &Pki, memory_limit: &str, command: std::process::Command) -> Self {
        let (cert, key) = pki.node("worker");
        Self::start_as(&cert, &key, &pki.ca, memory_limit, command)
    }

    /// A worker with this certificate and key, accepting clients signed by `ca`.
    fn start_as(
        cert: &Path,
        key: &Path,
        ca: &Path,
        memory_limit: &str,
        mut command: std::process::Command,
    ) -> Self {
        let log = std::fs::File::create(cert.with_extension("log")).unwrap();
        let mut child = command
            .args([
                "worker",
                "--listen",
                "127.0.0.1:0",
                "--memory-limit",
                memory_limit,
            ])
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .arg("--ca")
            .arg(ca)
            .args(["--target-partitions", "2"])
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("discern worker listening on ")
            .unwrap_or_else(|| panic!("unexpected first line of discern worker: {line:?}"))
            .to_string();
        Self {
            child,
            url: format!("https://{addr}"),
        }
    }

    fn addr(&self) -> &str {
        self.url.trim_start_matches("https://")
    }

    /// SIGKILL, as a node that dies would.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The tables of a dataset and, with workers, a [cluster] section: the config file's path.
fn config(dir: &Path, data: &Path, cluster: Option<(&Pki, &[&Worker])>) -> PathBuf {
    let mut text = format!(
        "[tables.measurements]\nlocation = \"{}\"\n[tables.samples]\nlocation = \"{}\"\n",
        data.join("measurements").display(),
        data.join("samples").display()
    );
    if let Some((pki, workers)) = cluster {
        let (cert, key) = pki.node("coordinator");
        let urls: Vec<String> = workers.iter().map(|w| format!("\"{}\"", w.url)).collect();
        text += &format!(
            "[cluster]\nworkers = [{}]\ntls_cert = \"{}\"\ntls_key = \"{}\"\nca = \"{}\"\n\
             bytes_per_partition = \"1\"\n",
            urls.join(", "),
            cert.display(),
            key.display(),
            pki.ca.display()
        );
    }
    let name = if cluster.is_some() {
        "cluster.toml"
    } else {
        "single.toml"
    };
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `sql` with `discern query --config … --stats`, the result as NDJSON rows.
fn query(config: &Path, sql: &str, out: &Path) -> (Outcome, Vec<Value>) {
    let file = out.with_extension("sql");
    std::fs::write(&file, sql).unwrap();
    let outcome = run(discern()
        .arg("query")
        .arg("--config")
        .arg(config)
        .args(["--stats", "--target-partitions", "2"])
        .arg("--output")
        .arg(out)
        .arg("-f")
        .arg(&file));
    let rows = if outcome.success {
        read_rows(out)
    } else {
        Vec::new()
    };
    (outcome, rows)
}

/// The rows of an NDJSON result file.
fn read_rows(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Asserts two results agree: every number within `tolerance` relatively (0: the same
/// double), everything else equal.
fn assert_agree(what: &str, single: &[Value], cluster: &[Value], tolerance: f64) {
    assert_eq!(single.len(), cluster.len(), "{what}: row counts differ");
    assert!(!single.is_empty(), "{what}: no rows");
    for (i, (a, b)) in single.iter().zip(cluster).enumerate() {
        agree(&format!("{what}, row {i}"), a, b, tolerance);
    }
}

fn agree(at: &str, a: &Value, b: &Value, tolerance: f64) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            let ok = if tolerance == 0.0 {
                x.to_bits() == y.to_bits()
            } else {
                x == y || (x - y).abs() <= tolerance * x.abs().max(y.abs())
            };
            assert!(ok, "{at}: single node {x:e}, cluster {y:e}");
        }
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(
                x.keys().collect::<Vec<_>>(),
                y.keys().collect::<Vec<_>>(),
                "{at}: fields differ"
            );
            for (k, v) in x {
                agree(&format!("{at}.{k}"), v, &y[k], tolerance);
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}: list lengths differ");
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                agree(&format!("{at}[{i}]"), v, w, tolerance);
            }
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}

/// The `cluster: …` line of `--stats`, as (workers, stages, retries).
fn cluster_stats(outcome: &Outcome) -> (usize, usize, usize) {
    let line = outcome
        .stderr
        .lines()
        .find(|l| l.starts_with("cluster: "))
        .unwrap_or_else(|| panic!("no cluster line in --stats:\n{}", outcome.stderr));
    let field = |name: &str| -> usize {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(&format!("{name}=")))
            .unwrap()
            .parse()
            .unwrap()
    };
    (field("workers"), field("stages"), field("retries"))
}

const FROM: &str = "FROM measurements m JOIN samples s USING (sample_id)";

/// Every function family, as queries per biomarker: (name, SQL, tolerance). Rank, ROC,
/// contingency and signed-rank statistics and medians depend only on the values and counts:
/// the same bits. Moment statistics and regressions sum in the order rows arrive: 1e-12.
fn families() -> Vec<(&'static str, String, f64)> {
    let q = |select: &str| {
        format!("SELECT m.biomarker, {select} {FROM} GROUP BY m.biomarker ORDER BY m.biomarker")
    };
    vec![
        (
            "ranks",
            q(
                "auc(m.value, s.is_case) AS auc, auc_ci(m.value, s.is_case) AS ci, \
                     mann_whitney(m.value, s.is_case) AS mw, \
                     mann_whitney(m.value, s.is_case, 'asymptotic') AS mw_asymptotic, \
                     ks_test(m.value, s.is_case) AS ks",
            ),
            0.0,
        ),
        (
            "roc",
            q("youden(m.value, s.is_case) AS youden, \
                   cardinality(roc_curve(m.value, s.is_case)) AS points, \
                   roc_curve(m.value, s.is_case)[2] AS second_point, \
                   sensitivity_at_specificity(m.value, s.is_case, 0.9) AS sens90, \
                   partial_auc(m.value, s.is_case, 0.8, 1.0) AS pauc, \
                   roc_test(m.value, m.value + s.age / 10.0, s.is_case) AS paired"),
            0.0,
        ),
        (
            "medians",
            q(
                "median(m.value) AS median, percentile_cont(m.value, 0.9) AS p90, \
                       median(m.value) FILTER (WHERE s.is_case) AS median_case",
            ),
            0.0,
        ),
        (
            "contingency",
            q("odds_ratio(m.value > 1.0, s.is_case) AS odds, \
                           fisher_exact(m.value > 1.0, s.is_case) AS fisher, \
                           chi2_test(m.value > 1.0, s.is_case) AS chi2, \
                           cmh_test(m.value > 1.0, s.is_case, s.site) AS cmh, \
                           mcnemar(m.value > 1.0, m.value > 1.5) AS mcnemar"),
            0.0,
        ),
        (
            "second round",
            q(
                "mann_whitney(m.value, s.is_case, 'exact', false) AS mw_exact, \
                 auc_ci_bootstrap(m.value, s.is_case, 0.95, 100, 7) AS boot, \
                 roc_sample_size(m.value, s.is_case, 0.9) AS needed, \
                 roc_test_unpaired(m.value, s.is_case, s.matched_set % 2 = 0) AS unpaired, \
                 breslow_day(m.value > 1.0, s.is_case, s.site) AS breslow_day, \
                 cmh_exact(m.value > 1.0, s.is_case, s.site) AS cmh_exact, \
                 fisher_exact(m.value > 1.0, s.is_case, 0.9, 'less') AS fisher_less, \
                 wilcoxon_signed_rank(m.value - 1.0, 'asymptotic', false, 'pratt') AS pratt",
            ),
            0.0,
        ),
        (
            "signed ranks",
            q("wilcoxon_signed_rank(m.value - 1.0) AS w, \
                            wilcoxon_signed_rank(m.value - 1.0, 'asymptotic') AS w_asymptotic"),
            0.0,
        ),
        (
            "moments",
            q("welch_t_test(m.value, s.is_case) AS welch, \
                       student_t_test(m.value, s.is_case) AS student, \
                       cohens_d(m.value, s.is_case) AS d, hedges_g(m.value, s.is_case) AS g, \
                       log2_fold_change(m.value, s.is_case) AS lfc, \
                       paired_t_test(m.value - 1.0) AS paired, avg(m.value) AS mean"),
            1e-12,
        ),
        (
            "regressions",
            q(
                "logistic_regression(s.is_case, m.value, CAST(s.age AS DOUBLE)) AS glm, \
                           odds_ratio_per_sd(m.value, s.is_case) AS per_sd, \
                           conditional_logistic(s.is_case, s.matched_set, m.value) AS clogit, \
                           conditional_logistic(s.is_case, s.matched_set, m.value, 'breslow') \
                             AS clogit_breslow",
            ),
            1e-9,
        ),
    ]
}

fn report() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/reports/discrimination.sql"),
    )
    .unwrap()
}

/// The report's columns that are rank statistics, counts or medians (the same bits on the
/// cluster); the others (means, fold change, Welch p) agree to 1e-12.
const REPORT_EXACT: &[&str] = &[
    "biomarker",
    "n_case",
    "n_control",
    "median_case",
    "median_control",
    "auc",
    "auc_lower",
    "auc_upper",
    "mann_whitney_p",
    "mann_whitney_q",
    "youden_threshold",
    "youden_sensitivity",
    "youden_specificity",
];

fn assert_report_agrees(what: &str, single: &[Value], cluster: &[Value]) {
    assert_eq!(single.len(), cluster.len(), "{what}: row counts differ");
    for (i, (a, b)) in single.iter().zip(cluster).enumerate() {
        for (column, x) in a.as_object().unwrap() {
            let tolerance = if REPORT_EXACT.contains(&column.as_str()) {
                0.0
            } else {
                1e-12
            };
            agree(
                &format!("{what} row {i} {column}"),
                x,
                &b[column],
                tolerance,
            );
        }
    }
}

fn dataset(dir: &Path, digits: Option<usize>, samples: usize, biomarkers: usize) -> PathBuf {
    let data = dir.join(if digits.is_some() { "rounded" } else { "full" });
    common::generate(
        &data,
        &DemoSpec {
            samples,
            biomarkers,
            shards: 8,
            case_fraction: 0.3,
            digits,
            ..discern::demo_data::DEFAULT
        },
    );
    data
}

#[test]
fn every_function_family_and_the_report_give_the_single_node_answer_on_two_workers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path(), Some(3), 1_200, 12);
    let pki = Pki::new("cluster CA");
    let workers = [Worker::start(&pki, "512MiB"), Worker::start(&pki, "512MiB")];
    let refs: Vec<&Worker> = workers.iter().collect();
    let single = config(dir.path(), &data, None);
    let cluster = config(dir.path(), &data, Some((&pki, &refs)));
    let out = dir.path().join("out.ndjson");

    let mut sqls = families();
    sqls.push(("report", report(), -1.0));
    for (name, sql, tolerance) in sqls {
        let (one, expected) = query(&single, &sql, &out);
        one.ok();
        let (many, got) = query(&cluster, &sql, &out);
        let many = many.ok();
        if tolerance < 0.0 {
            assert_report_agrees(name, &expected, &got);
        } else {
            assert_agree(name, &expected, &got, tolerance);
        }
        let (used, stages, retries) = cluster_stats(&many);
        assert_eq!(used, 2, "{name}: both workers ran tasks\n{}", many.stderr);
        assert!(stages >= 2, "{name}: {stages} stages");
        assert_eq!(retries, 0, "{name}");
    }

    // EXPLAIN shows the stages and the workers.
    let explain = run(discern()
        .arg("query")
        .arg("--config")
        .arg(&cluster)
        .arg(format!(
            "EXPLAIN SELECT m.biomarker, auc(m.value, s.is_case) {FROM} GROUP BY 1"
        )))
    .ok();
    assert!(explain.stdout.contains("Stage"), "{}", explain.stdout);
    assert!(
        explain.stdout.contains("BoundedAggregateExec"),
        "{}",
        explain.stdout
    );
    for w in &workers {
        assert!(explain.stdout.contains(&w.url), "{}", explain.stdout);
    }
    // Catalog queries stay on the coordinator.
    let catalog = run(discern()
        .arg("query")
        .arg("--config")
        .arg(&cluster)
        .arg("--stats")
        .arg("SELECT count(*) AS n FROM information_schema.tables"))
    .ok();
    assert!(!catalog.stderr.contains("cluster: "), "{}", catalog.stderr);
}

#[test]
fn full_precision_report_on_four_workers_within_their_memory_limits() {
    // Four workers at 1 MiB each: the rank states of a full-precision report (400 biomarkers,
    // about 100 per worker, ~20 KB each) do not fit, while one biomarker's state fits its fair
    // share of the pool; so BoundedAggregateExec (shipped to them by Discern's codec) spills by
    // group hash on the workers, and the answers are still the single node's.
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path(), None, 1_000, 400);
    let pki = Pki::new("cluster CA");
    let out = dir.path().join("out.ndjson");
    let single = config(dir.path(), &data, None);
    let (one, expected) = query(&single, &report(), &out);
    one.ok();
    let mut workers: Vec<Worker> = (0..4).map(|_| Worker::start(&pki, "1MiB")).collect();
    let refs: Vec<&Worker> = workers.iter().collect();
    let cluster = config(dir.path(), &data, Some((&pki, &refs)));
    let (many, got) = query(&cluster, &report(), &out);
    let many = many.ok();
    assert_report_agrees("full-precision report", &expected, &got);
    let (used, _, _) = cluster_stats(&many);
    assert_eq!(used, 4, "{}", many.stderr);
    let body: String = report()
        .lines()
        .filter(|l| !l.starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    let analyzed = run(discern()
        .arg("query")
        .arg("--config")
        .arg(&cluster)
        .arg(format!("EXPLAIN ANALYZE {body}")))
    .ok();
    let spills: Vec<u64> = analyzed
        .stdout
        .split("BoundedAggregateExec: gby")
        .skip(1)
        .filter_map(|s| s.split("spill_count=").nth(1))
        .map(|s| {
            s.split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(
        spills.iter().any(|&n| n > 0),
        "the workers' aggregation did not spill: {spills:?}\n{}",
        analyzed.stdout
    );
    // Each worker within its limit plus the stated margin (README, "Memory": 256 MiB).
    for w in &workers {
        let peak = peak_rss(w.child.id());
        assert!(
            peak <= (1 + 256) << 20,
            "a worker peaked at {} MiB",
            peak >> 20
        );
    }
    drop(workers);

    // At 64 KiB a biomarker's state alone does not fit: the statement fails with the
    // memory-limit error (not retried: the workers are alive), and the workers keep serving.
    workers = (0..2).map(|_| Worker::start(&pki, "64KiB")).collect();
    let refs: Vec<&Worker> = workers.iter().collect();
    let small = config(dir.path(), &data, Some((&pki, &refs)));
    let (outcome, _) = query(&small, &report(), &out);
    let outcome = outcome.fails_with(&["Resources exhausted", "64KiB"]);
    assert!(
        !outcome.stderr.contains("lost a worker"),
        "{}",
        outcome.stderr
    );
    for w in &mut workers {
        assert!(w.child.try_wait().unwrap().is_none(), "a worker died");
    }
    let count = "SELECT count(*) AS n, count(value) AS values FROM measurements";
    let (outcome, rows) = query(&small, count, &out);
    outcome.ok();
    let (outcome, want) = query(&single, count, &out);
    outcome.ok();
    assert_eq!(rows, want);
}

#[test]
fn peers_without_a_cluster_certificate_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path(), Some(3), 1_200, 12);
    let pki = Pki::new("cluster CA");
    let worker = Worker::start(&pki, "256MiB");
    let out = dir.path().join("out.ndjson");

    // A coordinator whose certificate another CA signed: the worker refuses it.
    let stranger = Pki::new("another CA");
    let (cert, key) = stranger.node("intruder");
    let text = format!(
        "[tables.measurements]\nlocation = \"{}\"\n[tables.samples]\nlocation = \"{}\"\n\
         [cluster]\nworkers = [\"{}\"]\ntls_cert = \"{}\"\ntls_key = \"{}\"\nca = \"{}\"\n\
         bytes_per_partition = \"1\"\nmax_retries = 0\n",
        data.join("measurements").display(),
        data.join("samples").display(),
        worker.url,
        cert.display(),
        key.display(),
        pki.ca.display()
    );
    let intruder = dir.path().join("intruder.toml");
    std::fs::write(&intruder, text).unwrap();
    let (outcome, _) = query(
        &intruder,
        &format!("SELECT m.biomarker, auc(m.value, s.is_case) {FROM} GROUP BY 1"),
        &out,
    );
    assert!(!outcome.success, "a foreign certificate was accepted");
    assert!(!outcome.stderr.contains("panicked"), "{}", outcome.stderr);

    // A worker whose certificate another CA signed (it would accept our coordinator): the
    // coordinator refuses to send it work.
    let rogue = Worker::start_as(&cert, &key, &pki.ca, "256MiB", discern());
    let refs = [&rogue];
    let (outcome, _) = query(
        &config(dir.path(), &data, Some((&pki, &refs))),
        &format!("SELECT m.biomarker, auc(m.value, s.is_case) {FROM} GROUP BY 1"),
        &out,
    );
    assert!(
        !outcome.success,
        "a worker with a foreign certificate got work"
    );
    assert!(!outcome.stderr.contains("panicked"), "{}", outcome.stderr);
    drop(rogue);

    // Plaintext HTTP/2 gets no HTTP/2 answer: the first bytes back are a TLS alert, or none.
    let mut tcp = std::net::TcpStream::connect(worker.addr()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .unwrap();
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer);
    assert!(
        answer.is_empty() || answer[0] == 0x15,
        "plaintext got an answer: {answer:?}"
    );

    // TLS without a client certificate: the handshake is refused.
    let roots = {
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(&pki.ca).unwrap();
        for cert in rustls_pemfile_certs(&pem) {
            roots.add(cert).unwrap();
        }
        roots
    };
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(tls), name).unwrap();
    let mut tcp = std::net::TcpStream::connect(worker.addr()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut stream = rustls::Stream::new(&mut conn, &mut tcp);
    let refused = stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .and_then(|()| {
            let mut buf = [0u8; 9];
            stream.read_exact(&mut buf)
        });
    assert!(
        refused.is_err(),
        "a client without a certificate was served"
    );

    // Configuration mistakes are one clear line.
    let plain = dir.path().join("plain.toml");
    std::fs::write(
        &plain,
        format!(
            "[cluster]\nworkers = [\"http://{}\"]\ntls_cert = \"{}\"\ntls_key = \"{}\"\nca = \"{}\"\n",
            worker.addr(),
            cert.display(),
            key.display(),
            pki.ca.display()
        ),
    )
    .unwrap();
    run(discern()
        .arg("query")
        .arg("--config")
        .arg(&plain)
        .arg("SELECT 1"))
    .fails_with(&["https://", "TLS"]);
    run(discern().args(["query", "--worker", &worker.url, "SELECT 1"]))
        .fails_with(&["cluster mode needs tls_cert"]);
}

/// A process's peak resident set size in bytes (VmHWM).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

/// CPU time a process has used, in clock ticks (user + system, from /proc).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // After the command name in parentheses: state is field 3, utime 14 and stime 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .map(Result::unwrap)
        .collect()
}

#[test]
fn a_worker_killed_mid_query_is_replaced_and_all_dead_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    // 2,400 samples: 69M pairs of values in the slow statement below (about 2 s).
    let data = dataset(dir.path(), None, 2_400, 12);
    let pki = Pki::new("cluster CA");
    let mut workers: Vec<Worker> = (0..3).map(|_| Worker::start(&pki, "512MiB")).collect();
    let refs: Vec<&Worker> = workers.iter().collect();
    let single = config(dir.path(), &data, None);
    let cluster = config(dir.path(), &data, Some((&pki, &refs)));
    let out = dir.path().join("out.ndjson");
    // A slow statement: every pair of a biomarker's values.
    let sql = "SELECT a.biomarker, count(*) AS pairs, sum(CASE WHEN a.value < b.value THEN 1 ELSE 0 END) AS below \
               FROM measurements a JOIN measurements b ON a.biomarker = b.biomarker \
               GROUP BY a.biomarker ORDER BY a.biomarker";
    let (one, expected) = query(&single, sql, &out);
    one.ok();

    // Kill a worker once it is busy with its tasks (it has used 0.2 s of CPU more than when
    // idle), while the statement still runs.
    let victim = workers[1].child.id();
    let idle = cpu_ticks(victim);
    let mut coordinator = discern()
        .arg("query")
        .arg("--config")
        .arg(&cluster)
        .args(["--stats", "--output"])
        .arg(&out)
        .arg(sql)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while cpu_ticks(victim) < idle + 20 {
        assert!(
            coordinator.try_wait().unwrap().is_none(),
            "the statement ended before the worker was busy: make it slower"
        );
        assert!(Instant::now() < deadline, "the worker never got busy");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        coordinator.try_wait().unwrap().is_none(),
        "the statement ended before the worker could be killed"
    );
    workers[1].kill();
    let finished = coordinator.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&finished.stderr).to_string();
    assert!(finished.status.success(), "the statement failed:\n{stderr}");
    let got = read_rows(&out);
    assert_agree("after losing a worker", &expected, &got, 0.0);
    let line = stderr.lines().find(|l| l.starts_with("cluster: ")).unwrap();
    assert!(line.contains("retries=1"), "the retry is recorded: {line}");

    // Every worker dead: a clear error, in seconds, not a hang.
    for w in &mut workers {
        w.kill();
    }
    let started = Instant::now();
    let (outcome, _) = query(&cluster, sql, &out);
    outcome.fails_with(&[
        "no cluster worker is reachable",
        "the statement was not run",
    ]);
    assert!(started.elapsed() < Duration::from_secs(30));
    // Catalog queries do not need workers.
    run(discern()
        .arg("query")
        .arg("--config")
        .arg(&cluster)
        .arg("SELECT count(*) FROM information_schema.tables"))
    .ok();
}

#[test]
fn the_report_over_s3_on_two_workers_is_the_single_node_answer() {
    // The data in a bucket of the in-process S3 server; workers and coordinator get the
    // credentials from their own AWS_* environment.
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path(), Some(3), 1_200, 12);
    let root = dir.path().join("s3");
    common::copy_tree(&data, &root.join(s3_server::BUCKET).join("cohort"));
    let s3 = s3_server::S3Server::start_with_tls(&root, None);
    let pki = Pki::new("cluster CA");
    let workers = [
        Worker::start_with(&pki, "256MiB", s3.discern(s3_server::SECRET_KEY)),
        Worker::start_with(&pki, "256MiB", s3.discern(s3_server::SECRET_KEY)),
    ];
    let (cert, key) = pki.node("coordinator");
    let bucket = format!("s3://{}/cohort", s3_server::BUCKET);
    let text = format!(
        "[tables.measurements]\nlocation = \"{bucket}/measurements/\"\n\
         [tables.samples]\nlocation = \"{bucket}/samples/\"\n\
         [cluster]\nworkers = [\"{}\", \"{}\"]\ntls_cert = \"{}\"\ntls_key = \"{}\"\nca = \"{}\"\n\
         bytes_per_partition = \"1\"\n",
        workers[0].url,
        workers[1].url,
        cert.display(),
        key.display(),
        pki.ca.display()
    );
    let cluster = dir.path().join("s3-cluster.toml");
    std::fs::write(&cluster, text).unwrap();
    let out = dir.path().join("s3.ndjson");
    let sql_file = dir.path().join("report.sql");
    std::fs::write(&sql_file, report()).unwrap();
    let many = run(s3
        .discern(s3_server::SECRET_KEY)
        .arg("query")
        .arg("--config")
        .arg(&cluster)
        .args(["--stats", "--target-partitions", "2", "--output"])
        .arg(&out)
        .arg("-f")
        .arg(&sql_file))
    .ok();
    let got = read_rows(&out);
    let (one, expected) = query(
        &config(dir.path(), &data, None),
        &report(),
        &dir.path().join("local.ndjson"),
    );
    one.ok();
    assert_report_agrees("report over S3", &expected, &got);
    assert_eq!(cluster_stats(&many).0, 2, "{}", many.stderr);
}

/// Every row of a simple query, as text.
async fn text_rows(client: &tokio_postgres::Client, sql: &str) -> Vec<Vec<Option<String>>> {
    client
        .simple_query(sql)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_runs_statements_on_the_cluster_and_audits_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path(), Some(3), 1_200, 12);
    let pki = Pki::new("cluster CA");
    let workers = [Worker::start(&pki, "256MiB"), Worker::start(&pki, "256MiB")];
    let refs: Vec<&Worker> = workers.iter().collect();
    let single = config(dir.path(), &data, None);
    let cluster = config(dir.path(), &data, Some((&pki, &refs)));
    let one = common::pg::Server::start(&["--config", single.to_str().unwrap()]);
    let many = common::pg::Server::start(&["--config", cluster.to_str().unwrap()]);
    let sql = format!(
        "SELECT m.biomarker, auc(m.value, s.is_case) AS auc, \
         mann_whitney(m.value, s.is_case)['p'] AS p, median(m.value) AS median \
         {FROM} GROUP BY m.biomarker ORDER BY m.biomarker"
    );
    let (a, b) = (one.connect().await, many.connect().await);
    let expected = text_rows(&a, &sql).await;
    assert_eq!(expected.len(), 12);
    assert_eq!(expected, text_rows(&b, &sql).await);
    // A catalog query on the coordinator.
    assert_eq!(
        text_rows(&b, "SELECT 1").await,
        vec![vec![Some("1".to_string())]]
    );
    drop(b);
    // Audit lines are written as statements end: wait for both.
    let deadline = Instant::now() + Duration::from_secs(10);
    let statements: Vec<Value> = loop {
        let statements: Vec<Value> = many
            .audit_events()
            .into_iter()
            .filter(|e| e["event"] == "statement")
            .collect();
        if statements.len() >= 2 || Instant::now() > deadline {
            break statements;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let report = statements
        .iter()
        .find(|e| e["statement"].as_str().unwrap().contains("auc("))
        .unwrap();
    assert_eq!(report["cluster"]["workers"], 2, "{report}");
    assert_eq!(report["cluster"]["retries"], 0, "{report}");
    assert!(
        report["cluster"]["shuffled_bytes"].as_u64().unwrap() > 0,
        "{report}"
    );
    let catalog = statements
        .iter()
        .find(|e| e["statement"] == "SELECT 1")
        .unwrap();
    assert!(catalog["cluster"].is_null(), "{catalog}");

    // Every worker gone: a statement that reads files fails with 57P03, the session lives on.
    drop(workers);
    let c = many.connect().await;
    let error = c.simple_query(&sql).await.unwrap_err();
    assert_eq!(common::pg::code(&error), "57P03", "{error:?}");
    assert_eq!(text_rows(&c, "SELECT 1").await.len(), 1);
}
