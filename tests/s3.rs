//! Sharded, hive-partitioned Parquet over the real S3 protocol: an in-process s3s-fs server on
//! 127.0.0.1 that checks SigV4 signatures, queried by the real `discern` binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/s3.rs"]
mod s3_server;

use common::{discern, generate, run};
use discern::demo_data::{self, DemoSpec};
use s3_server::{BUCKET, S3Server, SECRET_KEY};

/// A dataset in a bucket directory, plus the same files locally.
fn fixture() -> (tempfile::TempDir, S3Server) {
    let spec = DemoSpec {
        samples: 600,
        biomarkers: 12,
        shards: 6,
        seed: 99,
        ..demo_data::DEFAULT
    };
    fixture_with(&spec, None)
}

/// `spec` generated under `local/` and copied into the bucket under `cohort/`, served over
/// HTTPS when `tls` is given.
fn fixture_with(
    spec: &DemoSpec,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> (tempfile::TempDir, S3Server) {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local");
    generate(&local, spec);
    let root = dir.path().join("s3");
    common::copy_tree(&local, &root.join(BUCKET).join("cohort"));
    let server = S3Server::start_with_tls(&root, tls);
    (dir, server)
}

const REPORT: &str = "\
    SELECT m.biomarker, m.batch, s.is_case, count(*) AS n, count(m.value) AS measured, \
           sum(m.value) AS total, min(m.value) AS lo, max(m.value) AS hi \
    FROM measurements m JOIN samples s USING (sample_id) \
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3";

#[test]
fn s3_and_local_give_the_same_rows() {
    let (dir, s3) = fixture();
    let local = dir.path().join("local");
    let from_local = dir.path().join("local.csv");
    let from_s3 = dir.path().join("s3.csv");
    run(discern()
        .args(["query", REPORT, "--output"])
        .arg(&from_local)
        .arg("--table")
        .arg(format!(
            "measurements={}",
            local.join("measurements").display()
        ))
        .arg("--table")
        .arg(format!("samples={}", local.join("samples").display())))
    .ok();
    let out = run(s3
        .discern(SECRET_KEY)
        .args(["query", REPORT, "--output"])
        .arg(&from_s3)
        .args([
            "--table",
            &format!("measurements=s3://{BUCKET}/cohort/measurements/"),
            "--table",
            &format!("samples=s3://{BUCKET}/cohort/samples"),
        ]))
    .ok();
    assert!(out.stderr.contains("wrote 144 rows"), "{}", out.stderr); // 12 × 6 × 2
    let a = std::fs::read_to_string(&from_local).unwrap();
    let b = std::fs::read_to_string(&from_s3).unwrap();
    assert_eq!(a.lines().count(), 145);
    assert_eq!(a, b, "S3 and local results differ");
}

#[test]
fn s3_partitions_prune_and_config_files_work() {
    let (dir, s3) = fixture();
    let config = dir.path().join("discern.toml");
    std::fs::write(
        &config,
        format!("[tables.measurements]\nlocation = \"s3://{BUCKET}/cohort/measurements/\"\n"),
    )
    .unwrap();
    let out = run(s3.discern(SECRET_KEY).args([
        "query",
        "EXPLAIN SELECT sum(value) FROM measurements WHERE batch = '2024-05'",
        "--config",
        config.to_str().unwrap(),
    ]))
    .ok();
    let physical: String = out
        .stdout
        .lines()
        .skip_while(|l| !l.contains("physical_plan"))
        .collect();
    assert!(
        physical.contains("batch=2024-05/part-0.parquet"),
        "{}",
        out.stdout
    );
    assert!(!physical.contains("batch=2024-04"), "{}", out.stdout);
    let out = run(s3.discern(SECRET_KEY).args([
        "query",
        "SELECT count(DISTINCT sample_id) AS n FROM measurements WHERE batch = '2024-05'",
        "--config",
        config.to_str().unwrap(),
    ]))
    .ok();
    // Shard 5 of 6 holds samples 401..=500.
    assert!(out.stdout.contains("| 100 "), "{}", out.stdout);
}

#[test]
fn s3_errors_name_the_table_and_the_cause() {
    let (_dir, s3) = fixture();
    let table = format!("measurements=s3://{BUCKET}/cohort/measurements/");

    // A wrong secret: the server rejects the signature.
    let out = run(s3.discern("not-the-secret").args([
        "query",
        "SELECT count(*) FROM measurements",
        "--table",
        &table,
    ]))
    .fails_with(&["table 'measurements'", "access denied"]);
    assert!(
        !out.stderr.contains("not-the-secret"),
        "secret leaked: {}",
        out.stderr
    );
    assert!(
        !out.stderr.contains(SECRET_KEY),
        "secret leaked: {}",
        out.stderr
    );

    // No credentials at all (the instance metadata service is not there either).
    run(s3
        .discern(SECRET_KEY)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_METADATA_ENDPOINT", "http://127.0.0.1:9")
        .args(["query", "SELECT 1", "--table", &table]))
    .fails_with(&["table 'measurements'", "no S3 credentials"]);

    // A bucket that does not exist.
    run(s3
        .discern(SECRET_KEY)
        .args(["query", "SELECT 1", "--table", "m=s3://no-such-bucket/x/"]))
    .fails_with(&[
        "table 'm'",
        "s3://no-such-bucket/x/",
        "bucket does not exist",
    ]);

    // A prefix with no Parquet files.
    run(s3.discern(SECRET_KEY).args([
        "query",
        "SELECT 1",
        "--table",
        &format!("m=s3://{BUCKET}/nothing-here/"),
    ]))
    .fails_with(&["table 'm'", "no Parquet files found"]);

    // An endpoint nobody listens on (a port we bound and released).
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_endpoint = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    run(s3
        .discern(SECRET_KEY)
        .env("AWS_ENDPOINT", &dead_endpoint)
        .args(["query", "SELECT 1", "--table", &table]))
    .fails_with(&["table 'measurements'", "cannot be reached"]);

    // Plain HTTP is refused unless AWS_ALLOW_HTTP says otherwise.
    run(s3
        .discern(SECRET_KEY)
        .env_remove("AWS_ALLOW_HTTP")
        .args(["query", "SELECT 1", "--table", &table]))
    .fails_with(&["table 'measurements'", "HTTP"]);
}

#[test]
fn a_corrupt_file_on_s3_is_named() {
    let (dir, s3) = fixture();
    let victim = dir
        .path()
        .join("s3")
        .join(BUCKET)
        .join("cohort/measurements/batch=2024-03/part-0.parquet");
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() - 100]).unwrap();
    run(s3.discern(SECRET_KEY).args([
        "query",
        "SELECT count(*) FROM measurements",
        "--table",
        &format!("measurements=s3://{BUCKET}/cohort/measurements/"),
    ]))
    .fails_with(&[
        "s3://lab-data/cohort/measurements/batch=2024-03/part-0.parquet",
        "not a readable Parquet file",
    ]);
}

/// A self-signed certificate for 127.0.0.1, as (TLS acceptor, PEM of the certificate).
fn self_signed() -> (tokio_rustls::TlsAcceptor, String) {
    use tokio_rustls::rustls;
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = certified.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    (
        tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)),
        certified.cert.pem(),
    )
}

#[test]
fn https_endpoints_with_a_private_ca() {
    let (tls, ca_pem) = self_signed();
    let spec = DemoSpec {
        samples: 100,
        biomarkers: 4,
        shards: 2,
        ..demo_data::DEFAULT
    };
    let (dir, s3) = fixture_with(&spec, Some(tls));
    assert!(s3.endpoint.starts_with("https://"));
    let ca = dir.path().join("private-ca.pem");
    std::fs::write(&ca, &ca_pem).unwrap();
    let table = format!("measurements=s3://{BUCKET}/cohort/measurements/");
    let sql = "SELECT count(DISTINCT biomarker) AS b FROM measurements";

    // Trusted through the config file's ca_bundle, with plain HTTP not allowed.
    let config = dir.path().join("discern.toml");
    std::fs::write(
        &config,
        format!("[s3]\nca_bundle = {:?}\n", ca.display().to_string()),
    )
    .unwrap();
    let out = run(s3
        .discern(SECRET_KEY)
        .env_remove("AWS_ALLOW_HTTP")
        .args(["query", sql, "--table", &table, "--config"])
        .arg(&config))
    .ok();
    assert!(out.stdout.contains("| 4 "), "{}", out.stdout);

    // Trusted through AWS_CA_BUNDLE, like the AWS CLI.
    let out = run(s3
        .discern(SECRET_KEY)
        .env_remove("AWS_ALLOW_HTTP")
        .env("AWS_CA_BUNDLE", &ca)
        .args(["query", sql, "--table", &table]))
    .ok();
    assert!(out.stdout.contains("| 4 "), "{}", out.stdout);

    // Not trusted: the certificate is refused, nothing falls back to plain HTTP.
    run(s3
        .discern(SECRET_KEY)
        .env_remove("AWS_ALLOW_HTTP")
        .args(["query", sql, "--table", &table]))
    .fails_with(&[
        "table 'measurements'",
        "TLS certificate is not trusted",
        "ca_bundle",
    ]);

    // A CA bundle that is not PEM is a configuration error, named.
    std::fs::write(&ca, "not a certificate").unwrap();
    run(s3
        .discern(SECRET_KEY)
        .env("AWS_CA_BUNDLE", &ca)
        .args(["query", sql, "--table", &table]))
    .fails_with(&["private-ca.pem", "no PEM certificate"]);
}
