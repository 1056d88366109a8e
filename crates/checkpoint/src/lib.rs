//! A Llama checkpoint directory in the Hugging Face layout, as users have it. One reader for the
//! runner and every Rust engine, so no two of them disagree about which files a checkpoint is or
//! what model its config.json describes.

use std::path::{Path, PathBuf};

mod config;
pub use config::{in_transformers_4_form, Llama3Rope, LlamaConfig};

fn ensure(ok: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(why()) }
}

/// The safetensors files of a checkpoint directory: `model.safetensors`, or every shard that
/// `model.safetensors.index.json`'s `weight_map` names (each must exist), in name order.
pub fn weight_files(model: &Path) -> Result<Vec<PathBuf>, String> {
    let single = model.join("model.safetensors");
    let index = model.join("model.safetensors.index.json");
    if !index.is_file() {
        ensure(single.is_file(), || format!("{} has neither model.safetensors nor model.safetensors.index.json", model.display()))?;
        return Ok(vec![single]);
    }
    let text = std::fs::read_to_string(&index).map_err(|e| format!("reading {}: {e}", index.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", index.display()))?;
    let map = json.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| format!("{}: no `weight_map` object", index.display()))?;
    let mut files: Vec<String> = Vec::new();
    for (tensor, file) in map {
        let file = file.as_str().ok_or_else(|| format!("{}: weight_map.{tensor} is not a file name", index.display()))?;
        ensure(!file.contains('/') && !file.contains('\\'), || format!("{}: weight_map.{tensor} = {file:?} leaves the checkpoint folder", index.display()))?;
        if !files.iter().any(|f| f == file) {
            files.push(file.to_string());
        }
    }
    ensure(!files.is_empty(), || format!("{}: weight_map is empty", index.display()))?;
    files.sort();
    let paths: Vec<PathBuf> = files.iter().map(|f| model.join(f)).collect();
    for (p, f) in paths.iter().zip(&files) {
        ensure(p.is_file(), || format!("{}: names shard {f}, which is not in {}", index.display(), model.display()))?;
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_files_are_the_single_file_or_every_shard_the_index_names() {
        let dir = std::env::temp_dir().join(format!("weight-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let err = weight_files(&dir).unwrap_err().to_string();
        assert!(err.contains("neither model.safetensors nor model.safetensors.index.json"), "{err}");
        std::fs::write(dir.join("model.safetensors"), "").unwrap();
        assert_eq!(weight_files(&dir).unwrap(), vec![dir.join("model.safetensors")]);
        let index = r#"{"metadata": {}, "weight_map": {"b": "model-00002-of-00002.safetensors", "a": "model-00001-of-00002.safetensors", "c": "model-00001-of-00002.safetensors"}}"#;
        std::fs::write(dir.join("model.safetensors.index.json"), index).unwrap();
        std::fs::write(dir.join("model-00001-of-00002.safetensors"), "").unwrap();
        let err = weight_files(&dir).unwrap_err().to_string();
        assert!(err.contains("names shard model-00002-of-00002.safetensors, which is not in"), "{err}");
        std::fs::write(dir.join("model-00002-of-00002.safetensors"), "").unwrap();
        assert_eq!(weight_files(&dir).unwrap(), vec![dir.join("model-00001-of-00002.safetensors"), dir.join("model-00002-of-00002.safetensors")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

}
