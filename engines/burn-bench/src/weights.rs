//! The checkpoint (`model.safetensors`, or the shards its index names), memory-mapped. Each tensor is decoded once at load into a
//! host buffer of the compute dtype (bf16 and f16 widen exactly to f32; bf16 stays bf16 when that is
//! the compute dtype), optionally transposed, and handed to burn as `TensorData`.

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::{bf16, DType, TensorData};
use memmap2::Mmap;
use safetensors::{Dtype as StDtype, SafeTensors};
use shared_protocol::EngineError;

#[derive(Debug, Clone)]
struct Entry {
    dtype: StDtype,
    shape: Vec<usize>,
    /// Which shard's mapping, and the byte range inside it.
    file: usize,
    start: usize,
    end: usize,
}

pub struct Checkpoint {
    maps: Vec<Mmap>,
    entries: HashMap<String, Entry>,
    path: String,
}

impl Checkpoint {
    /// Every weight file of the checkpoint in `dir`, mapped.
    pub fn open(dir: &Path) -> Result<Self, EngineError> {
        let files = checkpoint::weight_files(dir).map_err(EngineError::bad_request)?;
        let mut maps = Vec::new();
        let mut entries = HashMap::new();
        for (file, path) in files.iter().enumerate() {
            let display = path.display().to_string();
            let f = std::fs::File::open(path).map_err(|e| EngineError::bad_request(format!("cannot open {display}: {e}")))?;
            // SAFETY: the checkpoint is only read, and nothing truncates it while the engine runs.
            let map = unsafe { Mmap::map(&f) }.map_err(|e| EngineError::internal(format!("mmap {display}: {e}")))?;
            let st = SafeTensors::deserialize(&map).map_err(|e| EngineError::bad_request(format!("{display}: {e}")))?;
            let base = map.as_ptr() as usize;
            for (name, view) in st.tensors() {
                match view.dtype() {
                    StDtype::BF16 | StDtype::F16 | StDtype::F32 => {}
                    other => {
                        return Err(EngineError::unsupported(format!(
                            "{display}: tensor {name} is {other:?}; burn-bench reads bf16, f16 or f32"
                        )))
                    }
                }
                let start = view.data().as_ptr() as usize - base;
                let end = start + view.data().len();
                let entry = Entry { dtype: view.dtype(), shape: view.shape().to_vec(), file, start, end };
                if entries.insert(name.clone(), entry).is_some() {
                    return Err(EngineError::bad_request(format!("{display}: tensor {name} is also in another shard")));
                }
            }
            drop(st);
            maps.push(map);
        }
        Ok(Checkpoint { maps, entries, path: dir.display().to_string() })
    }

    pub fn has(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// The file's dtype of a tensor (for `info().settings`).
    pub fn file_dtype(&self, name: &str) -> Option<String> {
        self.entries.get(name).map(|e| format!("{:?}", e.dtype).to_lowercase())
    }

    fn entry(&self, name: &str, shape: &[usize]) -> Result<&Entry, EngineError> {
        let e = self
            .entries
            .get(name)
            .ok_or_else(|| EngineError::bad_request(format!("{}: no tensor {name}", self.path)))?;
        if e.shape != shape {
            return Err(EngineError::bad_request(format!(
                "{}: {name} has shape {:?}, config.json implies {shape:?}",
                self.path, e.shape
            )));
        }
        Ok(e)
    }

    /// The tensor widened to f32, row-major as stored.
    fn widen(&self, e: &Entry) -> Vec<f32> {
        let bytes = &self.maps[e.file][e.start..e.end];
        match e.dtype {
            StDtype::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            StDtype::BF16 => {
                bytes.chunks_exact(2).map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16)).collect()
            }
            StDtype::F16 => {
                bytes.chunks_exact(2).map(|b| burn::tensor::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()).collect()
            }
            _ => unreachable!("checked in open"),
        }
    }

    /// `name` (of the given shape) as host data in `dtype`. With `transpose`, a `[rows, cols]`
    /// matrix comes back as `[cols, rows]`, contiguous.
    pub fn data(&self, name: &str, shape: &[usize], transpose: bool, dtype: DType) -> Result<TensorData, EngineError> {
        let e = self.entry(name, shape)?;
        let mut values = self.widen(e);
        let mut shape = shape.to_vec();
        if transpose {
            let [rows, cols] = shape[..] else {
                return Err(EngineError::internal(format!("transpose of {name}, which is not a matrix")));
            };
            let mut t = vec![0f32; values.len()];
            // Blocked, so that both sides stay in cache for large matrices.
            const BLOCK: usize = 64;
            for r0 in (0..rows).step_by(BLOCK) {
                for c0 in (0..cols).step_by(BLOCK) {
                    for r in r0..(r0 + BLOCK).min(rows) {
                        for c in c0..(c0 + BLOCK).min(cols) {
                            t[c * rows + r] = values[r * cols + c];
                        }
                    }
                }
            }
            values = t;
            shape = vec![cols, rows];
        }
        Ok(match dtype {
            DType::BF16 => TensorData::new(values.into_iter().map(bf16::from_f32).collect::<Vec<_>>(), shape),
            DType::F16 => TensorData::new(values.into_iter().map(burn::tensor::f16::from_f32).collect::<Vec<_>>(), shape),
            _ => TensorData::new(values, shape),
        })
    }
}
