//! The harness-tax rows of a committed run (results/h200-ref-6: pytorch_baseline at batch 1,
//! prompts of 128 and 1024, 64 new tokens) against plain-path calls made up for the test.

use std::path::{Path, PathBuf};

use analysis::harness_tax::{rows, table, PlainCall, StepStamps};

fn committed(run: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results").join(run)
}

fn call(rep: usize, new_tokens: usize, ms: f64, step_clock: Option<StepStamps>) -> PlainCall {
    let (engine, path) = ("pytorch_baseline".into(), "generate()".into());
    PlainCall { engine, path, prompt_tokens: 128, new_tokens, rep, total_ns: (ms * 1e6) as u64, step_clock }
}

/// Three repetitions of 1 token, 64 tokens and 64 tokens with the step clock: TTFT 20, 22, 24 ms;
/// 652, 700, 652 ms plain; 660, 700, 700 ms clocked; each clocked call 63 steps in 630 ms.
fn three_reps(new_tokens: usize) -> Vec<PlainCall> {
    let stamps = StepStamps { ttft_ns: 20_000_000, last_ns: 650_000_000, steps: new_tokens };
    [(20.0, 652.0, 660.0), (22.0, 700.0, 700.0), (24.0, 652.0, 700.0)]
        .iter()
        .enumerate()
        .flat_map(|(rep, &(one, n, clocked))| {
            [call(rep, 1, one, None), call(rep, new_tokens, n, None), call(rep, new_tokens, clocked, Some(stamps))]
        })
        .collect()
}

#[test]
fn ours_is_set_beside_the_plain_path_of_the_same_cell_and_a_mismatch_is_refused() {
    let report = analysis::analyze(&committed("h200-ref-6")).unwrap();
    let (run, summary) = (&report.run, &report.summary);
    let got = rows(&three_reps(64), Some((run, summary))).unwrap();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!((r.prompt_tokens, r.new_tokens, r.reps), (128, 64, 3));
    assert!((r.plain_ttft_ms - 22.0).abs() < 1e-9);
    assert!((r.plain_request_ms - 652.0).abs() < 1e-9);
    // Paired ratios 660/652, 700/700, 700/652: the median is the first.
    assert!((r.step_clock_cost.unwrap() - 660.0 / 652.0).abs() < 1e-9, "{:?}", r.step_clock_cost);
    assert!((r.in_process_decode_tok_per_s.unwrap() - 100.0).abs() < 1e-9, "{:?}", r.in_process_decode_tok_per_s);
    let cell = summary.cells.iter().find(|c| c.engine == "pytorch_baseline" && c.prompt_tokens == 128).unwrap();
    let ours = r.ours.unwrap();
    assert_eq!(ours.decode_tok_per_s, cell.decode_tok_per_s.all.as_ref().unwrap().median);
    assert!((r.decode_ratio().unwrap() - ours.decode_tok_per_s / 100.0).abs() < 1e-12);
    // The plain path alone: its columns, none of ours.
    let alone = rows(&three_reps(64), None).unwrap();
    assert_eq!((alone[0].ours, alone[0].ttft_ratio(), alone[0].step_clock_cost), (None, None, r.step_clock_cost));
    assert!(table(&got).contains("| pytorch_baseline | generate() | 128 | 64 | 652.0 | 1.012 | 100.0 |"), "{}", table(&got));

    // 32 new tokens: the run has no such cell.
    let e = rows(&three_reps(32), Some((run, summary))).unwrap_err().to_string();
    assert!(e.contains("pytorch_baseline p128 × 32 new tokens has no latency cell"), "{e}");
    // No clocked calls: no decode rate defined as the engine's to compare with, TTFT still.
    let plain_only: Vec<PlainCall> = three_reps(64).into_iter().filter(|c| c.step_clock.is_none()).collect();
    let got = rows(&plain_only, Some((run, summary))).unwrap();
    assert_eq!((got[0].step_clock_cost, got[0].decode_ratio()), (None, None));
    assert!((got[0].plain_ttft_ms - 22.0).abs() < 1e-9);
    assert!(table(&got).contains("| 652.0 | – | – |"), "{}", table(&got));
    // A clocked call missing from one repetition leaves that repetition out.
    let mut gappy = three_reps(64);
    gappy.pop();
    assert_eq!(rows(&gappy, Some((run, summary))).unwrap()[0].reps, 2);
    // Only 1-token calls: nothing to compare.
    let ones: Vec<PlainCall> = three_reps(64).into_iter().filter(|c| c.new_tokens == 1).collect();
    let e = rows(&ones, Some((run, summary))).unwrap_err().to_string();
    assert!(e.contains("no repetitions with a 1-token and an N-token call"), "{e}");
}
