//! The checkpoint, memory-mapped. Matrices stay in the file's dtype (bf16 for Llama-3.2) and are
//! widened to f32 inside the dot products, so a decode step reads half the bytes f32 would.

use std::path::Path;

use memmap2::Mmap;
use safetensors::{Dtype as StDtype, SafeTensors};
use shared_protocol::EngineError;

use crate::kernels::{widen_row, Rows};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightDtype {
    Bf16,
    F32,
}

impl std::fmt::Display for WeightDtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WeightDtype::Bf16 => "bf16",
            WeightDtype::F32 => "f32",
        })
    }
}

/// A row-major matrix inside a mapped file (`file`: which shard): `rows × cols` elements starting
/// at byte `start`.
#[derive(Debug, Clone, Copy)]
pub struct Matrix {
    pub file: usize,
    pub start: usize,
    pub rows: usize,
    pub cols: usize,
    pub dtype: WeightDtype,
}

pub struct Checkpoint {
    maps: Vec<Mmap>,
    tensors: std::collections::HashMap<String, Matrix>,
    path: String,
}

impl Checkpoint {
    /// Every weight file of the checkpoint in `dir` (one `model.safetensors`, or the shards its
    /// index names), mapped.
    pub fn open(dir: &Path) -> Result<Self, EngineError> {
        let files = checkpoint::weight_files(dir).map_err(EngineError::bad_request)?;
        let mut maps = Vec::new();
        let mut tensors = std::collections::HashMap::new();
        for (i, path) in files.iter().enumerate() {
            let display = path.display().to_string();
            let file = std::fs::File::open(path).map_err(|e| EngineError::bad_request(format!("cannot open {display}: {e}")))?;
            // SAFETY: the checkpoint is read-only for the life of the process; nothing truncates it.
            let map = unsafe { Mmap::map(&file) }.map_err(|e| EngineError::internal(format!("mmap {display}: {e}")))?;
            Self::index(&map, i, &display, &mut tensors)?;
            maps.push(map);
        }
        Ok(Checkpoint { maps, tensors, path: dir.display().to_string() })
    }

    fn index(map: &Mmap, file: usize, display: &str, tensors: &mut std::collections::HashMap<String, Matrix>) -> Result<(), EngineError> {
        let st = SafeTensors::deserialize(map).map_err(|e| EngineError::bad_request(format!("{display}: {e}")))?;
        let base = map.as_ptr() as usize;
        for (name, view) in st.tensors() {
            let dtype = match view.dtype() {
                StDtype::BF16 => WeightDtype::Bf16,
                StDtype::F32 => WeightDtype::F32,
                other => {
                    return Err(EngineError::unsupported(format!("{display}: tensor {name} is {other:?}; lm_rs reads bf16 or f32")))
                }
            };
            let shape = view.shape();
            let (rows, cols) = match shape {
                [n] => (1, *n),
                [r, c] => (*r, *c),
                _ => return Err(EngineError::unsupported(format!("{display}: tensor {name} has shape {shape:?}"))),
            };
            let start = view.data().as_ptr() as usize - base;
            let align = if dtype == WeightDtype::Bf16 { 2 } else { 4 };
            if start % align != 0 {
                return Err(EngineError::unsupported(format!("{display}: tensor {name} is not {align}-byte aligned")));
            }
            if tensors.insert(name.clone(), Matrix { file, start, rows, cols, dtype }).is_some() {
                return Err(EngineError::bad_request(format!("{display}: tensor {name} is also in another shard")));
            }
        }
        Ok(())
    }

    pub fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Matrix, EngineError> {
        let m = *self
            .tensors
            .get(name)
            .ok_or_else(|| EngineError::bad_request(format!("{}: no tensor {name}", self.path)))?;
        if (m.rows, m.cols) != (rows, cols) {
            return Err(EngineError::bad_request(format!(
                "{}: {name} is {}×{}, config.json implies {rows}×{cols}",
                self.path, m.rows, m.cols
            )));
        }
        Ok(m)
    }

    pub fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    pub fn rows(&self, m: &Matrix) -> Rows<'_> {
        let n = m.rows * m.cols;
        let bytes = &self.maps[m.file][m.start..];
        // SAFETY: alignment was checked in `open`, and the length lies inside the mapping
        // (safetensors validated the offsets).
        unsafe {
            match m.dtype {
                WeightDtype::Bf16 => Rows::Bf16(std::slice::from_raw_parts(bytes.as_ptr() as *const u16, n)),
                WeightDtype::F32 => Rows::F32(std::slice::from_raw_parts(bytes.as_ptr() as *const f32, n)),
            }
        }
    }

    /// A small vector (norm weights) widened to f32 once at load.
    pub fn vector(&self, name: &str, len: usize) -> Result<Vec<f32>, EngineError> {
        let m = self.matrix(name, 1, len)?;
        let mut v = vec![0.0; len];
        widen_row(self.rows(&m), 0, len, &mut v);
        Ok(v)
    }
}
