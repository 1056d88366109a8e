//! Every measured request of one or more runs as a polars DataFrame, one row per request, with the
//! figures each statistic is computed from. Warm-up requests are kept (flagged) so the table
//! is the whole raw data; every statistic filters them out.

use polars::prelude::*;
use rayon::prelude::*;

use crate::records::{LoadLevel, Request};
use crate::request_store::Block;
use crate::run::Run;

/// The per-request figures, their column names and units. Engine-side timings are the engine's own
/// device-synchronised ones; `client_*` and `e2e_ms` are the runner's (queueing and pipes included).
pub const METRICS: [(&str, &str); 7] = [
    ("decode_tok_s", "tok/s"),
    ("ttft_ms", "ms"),
    ("latency_ms", "ms"),
    ("tpot_ms", "ms"),
    ("output_tok_s", "tok/s"),
    ("client_ttft_ms", "ms"),
    ("e2e_ms", "ms"),
];

/// The columns that name a cell: one batch size × prompt length (or one load level) of one
/// workload of one engine in one run.
pub const CELL_KEYS: [&str; 7] = ["run", "engine", "workload", "scenario", "batch_size", "prompt_tokens", "load"];

/// Decode throughput of one request: tokens after the first, all rows, over the time they took.
pub fn decode_tok_s(r: &Request) -> Option<f64> {
    let decode_ns: u64 = r.token_ns.iter().sum();
    (decode_ns > 0).then(|| (r.batch_size * r.token_ns.len()) as f64 / (decode_ns as f64 * 1e-9))
}

/// Mean time per output token after the first.
pub fn tpot_ms(r: &Request) -> Option<f64> {
    (!r.token_ns.is_empty()).then(|| r.token_ns.iter().sum::<u64>() as f64 / r.token_ns.len() as f64 / 1e6)
}

/// Time to first token as the client saw it (queueing included).
pub fn client_ttft_ms(r: &Request) -> f64 {
    r.runner_ttft_ns.unwrap_or(r.ttft_ns + r.queue_ns) as f64 / 1e6
}

/// Every figure of [`METRICS`] for one request, in that order (one pass over its token times).
fn metrics(r: &Request) -> [Option<f64>; METRICS.len()] {
    let ms = |ns: u64| ns as f64 / 1e6;
    let decode_ns: u64 = r.token_ns.iter().sum();
    let steps = r.token_ns.len();
    [
        (decode_ns > 0).then(|| (r.batch_size * steps) as f64 / (decode_ns as f64 * 1e-9)),
        Some(ms(r.ttft_ns)),
        Some(ms(r.total_ns)),
        (steps > 0).then(|| decode_ns as f64 / steps as f64 / 1e6),
        (r.total_ns > 0).then(|| r.generated_tokens as f64 / (r.total_ns as f64 * 1e-9)),
        Some(client_ttft_ms(r)),
        Some(ms(r.runner_total_ns)),
    ]
}

/// Columns that name things: a few distinct values over a million rows, stored as Categorical.
const NAME_COLUMNS: [&str; 7] = ["run", "engine", "workload", "scenario", "device", "dtype", "load"];
const INT_COLUMNS: [&str; 6] = ["batch_size", "prompt_tokens", "max_new_tokens", "iteration", "generated_tokens", "unix_ms"];

/// Distinct values in the order they first appear, and each row's index among them.
#[derive(Default)]
struct Names<'a> {
    distinct: Vec<&'a str>,
    codes: Vec<u32>,
}

impl<'a> Names<'a> {
    fn push(&mut self, v: &'a str) {
        // Rows of one cell come together: the previous row's value is almost always this one.
        let code = match self.codes.last() {
            Some(&c) if self.distinct[c as usize] == v => c,
            _ => self.code(v),
        };
        self.codes.push(code);
    }

    fn code(&mut self, v: &'a str) -> u32 {
        (self.distinct.iter().position(|d| *d == v).unwrap_or_else(|| {
            self.distinct.push(v);
            self.distinct.len() - 1
        })) as u32
    }
}

/// Every column of a stretch of rows, filled in one pass over its records: a million records are
/// most of a gigabyte, and a pass per column would read them twenty times.
struct Part<'a> {
    names: [Names<'a>; NAME_COLUMNS.len()],
    ints: [Vec<u64>; INT_COLUMNS.len()],
    warmup: Vec<bool>,
    /// The send offsets, then the figures of [`METRICS`].
    floats: [Floats; METRICS.len() + 1],
}

/// A float column of a part: its values (0 where null) and the rows that are null, which are few.
/// Fresh memory is slow to come by: eight bytes a row, not the sixteen of an `Option<f64>`.
struct Floats {
    values: Vec<f64>,
    nulls: Vec<usize>,
}

impl Floats {
    fn push(&mut self, v: Option<f64>) {
        if v.is_none() {
            self.nulls.push(self.values.len());
        }
        self.values.push(v.unwrap_or(0.0));
    }
}

/// One row per request of every run given.
pub fn frame(runs: &[&Run]) -> PolarsResult<DataFrame> {
    // The runs' blocks of requests, each filled into a part in parallel.
    let blocks: Vec<(&str, &Block)> = runs.iter().flat_map(|run| run.requests.blocks().iter().map(move |b| (run.id.as_str(), b))).collect();
    let n: usize = runs.iter().map(|run| run.requests.len()).sum();
    // A handful of load levels: label each once.
    let mut labels: Vec<(LoadLevel, String)> = Vec::new();
    for l in runs.iter().flat_map(|run| run.requests.iter().filter_map(|r| r.load)) {
        if !labels.iter().any(|(x, _)| *x == l) {
            labels.push((l, l.label()));
        }
    }
    let label = |l: Option<LoadLevel>| l.and_then(|l| labels.iter().find(|(x, _)| *x == l)).map_or("", |(_, s)| s.as_str());
    let parts: Vec<Part> = blocks
        .par_iter()
        .map(|&(id, block)| {
            let n = block.len();
            let mut p = Part {
                names: std::array::from_fn(|_| Names { distinct: Vec::new(), codes: Vec::with_capacity(n) }),
                ints: std::array::from_fn(|_| Vec::with_capacity(n)),
                warmup: Vec::with_capacity(n),
                floats: std::array::from_fn(|_| Floats { values: Vec::with_capacity(n), nulls: Vec::new() }),
            };
            for r in block.iter() {
                for (names, v) in p.names.iter_mut().zip([id, r.engine, r.workload, r.scenario, r.device, r.dtype, label(r.load)]) {
                    names.push(v);
                }
                let ints = [r.batch_size as u64, r.prompt_tokens as u64, r.max_new_tokens as u64, r.iteration as u64, r.generated_tokens as u64];
                for (col, v) in p.ints.iter_mut().zip(ints.into_iter().chain([r.unix_ms as u64])) {
                    col.push(v);
                }
                p.warmup.push(r.warmup);
                let figures = std::iter::once(r.sent_offset_ns.map(|o| o as f64 * 1e-9)).chain(metrics(&r));
                for (col, v) in p.floats.iter_mut().zip(figures) {
                    col.push(v);
                }
            }
            p
        })
        .collect();
    // The parts joined column by column, the columns in parallel.
    let name = |k: usize| -> PolarsResult<Column> {
        let mut all = Names::default();
        let mut codes = Vec::with_capacity(n);
        for p in &parts {
            let global: Vec<u32> = p.names[k].distinct.iter().map(|v| all.code(v)).collect();
            codes.extend(p.names[k].codes.iter().map(|&c| global[c as usize]));
        }
        categorical(NAME_COLUMNS[k], &all.distinct, codes)
    };
    fn joined<'p, T: Copy + 'p>(parts: &'p [Part], n: usize, of: impl Fn(&'p Part) -> &'p [T]) -> Vec<T> {
        let mut all = Vec::with_capacity(n);
        for p in parts {
            all.extend_from_slice(of(p));
        }
        all
    }
    let int = |k: usize| Column::new(INT_COLUMNS[k].into(), joined(&parts, n, |p| &p.ints[k]));
    let float = |name: &str, k: usize| {
        let values = joined(&parts, n, |p| &p.floats[k].values);
        if parts.iter().all(|p| p.floats[k].nulls.is_empty()) {
            // The values move into the column as they are.
            return Float64Chunked::from_vec(name.into(), values).into_column();
        }
        let mut valid = vec![true; n];
        let mut offset = 0;
        for p in &parts {
            p.floats[k].nulls.iter().for_each(|&i| valid[offset + i] = false);
            offset += p.floats[k].values.len();
        }
        Float64Chunked::from_iter_options(name.into(), values.iter().zip(valid).map(|(&v, ok)| ok.then_some(v))).into_column()
    };
    type Build<'b> = Box<dyn Fn() -> PolarsResult<Column> + Send + Sync + 'b>;
    let mut builds: Vec<Build> = Vec::new();
    for k in 0..6 {
        builds.push(Box::new(move || name(k)));
    }
    for k in 0..3 {
        builds.push(Box::new(move || Ok(int(k))));
    }
    builds.push(Box::new(move || name(6)));
    builds.push(Box::new(|| Ok(Column::new("warmup".into(), joined(&parts, n, |p| &p.warmup)))));
    for k in 3..5 {
        builds.push(Box::new(move || Ok(int(k))));
    }
    builds.push(Box::new(move || Ok(float("sent_offset_s", 0))));
    builds.push(Box::new(move || Ok(int(5))));
    for (j, (metric, _)) in METRICS.iter().enumerate() {
        builds.push(Box::new(move || Ok(float(metric, j + 1))));
    }
    let columns = builds.par_iter().map(|b| b()).collect::<PolarsResult<Vec<Column>>>()?;
    DataFrame::new_infer_height(columns)
}

/// A column of names as a polars Categorical: `distinct` values, one code into them per row.
fn categorical(name: &str, distinct: &[&str], codes: Vec<u32>) -> PolarsResult<Column> {
    // polars' global categories (`pl.Categorical`), whose codes are u32: this build of polars has
    // no 8- or 16-bit integers, which an Enum of a few values would be stored in.
    let dtype = DataType::from_categories(Categories::global());
    let DataType::Categorical(_, mapping) = &dtype else { unreachable!("from_categories gives a Categorical") };
    let ids: Vec<u32> = distinct.iter().map(|d| mapping.insert_cat(d)).collect::<PolarsResult<_>>()?;
    let codes = UInt32Chunked::from_vec(name.into(), codes.into_iter().map(|c| ids[c as usize]).collect());
    // SAFETY: every code is an id the mapping itself just gave.
    Ok(unsafe { CategoricalChunked::<Categorical32Type>::from_cats_and_dtype_unchecked(codes, dtype) }.into_series().into_column())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::records::RequestRecord;

    pub fn request(engine: &str, batch: usize, ttft_ms: u64, token_ms: &[u64]) -> RequestRecord {
        let token_ns: Vec<u64> = token_ms.iter().map(|t| t * 1_000_000).collect();
        let total_ns = ttft_ms * 1_000_000 + token_ns.iter().sum::<u64>();
        RequestRecord {
            schema: 1,
            engine: engine.into(),
            workload: "latency".into(),
            scenario: "latency".into(),
            device: "cpu".into(),
            dtype: "f32".into(),
            batch_size: batch,
            prompt_tokens: 16,
            max_new_tokens: token_ms.len() + 1,
            warmup: false,
            iteration: 0,
            generated_tokens: batch * (token_ms.len() + 1),
            queue_ns: 0,
            ttft_ns: ttft_ms * 1_000_000,
            token_ns,
            total_ns,
            runner_ttft_ns: None,
            runner_total_ns: total_ns + 1_000_000,
            load: None,
            sent_offset_ns: None,
            unix_ms: 0,
        }
    }

    fn run(id: &str, requests: Vec<RequestRecord>) -> Run {
        Run {
            dir: id.into(),
            id: id.into(),
            config: Default::default(),
            environment: serde_json::Value::Null,
            requests: requests.into(),
            cells: vec![],
            failures: vec![],
            correctness: vec![],
            engines: vec![],
            monitor: vec![],
            bandwidth_probe: None,
        }
    }

    #[test]
    fn every_row_and_cell_holds_its_records_values() {
        // Two runs, more rows than one part of the single pass (65,536), cells interleaved with
        // warm-up rows and a load level, a request with no decode step (null decode rate).
        let mut a = Vec::new();
        for i in 0..70_000u64 {
            let engine = if i % 3 == 0 { "candle_cuda" } else { "pytorch_baseline" };
            let mut r = request(engine, 1 + (i % 2) as usize, 5 + i % 7, &[10 + i % 5, 20]);
            r.warmup = i % 10 == 0;
            r.iteration = i as usize;
            r.load = (i >= 60_000).then_some(LoadLevel::Open { rate_per_s: 2.0 });
            a.push(r);
        }
        a[5].token_ns.clear();
        a[66_000].token_ns.clear();
        let b = vec![request("lm_rs", 1, 9, &[30, 30, 30])];
        let (ra, rb) = (run("run-a", a), run("run-b", b));
        let df = frame(&[&ra, &rb]).unwrap();
        assert!(ra.requests.blocks().len() > 1, "the frame is built block by block");
        let records: Vec<(&str, Request)> = ra.requests.iter().map(|r| ("run-a", r)).chain(rb.requests.iter().map(|r| ("run-b", r))).collect();
        assert_eq!(df.height(), records.len());
        let text = |c: &str| df.column(c).unwrap().cast(&DataType::String).unwrap().str().unwrap().iter().map(|v| v.unwrap().to_string()).collect::<Vec<_>>();
        let (runs, engines, loads) = (text("run"), text("engine"), text("load"));
        let iterations = df.column("iteration").unwrap().u64().unwrap().to_vec_null_aware().left().unwrap();
        let decode = df.column("decode_tok_s").unwrap().f64().unwrap().to_vec();
        let warmup: Vec<Option<bool>> = df.column("warmup").unwrap().bool().unwrap().iter().collect();
        for (i, (id, r)) in records.iter().enumerate() {
            assert_eq!((runs[i].as_str(), engines[i].as_str()), (*id, r.engine), "row {i}");
            assert_eq!(loads[i], r.load.map(|l| l.label()).unwrap_or_default(), "row {i}");
            assert_eq!(iterations[i], r.iteration as u64);
            assert_eq!(decode[i], decode_tok_s(r), "row {i}");
            assert_eq!(warmup[i], Some(r.warmup));
        }
        assert_eq!((decode[5], decode[66_000]), (None, None));
        // Cells: measured rows only, grouped by key, in the order each cell first appears.
        let cells = crate::cells::samples(&df).unwrap();
        let mut expected: Vec<(crate::cells::CellKey, Vec<f64>)> = Vec::new();
        for (id, r) in records.iter().filter(|(_, r)| !r.warmup) {
            let key = crate::cells::CellKey {
                run: id.to_string(),
                engine: r.engine.to_string(),
                workload: r.workload.to_string(),
                scenario: r.scenario.to_string(),
                batch_size: r.batch_size as u64,
                prompt_tokens: r.prompt_tokens as u64,
                load: r.load.map(|l| l.label()).unwrap_or_default(),
            };
            match expected.iter_mut().find(|(k, _)| *k == key) {
                Some((_, v)) => v.push(metrics(r)[1].unwrap()),
                None => expected.push((key, vec![metrics(r)[1].unwrap()])),
            }
        }
        assert_eq!(cells.len(), expected.len());
        for ((key, values), (k, ttft)) in cells.iter().zip(&expected) {
            assert_eq!((key, &values[1]), (k, ttft));
        }
    }

    #[test]
    fn per_request_figures() {
        // 2 rows × 2 decode steps in 40 ms = 100 tok/s; 6 tokens in 45 ms.
        let record = request("e", 2, 5, &[10, 30]);
        let r = Request::from(&record);
        let metric = |r: &Request, name: &str| metrics(r)[METRICS.iter().position(|(m, _)| *m == name).unwrap()];
        assert!((decode_tok_s(&r).unwrap() - 100.0).abs() < 1e-9);
        assert_eq!(metric(&r, "decode_tok_s"), decode_tok_s(&r));
        assert_eq!(metric(&r, "tpot_ms"), tpot_ms(&r));
        assert_eq!(metric(&r, "ttft_ms"), Some(5.0));
        assert!((metric(&r, "output_tok_s").unwrap() - 6.0 / 0.045).abs() < 1e-9);
        assert_eq!(tpot_ms(&r), Some(20.0));
        assert_eq!(metric(&r, "e2e_ms"), Some(46.0));
        // One token only: no decode phase, no decode rate.
        assert_eq!(decode_tok_s(&Request::from(&request("e", 1, 5, &[]))), None);
    }
}
