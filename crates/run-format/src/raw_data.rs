//! The writer of `raw_data/<stream>.jsonl`: one record per line, flushed as it is measured.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Appends records to `raw_data/<stream>.jsonl`, flushing each one.
pub struct RawData {
    dir: PathBuf,
    files: HashMap<&'static str, File>,
}

impl RawData {
    pub fn create(dir: &Path) -> std::io::Result<RawData> {
        std::fs::create_dir_all(dir)?;
        Ok(RawData { dir: dir.to_path_buf(), files: HashMap::new() })
    }

    pub fn append<T: Serialize>(&mut self, stream: &'static str, record: &T) -> std::io::Result<()> {
        if !self.files.contains_key(stream) {
            let f = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join(format!("{stream}.jsonl")))?;
            self.files.insert(stream, f);
        }
        let f = self.files.get_mut(stream).expect("inserted above");
        let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        line.push(b'\n');
        f.write_all(&line)?;
        f.flush()
    }
}
