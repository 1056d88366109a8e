//! Records the mistralrs version resolved in Cargo.lock, so `ready` reports the exact library version.

fn main() {
    println!("cargo:rerun-if-changed=Cargo.lock");
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    let mut version = "unknown".to_string();
    let mut in_package = false;
    for line in lock.lines() {
        if line == "[[package]]" {
            in_package = false;
        } else if line == "name = \"mistralrs\"" {
            in_package = true;
        } else if in_package {
            if let Some(v) = line.strip_prefix("version = \"").and_then(|v| v.strip_suffix('"')) {
                version = v.to_string();
                break;
            }
        }
    }
    println!("cargo:rustc-env=MISTRALRS_VERSION={version}");
}
