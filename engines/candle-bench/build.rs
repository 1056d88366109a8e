//! Records the candle version resolved in Cargo.lock, so `ready` can report the exact library version.

fn main() {
    println!("cargo:rerun-if-changed=Cargo.lock");
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    let mut version = "unknown".to_string();
    let mut in_candle = false;
    for line in lock.lines() {
        if line == "[[package]]" {
            in_candle = false;
        } else if line == "name = \"candle-core\"" {
            in_candle = true;
        } else if in_candle {
            if let Some(v) = line.strip_prefix("version = \"").and_then(|v| v.strip_suffix('"')) {
                version = v.to_string();
                break;
            }
        }
    }
    println!("cargo:rustc-env=CANDLE_VERSION={version}");
}
