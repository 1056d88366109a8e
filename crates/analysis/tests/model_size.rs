//! The model-size table: ranks per model and prompt length by decode rate, runs ordered by size,
//! and a ranking change reported as one.

use std::path::{Path, PathBuf};

use analysis::model_size::{model_size, table};

fn committed(run: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results").join(run)
}

#[test]
fn one_run_ranks_its_engines_by_decode_rate_per_prompt_length() {
    let r = analysis::analyze(&committed("h200-ref-6")).unwrap();
    let m = model_size(&[&r]);
    assert_eq!(m.rows.len(), 8, "4 engines × 2 prompt lengths");
    for p in [128, 1024] {
        let mut here: Vec<_> = m.rows.iter().filter(|r| r.prompt_tokens == p).collect();
        here.sort_by_key(|r| r.rank.unwrap());
        assert_eq!(here.iter().map(|r| r.rank.unwrap()).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
        assert!(here.windows(2).all(|w| w[0].decode_tok_per_s.as_ref().unwrap().median >= w[1].decode_tok_per_s.as_ref().unwrap().median));
        assert!(here.iter().all(|r| r.model == "llama-3.2-1b (synthetic)" && !r.real && r.parameters == Some(1_235_814_400)));
    }
    assert!(table(&m).contains("(one size only)"), "{}", table(&m));
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    // Every engine of that run passed its gate, and the table says so per row.
    assert!(m.rows.iter().all(|r| r.gate_passed == Some(true)));
    assert_eq!(table(&m).matches("| passed |").count(), 8);
}

#[test]
fn an_engine_that_failed_its_gate_is_marked_in_its_rows() {
    let mut r = analysis::analyze(&committed("h200-ref-6")).unwrap();
    r.summary.engines.iter_mut().find(|e| e.name == "candle_cuda").unwrap().correctness.passed = Some(false);
    let m = model_size(&[&r]);
    assert!(m.rows.iter().filter(|r| r.engine == "candle_cuda").all(|r| r.gate_passed == Some(false)));
    assert_eq!(table(&m).matches("| candle_cuda | ⚠ failed |").count(), 2, "{}", table(&m));
}

#[test]
fn a_larger_model_where_two_engines_swap_places_is_a_ranking_change() {
    let small = analysis::analyze(&committed("h200-ref-6")).unwrap();
    let mut large = analysis::analyze(&committed("h200-ref-6")).unwrap();
    let env = &mut large.run.environment;
    env["checkpoint"]["synthetic"]["preset"] = "bigger".into();
    env["checkpoint"]["config"]["num_hidden_layers"] = 64.into();
    large.run.id = "bigger-run".into();
    // candle becomes the fastest engine at the larger size.
    for c in large.summary.cells.iter_mut().filter(|c| c.engine == "candle_cuda") {
        c.decode_tok_per_s.all.as_mut().unwrap().median *= 10.0;
    }
    // Given largest first, the rows still come smallest model first.
    let m = model_size(&[&large, &small]);
    assert_eq!(m.rows[0].model, "llama-3.2-1b (synthetic)");
    assert!(m.rankings.iter().all(|k| !k.unchanged && k.order.len() == 2));
    assert_eq!(m.rankings[0].order[1].1[0], "candle_cuda");
    assert!(table(&m).contains("the order changes with size"));
}
