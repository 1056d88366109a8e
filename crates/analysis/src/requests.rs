//! Every measured request of one or more runs as a polars DataFrame, one row per request, with the
//! figures each statistic is computed from. Warm-up requests are kept (flagged) so the table
//! is the whole raw data; every statistic filters them out.

use polars::prelude::*;
use rayon::prelude::*;

use crate::records::{LoadLevel, RequestRecord};
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
pub fn decode_tok_s(r: &RequestRecord) -> Option<f64> {
    let decode_ns: u64 = r.token_ns.iter().sum();
    (decode_ns > 0).then(|| (r.batch_size * r.token_ns.len()) as f64 / (decode_ns as f64 * 1e-9))
}

/// Mean time per output token after the first.
pub fn tpot_ms(r: &RequestRecord) -> Option<f64> {
    (!r.token_ns.is_empty()).then(|| r.token_ns.iter().sum::<u64>() as f64 / r.token_ns.len() as f64 / 1e6)
}

/// Time to first token as the client saw it (queueing included).
pub fn client_ttft_ms(r: &RequestRecord) -> f64 {
    r.runner_ttft_ns.unwrap_or(r.ttft_ns + r.queue_ns) as f64 / 1e6
}

/// Every figure of [`METRICS`] for one request, in that order (one pass over its token times).
fn metrics(r: &RequestRecord) -> [Option<f64>; METRICS.len()] {
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

/// One row per request of every run given. Columns that name things (run, engine, workload, …)
/// are Categorical: a few distinct values over a million rows, stored as codes.
pub fn frame(runs: &[&Run]) -> PolarsResult<DataFrame> {
    let rows: Vec<(&str, &RequestRecord)> = runs.iter().flat_map(|run| run.requests.iter().map(move |r| (run.id.as_str(), r))).collect();
    let ints = |f: &(dyn Fn(&RequestRecord) -> u64 + Sync)| -> Vec<u64> { rows.par_iter().map(|(_, r)| f(r)).collect() };
    // A handful of load levels: label each once.
    let mut labels: Vec<(LoadLevel, String)> = Vec::new();
    for l in rows.iter().filter_map(|(_, r)| r.load) {
        if !labels.iter().any(|(x, _)| *x == l) {
            labels.push((l, l.label()));
        }
    }
    let label = |l: Option<LoadLevel>| l.and_then(|l| labels.iter().find(|(x, _)| *x == l)).map_or("", |(_, s)| s.as_str());
    type Name<'a> = (&'static str, Box<dyn Fn(&(&'a str, &'a RequestRecord)) -> &'a str + Sync + 'a>);
    let names: Vec<Name> = vec![
        ("run", Box::new(|(id, _)| id)),
        ("engine", Box::new(|(_, r)| &r.engine)),
        ("workload", Box::new(|(_, r)| &r.workload)),
        ("scenario", Box::new(|(_, r)| &r.scenario)),
        ("device", Box::new(|(_, r)| &r.device)),
        ("dtype", Box::new(|(_, r)| &r.dtype)),
    ];
    let mut columns: Vec<Column> = names.par_iter().map(|(name, get)| enum_column(name, rows.iter().map(get))).collect::<PolarsResult<_>>()?;
    columns.extend([
        Column::new("batch_size".into(), ints(&|r| r.batch_size as u64)),
        Column::new("prompt_tokens".into(), ints(&|r| r.prompt_tokens as u64)),
        Column::new("max_new_tokens".into(), ints(&|r| r.max_new_tokens as u64)),
        enum_column("load", rows.iter().map(|(_, r)| label(r.load)))?,
        Column::new("warmup".into(), rows.par_iter().map(|(_, r)| r.warmup).collect::<Vec<bool>>()),
        Column::new("iteration".into(), ints(&|r| r.iteration as u64)),
        Column::new("generated_tokens".into(), ints(&|r| r.generated_tokens as u64)),
        Column::new(
            "sent_offset_s".into(),
            rows.par_iter().map(|(_, r)| r.sent_offset_ns.map(|o| o as f64 * 1e-9)).collect::<Vec<Option<f64>>>(),
        ),
        Column::new("unix_ms".into(), ints(&|r| r.unix_ms as u64)),
    ]);
    let figures: Vec<[Option<f64>; METRICS.len()]> = rows.par_iter().map(|(_, r)| metrics(r)).collect();
    let metric_columns: Vec<Column> =
        (0..METRICS.len()).into_par_iter().map(|j| Column::new(METRICS[j].0.into(), figures.iter().map(|f| f[j]).collect::<Vec<_>>())).collect();
    columns.extend(metric_columns);
    DataFrame::new_infer_height(columns)
}

/// A column of names as a polars Categorical.
pub fn enum_column<'a>(name: &str, values: impl Iterator<Item = &'a str>) -> PolarsResult<Column> {
    let mut distinct: Vec<&str> = Vec::new();
    let mut codes: Vec<u32> = Vec::with_capacity(values.size_hint().0);
    let mut last: Option<(&str, u32)> = None;
    for v in values {
        // Rows of one cell come together: the previous value is almost always this one.
        let code = match last {
            Some((l, c)) if l == v => c,
            _ => {
                let c = distinct.iter().position(|d| *d == v).unwrap_or_else(|| {
                    distinct.push(v);
                    distinct.len() - 1
                }) as u32;
                last = Some((v, c));
                c
            }
        };
        codes.push(code);
    }
    // polars' global categories (`pl.Categorical`), whose codes are u32: this build of polars has
    // no 8- or 16-bit integers, which an Enum of a few values would be stored in.
    let dtype = DataType::from_categories(Categories::global());
    let DataType::Categorical(_, mapping) = &dtype else { unreachable!("from_categories gives a Categorical") };
    let ids: Vec<u32> = distinct.iter().map(|d| mapping.insert_cat(d)).collect::<PolarsResult<_>>()?;
    let codes = UInt32Chunked::from_vec(name.into(), codes.into_iter().map(|c| ids[c as usize]).collect());
    let series = CategoricalChunked::<Categorical32Type>::from_cats_and_dtype(codes, dtype).into_series();
    Ok(series.into_column())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

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

    #[test]
    fn per_request_figures() {
        // 2 rows × 2 decode steps in 40 ms = 100 tok/s; 6 tokens in 45 ms.
        let r = request("e", 2, 5, &[10, 30]);
        let metric = |r: &RequestRecord, name: &str| metrics(r)[METRICS.iter().position(|(m, _)| *m == name).unwrap()];
        assert!((decode_tok_s(&r).unwrap() - 100.0).abs() < 1e-9);
        assert_eq!(metric(&r, "decode_tok_s"), decode_tok_s(&r));
        assert_eq!(metric(&r, "tpot_ms"), tpot_ms(&r));
        assert_eq!(metric(&r, "ttft_ms"), Some(5.0));
        assert!((metric(&r, "output_tok_s").unwrap() - 6.0 / 0.045).abs() < 1e-9);
        assert_eq!(tpot_ms(&r), Some(20.0));
        assert_eq!(metric(&r, "e2e_ms"), Some(46.0));
        // One token only: no decode phase, no decode rate.
        assert_eq!(decode_tok_s(&request("e", 1, 5, &[])), None);
    }
}
