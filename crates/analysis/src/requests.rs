//! Every measured request of one or more runs as a polars DataFrame, one row per request, with the
//! figures each statistic is computed from. Warm-up requests are kept (flagged) so the table
//! is the whole raw data; every statistic filters them out.

use polars::prelude::*;
use rayon::prelude::*;

use crate::run::Run;
use run_format::records::LoadLevel;
use run_format::request_store::Block;
use run_format::Request;

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

/// A measured request of a latency or throughput cell: the requests per-cell figures are made of
/// (warm-ups, concurrent load levels and memory cells have figures of their own).
pub fn in_static_cell(r: &Request) -> bool {
    !r.warmup && matches!(r.scenario, "latency" | "throughput")
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

/// Distinct values in the order they first appear.
#[derive(Default)]
struct Distinct<'a>(Vec<&'a str>);

impl<'a> Distinct<'a> {
    fn code(&mut self, v: &'a str) -> u32 {
        (self.0.iter().position(|d| *d == v).unwrap_or_else(|| {
            self.0.push(v);
            self.0.len() - 1
        })) as u32
    }
}

/// One block's share of every column, filled in one pass over its requests (a pass per column
/// would read a million requests twenty times).
struct Slots<'c> {
    /// Codes into the block's own distinct names until the blocks are merged.
    names: [&'c mut [u32]; NAME_COLUMNS.len()],
    ints: [&'c mut [u64]; INT_COLUMNS.len()],
    warmup: &'c mut [bool],
    /// The send offsets, then the figures of [`METRICS`]; 0 where null.
    floats: [&'c mut [f64]; METRICS.len() + 1],
}

/// `v` cut into consecutive pieces of the given lengths.
fn split<'c, T>(mut v: &'c mut [T], lens: &[usize]) -> std::vec::IntoIter<&'c mut [T]> {
    let mut pieces = Vec::with_capacity(lens.len());
    for &n in lens {
        let (head, tail) = std::mem::take(&mut v).split_at_mut(n);
        pieces.push(head);
        v = tail;
    }
    pieces.into_iter()
}

/// One row per request of every run given.
pub fn frame(runs: &[&Run]) -> PolarsResult<DataFrame> {
    // The runs' blocks of requests fill their own stretch of each column, in parallel: the
    // columns are allocated once, whole, and moved into polars as they are.
    let blocks: Vec<(&str, &Block)> = runs.iter().flat_map(|run| run.requests.blocks().iter().map(move |b| (run.id.as_str(), b))).collect();
    let lens: Vec<usize> = blocks.iter().map(|(_, b)| b.len()).collect();
    let n: usize = lens.iter().sum();
    // A handful of load levels: label each once.
    let mut labels: Vec<(LoadLevel, String)> = Vec::new();
    for l in blocks.iter().flat_map(|(_, b)| b.loads()).flatten() {
        if !labels.iter().any(|(x, _)| *x == l) {
            labels.push((l, l.label()));
        }
    }
    let label = |l: Option<LoadLevel>| l.and_then(|l| labels.iter().find(|(x, _)| *x == l)).map_or("", |(_, s)| s.as_str());
    let mut names: [Vec<u32>; NAME_COLUMNS.len()] = std::array::from_fn(|_| vec![0; n]);
    let mut ints: [Vec<u64>; INT_COLUMNS.len()] = std::array::from_fn(|_| vec![0; n]);
    let mut warmup = vec![false; n];
    let mut floats: [Vec<f64>; METRICS.len() + 1] = std::array::from_fn(|_| vec![0.0; n]);
    let mut name_pieces: Vec<_> = names.iter_mut().map(|c| split(c, &lens)).collect();
    let mut int_pieces: Vec<_> = ints.iter_mut().map(|c| split(c, &lens)).collect();
    let mut warmup_pieces = split(&mut warmup, &lens);
    let mut float_pieces: Vec<_> = floats.iter_mut().map(|c| split(c, &lens)).collect();
    let slots: Vec<Slots> = (0..blocks.len())
        .map(|_| Slots {
            names: std::array::from_fn(|k| name_pieces[k].next().expect("a piece per block")),
            ints: std::array::from_fn(|k| int_pieces[k].next().expect("a piece per block")),
            warmup: warmup_pieces.next().expect("a piece per block"),
            floats: std::array::from_fn(|k| float_pieces[k].next().expect("a piece per block")),
        })
        .collect();
    // Per block: its distinct names per column, and its null rows per float column.
    type Filled<'a> = ([Distinct<'a>; NAME_COLUMNS.len()], [Vec<usize>; METRICS.len() + 1]);
    let filled: Vec<Filled> = blocks
        .par_iter()
        .zip(slots)
        .map(|(&(id, block), s)| {
            let mut distinct: [Distinct; NAME_COLUMNS.len()] = Default::default();
            let mut nulls: [Vec<usize>; METRICS.len() + 1] = Default::default();
            for (i, r) in block.iter().enumerate() {
                for (k, v) in [id, r.engine, r.workload, r.scenario, r.device, r.dtype, label(r.load)].into_iter().enumerate() {
                    // Rows of one cell come together: the previous row's value is almost always this one.
                    let previous = i.checked_sub(1).map(|p| s.names[k][p]);
                    s.names[k][i] = match previous {
                        Some(c) if distinct[k].0[c as usize] == v => c,
                        _ => distinct[k].code(v),
                    };
                }
                let values = [
                    r.batch_size as u64,
                    r.prompt_tokens as u64,
                    r.max_new_tokens as u64,
                    r.iteration as u64,
                    r.generated_tokens as u64,
                    r.unix_ms as u64,
                ];
                for (k, v) in values.into_iter().enumerate() {
                    s.ints[k][i] = v;
                }
                s.warmup[i] = r.warmup;
                let figures = std::iter::once(r.sent_offset_ns.map(|o| o as f64 * 1e-9)).chain(metrics(&r));
                for (k, v) in figures.enumerate() {
                    match v {
                        Some(x) => s.floats[k][i] = x,
                        None => nulls[k].push(i),
                    }
                }
            }
            (distinct, nulls)
        })
        .collect();
    let starts: Vec<usize> = lens.iter().scan(0, |at, &l| Some(std::mem::replace(at, *at + l))).collect();
    let name = |k: usize, mut codes: Vec<u32>| -> PolarsResult<Column> {
        // Block codes to codes into the names of all blocks.
        let mut all = Distinct::default();
        for ((distinct, _), (&start, &len)) in filled.iter().zip(starts.iter().zip(&lens)) {
            let global: Vec<u32> = distinct[k].0.iter().map(|v| all.code(v)).collect();
            codes[start..start + len].iter_mut().for_each(|c| *c = global[*c as usize]);
        }
        categorical(NAME_COLUMNS[k], &all.0, codes)
    };
    let float = |k: usize, values: Vec<f64>| -> Column {
        let name = if k == 0 { "sent_offset_s" } else { METRICS[k - 1].0 };
        if filled.iter().all(|(_, nulls)| nulls[k].is_empty()) {
            return Float64Chunked::from_vec(name.into(), values).into_column();
        }
        let mut valid = vec![true; n];
        for ((_, nulls), &start) in filled.iter().zip(&starts) {
            nulls[k].iter().for_each(|&i| valid[start + i] = false);
        }
        Float64Chunked::from_iter_options(name.into(), values.into_iter().zip(valid).map(|(v, ok)| ok.then_some(v))).into_column()
    };
    let [run, engine, workload, scenario, device, dtype, load] = names;
    let [batch_size, prompt_tokens, max_new_tokens, iteration, generated_tokens, unix_ms] = ints;
    let [sent_offset_s, m0, m1, m2, m3, m4, m5, m6] = floats;
    let int = |k: usize, values: Vec<u64>| Column::new(INT_COLUMNS[k].into(), values);
    type Build<'b> = Box<dyn FnOnce() -> PolarsResult<Column> + Send + 'b>;
    let builds: Vec<Build> = vec![
        Box::new(|| name(0, run)),
        Box::new(|| name(1, engine)),
        Box::new(|| name(2, workload)),
        Box::new(|| name(3, scenario)),
        Box::new(|| name(4, device)),
        Box::new(|| name(5, dtype)),
        Box::new(|| Ok(int(0, batch_size))),
        Box::new(|| Ok(int(1, prompt_tokens))),
        Box::new(|| Ok(int(2, max_new_tokens))),
        Box::new(|| name(6, load)),
        Box::new(|| Ok(Column::new("warmup".into(), warmup))),
        Box::new(|| Ok(int(3, iteration))),
        Box::new(|| Ok(int(4, generated_tokens))),
        Box::new(|| Ok(float(0, sent_offset_s))),
        Box::new(|| Ok(int(5, unix_ms))),
        Box::new(|| Ok(float(1, m0))),
        Box::new(|| Ok(float(2, m1))),
        Box::new(|| Ok(float(3, m2))),
        Box::new(|| Ok(float(4, m3))),
        Box::new(|| Ok(float(5, m4))),
        Box::new(|| Ok(float(6, m5))),
        Box::new(|| Ok(float(7, m6))),
    ];
    let columns = builds.into_par_iter().map(|b| b()).collect::<PolarsResult<Vec<Column>>>()?;
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
    use run_format::records::RequestRecord;

    pub use run_format::testing::request;

    pub fn run(id: &str, requests: Vec<RequestRecord>) -> Run {
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
            host: vec![],
            attempts: vec![],
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
        let records: Vec<(&str, Request)> =
            ra.requests.iter().map(|r| ("run-a", r)).chain(rb.requests.iter().map(|r| ("run-b", r))).collect();
        assert_eq!(df.height(), records.len());
        let text = |c: &str| {
            df.column(c).unwrap().cast(&DataType::String).unwrap().str().unwrap().iter().map(|v| v.unwrap().to_string()).collect::<Vec<_>>()
        };
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
