//! Where a run's checkpoint comes from. `benchmark.model_path` (or `--model`) is either a
//! checkpoint directory or a model name: a name is looked for as `models/<name>` (a real
//! checkpoint put there by the user), and failing that stands for a synthetic checkpoint of the
//! same shapes, `models/<preset>-synthetic`, written on demand. The run records which it was.

use std::path::{Path, PathBuf};

use anyhow::Context;
use model_synth::Preset;
use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// A directory was named.
    Path,
    /// A model name, found as `models/<name>`.
    Found,
    /// A model name with no `models/<name>`: the synthetic checkpoint of its shapes.
    SyntheticFallback(Preset),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelSource {
    /// What the config (or `--model`) said.
    pub requested: String,
    /// The checkpoint directory used.
    pub path: PathBuf,
    pub origin: Origin,
    /// The directories looked at, in order (a name only).
    pub searched: Vec<PathBuf>,
}

/// A bare name (`Llama-3.2-1B-Instruct`), not a path (`./models/x`, `models/x`, `/abs/x`).
fn is_name(requested: &str) -> bool {
    let p = Path::new(requested);
    !requested.is_empty() && !p.is_absolute() && p.components().count() == 1 && !requested.starts_with('.')
}

fn holds_checkpoint(dir: &Path) -> bool {
    dir.join("config.json").is_file()
}

/// Resolves `requested` against the repository `root`; an error says what was looked for.
pub fn resolve(requested: &str, root: &Path) -> Result<ModelSource, String> {
    if !is_name(requested) {
        let p = Path::new(requested);
        let path = if p.is_relative() { root.join(p.strip_prefix(".").unwrap_or(p)) } else { p.to_path_buf() };
        return Ok(ModelSource { requested: requested.into(), path, origin: Origin::Path, searched: vec![] });
    }
    let own = root.join("models").join(requested);
    let mut searched = vec![own.clone()];
    if holds_checkpoint(&own) {
        return Ok(ModelSource { requested: requested.into(), path: own, origin: Origin::Found, searched });
    }
    let Some(preset) = Preset::of_model(requested) else {
        let known: Vec<&str> = Preset::ALL.iter().flat_map(|p| p.model_names().iter().copied()).collect();
        return Err(format!(
            "`{requested}` is a model name, but {} holds no checkpoint (no config.json) and it is not a model whose shapes \
             this suite can synthesise (known: {}); name a checkpoint directory instead (e.g. `./models/{requested}`)",
            own.display(),
            known.join(", ")
        ));
    };
    let path = root.join("models").join(preset.synthetic_dir());
    if path != own {
        searched.push(path.clone());
    }
    Ok(ModelSource { requested: requested.into(), path, origin: Origin::SyntheticFallback(preset), searched })
}

impl ModelSource {
    /// Whether the checkpoint is missing and will be written by [`ModelSource::ensure`].
    pub fn written_on_demand(&self) -> bool {
        matches!(self.origin, Origin::SyntheticFallback(_)) && !holds_checkpoint(&self.path)
    }

    /// Writes the synthetic checkpoint when it is the one used and missing. It is written beside
    /// its final place and renamed into it, so an interrupted write never leaves a checkpoint
    /// that looks whole.
    pub fn ensure(&self) -> anyhow::Result<()> {
        let Origin::SyntheticFallback(preset) = self.origin else { return Ok(()) };
        if holds_checkpoint(&self.path) {
            return Ok(());
        }
        let partial = self.path.with_extension(format!("partial-{}", std::process::id()));
        let started = std::time::Instant::now();
        eprintln!(
            "{}: no models/{}; writing the synthetic checkpoint of its shapes (preset {}) to {}",
            self.requested,
            self.requested,
            preset.name(),
            self.path.display()
        );
        model_synth::synthesize(preset, model_synth::DEFAULT_SEED, &partial)
            .with_context(|| format!("writing the synthetic {} checkpoint", preset.name()))?;
        if let Err(e) = std::fs::rename(&partial, &self.path) {
            // Another runner of the same call (GPU_SPLIT) may have finished the same checkpoint first.
            let _ = std::fs::remove_dir_all(&partial);
            anyhow::ensure!(holds_checkpoint(&self.path), "moving {} to {}: {e}", partial.display(), self.path.display());
        }
        eprintln!("wrote {} in {:.1} s", self.path.display(), started.elapsed().as_secs_f64());
        Ok(())
    }

    /// What environment.json records under `checkpoint.source`.
    pub fn record(&self) -> Value {
        json!({
            "requested": self.requested,
            "resolved_by": match self.origin {
                Origin::Path => "a checkpoint directory was named",
                Origin::Found => "a model name, found under models/",
                Origin::SyntheticFallback(_) => "a model name with no checkpoint under models/: the synthetic checkpoint of its shapes",
            },
            "searched": self.searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint_at(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("config.json"), "{}").unwrap();
    }

    #[test]
    fn a_path_is_used_as_given_relative_to_the_root() {
        let s = resolve("./models/tiny", Path::new("/repo")).unwrap();
        assert_eq!((s.path, s.origin), (PathBuf::from("/repo/models/tiny"), Origin::Path));
        assert_eq!(resolve("/abs/ckpt", Path::new("/repo")).unwrap().path, PathBuf::from("/abs/ckpt"));
        assert_eq!(resolve("models/x", Path::new("/repo")).unwrap().origin, Origin::Path);
    }

    #[test]
    fn a_name_prefers_the_real_checkpoint_under_models() {
        let root = tempfile::tempdir().unwrap();
        let s = resolve("Llama-3.2-1B-Instruct", root.path()).unwrap();
        assert_eq!(s.origin, Origin::SyntheticFallback(Preset::Llama32_1b));
        assert_eq!(s.path, root.path().join("models/llama-3.2-1b-synthetic"));
        assert_eq!(s.searched.len(), 2);
        assert!(s.written_on_demand());

        checkpoint_at(&root.path().join("models/Llama-3.2-1B-Instruct"));
        let s = resolve("Llama-3.2-1B-Instruct", root.path()).unwrap();
        assert_eq!((s.origin, s.path), (Origin::Found, root.path().join("models/Llama-3.2-1B-Instruct")));
    }

    #[test]
    fn an_unknown_name_with_no_checkpoint_is_refused_with_what_was_searched() {
        let root = tempfile::tempdir().unwrap();
        let e = resolve("Mixtral-8x7B", root.path()).unwrap_err();
        assert!(e.contains("models/Mixtral-8x7B") && e.contains("Llama-3.1-8B-Instruct"), "{e}");
    }

    #[test]
    fn the_synthetic_fallback_is_written_once_and_then_found() {
        let root = tempfile::tempdir().unwrap();
        let s = resolve("tiny", root.path()).unwrap();
        assert!(s.written_on_demand());
        s.ensure().unwrap();
        assert!(!s.written_on_demand());
        assert!(checkpoint::weight_files(&s.path).is_ok());
        // Nothing partial is left beside it.
        let left: Vec<_> = std::fs::read_dir(root.path().join("models")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("tiny")]);
        // Now `models/tiny` exists, so the name finds it.
        assert_eq!(resolve("tiny", root.path()).unwrap().origin, Origin::Found);
    }
}
