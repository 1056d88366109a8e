//! The harness-tax rows of a committed run (results/h200-ref-6: pytorch_baseline at batch 1,
//! prompts of 128 and 1024, 64 new tokens) against plain-path calls made up for the test.

use std::path::{Path, PathBuf};

use analysis::harness_tax::{rows, table, PlainCall};

fn committed(run: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results").join(run)
}

fn call(prompt_tokens: usize, new_tokens: usize, ms: f64) -> PlainCall {
    PlainCall { engine: "pytorch_baseline".into(), path: "generate()".into(), prompt_tokens, new_tokens, total_ns: (ms * 1e6) as u64 }
}

#[test]
fn ours_is_set_beside_the_plain_path_of_the_same_cell_and_a_mismatch_is_refused() {
    let report = analysis::analyze(&committed("h200-ref-6")).unwrap();
    let (run, summary) = (&report.run, &report.summary);
    // 1 token: 20, 22, 24 ms (median 22); 64 tokens: 652, 652, 700 (median 652): 63 steps in 630 ms.
    let calls: Vec<PlainCall> = [20.0, 22.0, 24.0].iter().map(|&ms| call(128, 1, ms)).chain([652.0, 700.0, 652.0].iter().map(|&ms| call(128, 64, ms))).collect();
    let got = rows(&calls, run, summary).unwrap();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!((r.prompt_tokens, r.new_tokens, r.plain_calls), (128, 64, 3));
    assert!((r.plain_ttft_ms - 22.0).abs() < 1e-9);
    assert!((r.plain_decode_tok_per_s - 100.0).abs() < 1e-6, "{}", r.plain_decode_tok_per_s);
    let cell = summary.cells.iter().find(|c| c.engine == "pytorch_baseline" && c.prompt_tokens == 128).unwrap();
    assert_eq!(r.ours_decode_tok_per_s, cell.decode_tok_per_s.all.as_ref().unwrap().median);
    assert!((r.decode_ratio() - r.ours_decode_tok_per_s / 100.0).abs() < 1e-12);
    assert!(table(&got).contains("| pytorch_baseline | generate() | 128 | 64 |"), "{}", table(&got));

    // 32 new tokens: the run has no such cell.
    let other: Vec<PlainCall> = vec![call(128, 1, 20.0), call(128, 32, 300.0)];
    let e = rows(&other, run, summary).unwrap_err().to_string();
    assert!(e.contains("pytorch_baseline p128 × 32 new tokens has no latency cell"), "{e}");
    // No 1-token calls: no time to first token to subtract.
    let e = rows(&[call(128, 64, 600.0)], run, summary).unwrap_err().to_string();
    assert!(e.contains("not 1 and one N > 1"), "{e}");
}
