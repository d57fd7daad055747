//! Embeds the demo dataset (`testdata/demo`) in the binary, so that `discern` with no
//! configuration serves it from any working directory and from a container image.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join("demo");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    collect(&root, &mut files);
    files.sort();
    let mut out = String::from("/// The demo dataset: (path below the dataset root, bytes).\n");
    out.push_str("pub static DEMO_FILES: &[(&str, &[u8])] = &[\n");
    for file in &files {
        let relative = file
            .strip_prefix(&root)
            .ok()
            .and_then(|p| p.to_str())
            .map(|p| p.replace('\\', "/"));
        if let (Some(relative), Some(absolute)) = (relative, file.to_str()) {
            let _ = writeln!(out, "    ({relative:?}, include_bytes!({absolute:?})),");
        }
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("demo_files.rs");
    if let Err(e) = std::fs::write(&dest, out) {
        println!("cargo:warning=cannot write {}: {e}", dest.display());
        std::process::exit(1);
    }
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "parquet") {
            files.push(path);
        }
    }
}
