//! Copies the ECharts script that the `charming` crate ships (the one its own renderers use) into
//! OUT_DIR, so reports inline exactly the version charming's option types are written for. Cargo
//! knows where the crate's sources are; `cargo metadata` says.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let cargo = std::env::var("CARGO").expect("CARGO is set for build scripts");
    let manifest = std::env::var("CARGO_MANIFEST_PATH").expect("CARGO_MANIFEST_PATH is set for build scripts");
    // For this target only. Offline first: a build of the whole workspace has every package it
    // names already; a build of this crate alone may not, and then cargo may fetch the rest.
    let target = std::env::var("TARGET").expect("TARGET is set for build scripts");
    let metadata = |offline: bool| {
        let mut cmd = Command::new(&cargo);
        cmd.args(["metadata", "--format-version", "1", "--filter-platform", &target, "--manifest-path", &manifest]);
        if offline {
            cmd.arg("--offline");
        }
        cmd.output().expect("running cargo metadata")
    };
    let mut out = metadata(true);
    if !out.status.success() {
        out = metadata(false);
    }
    assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cargo metadata's JSON");
    let charming = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "charming")
        .expect("charming is a dependency of html-report");
    let dir = PathBuf::from(charming["manifest_path"].as_str().expect("a manifest path")).parent().unwrap().join("src/asset");
    let script = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("echarts-") && n.ends_with(".min.js")))
        .unwrap_or_else(|| panic!("{}: no echarts-*.min.js (has charming {} moved it?)", dir.display(), charming["version"]));
    let version = script.file_name().unwrap().to_str().unwrap().trim_start_matches("echarts-").trim_end_matches(".min.js").to_string();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::copy(&script, out_dir.join("echarts.min.js")).expect("copying the ECharts script");
    println!("cargo:rustc-env=ECHARTS_VERSION={version}");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");
}
