//! Helpers shared by the integration tests: run the real `discern` binary, generate data,
//! serve it over the real S3 protocol, measure a child's peak memory.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use discern::demo_data::{self, DemoSpec};

pub mod pg;

/// The `discern` binary built by cargo for this test run, with a clean environment for AWS.
pub fn discern() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_discern"));
    for (key, _) in std::env::vars() {
        if key.starts_with("AWS_") || key.starts_with("DISCERN_") {
            cmd.env_remove(key);
        }
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// What a finished child printed, how it ended and how much memory it peaked at.
pub struct Outcome {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
    /// Peak resident set size of the child, in bytes (from wait4's rusage).
    pub max_rss: u64,
}

impl Outcome {
    /// Panics with everything the child printed unless it succeeded.
    pub fn ok(self) -> Self {
        assert!(
            self.success,
            "discern failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Panics unless the child failed with one `error:` line that contains every `needle`,
    /// and without a panic or backtrace.
    pub fn fails_with(self, needles: &[&str]) -> Self {
        assert!(
            !self.success,
            "expected a failure, got success:\n{}",
            self.stdout
        );
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one line on stderr, got:\n{}",
            self.stderr
        );
        assert!(lines[0].starts_with("error: "), "{}", self.stderr);
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        for needle in needles {
            assert!(
                self.stderr.contains(needle),
                "stderr does not mention {needle:?}:\n{}",
                self.stderr
            );
        }
        self
    }
}

/// Runs a command to completion, capturing its output and its own peak RSS.
/// (std never waits for it: wait4 reaps it, so that the rusage is this child's alone.)
#[allow(clippy::zombie_processes)]
pub fn run(cmd: &mut Command) -> Outcome {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start discern");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_thread = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).unwrap();
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).unwrap();
        s
    });
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: `usage` is a plain C struct that wait4 fills in; `pid` is our own child, which
    // std has not waited for, so it is reaped exactly once.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4 failed");
    let success = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    Outcome {
        success,
        stdout: out_thread.join().unwrap(),
        stderr: err_thread.join().unwrap(),
        max_rss: usage.ru_maxrss as u64 * 1024,
    }
}

/// Generates a dataset under `dir` (`samples/`, `measurements/batch=…/part-0.parquet`).
pub fn generate(dir: &Path, spec: &DemoSpec) {
    demo_data::generate(spec, dir, false).unwrap();
}

/// The repository's demo dataset.
pub fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join("demo")
}

/// Every file below `dir`, as (path relative to `dir`, bytes), sorted.
pub fn read_tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Copies a directory tree.
pub fn copy_tree(from: &Path, to: &Path) {
    for (rel, bytes) in read_tree(from) {
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::write(dest, bytes).unwrap();
    }
}
