//! The tables printed at the end of a run and by `analyze`: engines ranked by decode rate, then
//! every cell with its figures per host state.

use analysis::summary::{EngineSummary, Summary};

/// The ranked table printed at the end of a run: fastest decode first, the baseline marked, failures last.
pub fn table(s: &Summary) -> String {
    let mut ranked: Vec<&EngineSummary> = s.engines.iter().filter(|e| e.decode_tok_per_s.is_some()).collect();
    ranked.sort_by(|a, b| {
        let t = |e: &EngineSummary| e.decode_tok_per_s.as_ref().map_or(0.0, |t| t.median);
        t(b).total_cmp(&t(a))
    });
    let mut out = String::from("🚀 Inference Benchmark Results\n===================================\n");
    let medals = ["🥇", "🥈", "🥉"];
    for (i, e) in ranked.iter().enumerate() {
        let mark = if e.name == s.baseline { "🏁" } else { medals.get(i).copied().unwrap_or("  ") };
        let vs = if e.name == s.baseline {
            "1.0x baseline".to_string()
        } else {
            e.speedup_vs_baseline.as_ref().map_or("no cell shared with the baseline".into(), |r| format!("{:.1}x vs PyTorch", r.median))
        };
        let flag = match e.correctness.passed {
            Some(true) => "",
            Some(false) => "  ⚠ differs from reference",
            None => "  (correctness not checked)",
        };
        let partial = if e.status == "partial" { format!("  ({} cells failed)", e.failed_cells) } else { String::new() };
        out += &format!(
            "{mark} {:<16}: {:>8.1}ms | {:>8.1} tok/s ({vs}){flag}{partial}\n",
            e.name,
            e.latency_ms.as_ref().map_or(f64::NAN, |l| l.median),
            e.decode_tok_per_s.as_ref().map_or(f64::NAN, |t| t.median),
        );
    }
    for e in s.engines.iter().filter(|e| e.decode_tok_per_s.is_none()) {
        out += &format!("❌ {:<16}: failed: {}\n", e.name, e.failure.as_deref().unwrap_or("no measurement"));
    }
    out += "ms = median request latency (prompt + all new tokens); tok/s = median decode throughput.\n";
    out += &cells_table(s);
    out
}

/// Per cell: decode tok/s overall and per host state (n in brackets), host sensitivity, and the
/// paired speedup over the compiled reference in the fast state.
pub fn cells_table(s: &Summary) -> String {
    use analysis::cell_figures::Median;
    if s.cells.is_empty() {
        return String::new();
    }
    let fig = |m: &Option<Median>| match m {
        Some(m) => match m.ci95 {
            Some([a, b]) => format!("{:.1} ({:.1}–{:.1}) n={}", m.median, a, b, m.n),
            None => format!("{:.1} n={}", m.median, m.n),
        },
        None => "–".into(),
    };
    let mut out = String::new();
    match &s.host_states {
        Some(h) if h.two_states => {
            out += &format!(
                "\nHost: two states in this run (probe fast ≈ {:.0} µs, slow ≈ {:.0} µs, threshold {:.0} µs; {:.0} % of readings slow). Requests fast/slow/mixed: {}/{}/{}\n",
                h.fast_median_us,
                h.slow_median_us.unwrap_or(f64::NAN),
                h.threshold_us.unwrap_or(f64::NAN),
                100.0 * h.slow_share,
                h.requests_fast,
                h.requests_slow,
                h.requests_mixed
            )
        }
        Some(h) => out += &format!("\nHost: one state in this run (probe median {:.0} µs, p5–p95 {:.0}–{:.0} µs)\n", h.probe_p50_us, h.probe_p05_us, h.probe_p95_us),
        None => out += "\nHost: not probed in this run (no host state per request)\n",
    }
    out += "Per cell, decode tok/s: median (95 % CI) n — overall | fast host state | slow host state; sensitivity = slow ÷ fast\n";
    for c in &s.cells {
        let d = &c.decode_tok_per_s;
        let sens = c.host_sensitivity.map_or(String::new(), |x| format!("  sensitivity {x:.2}"));
        let vs = c
            .speedups
            .iter()
            .find(|p| p.reference == s.compiled_reference)
            .and_then(|p| p.fast.as_ref().or(p.all.as_ref()))
            .map_or(String::new(), |m| {
                format!("  ×compiled {:.2}{}", m.median, m.ci95.map_or(String::new(), |[a, b]| format!(" ({a:.2}–{b:.2})")))
            });
        out += &format!(
            "  {:<16} {:<10} b{:<3} p{:<5} {} | {} | {}{sens}{vs}{}\n",
            c.engine,
            c.workload,
            c.batch_size,
            c.prompt_tokens,
            fig(&d.all),
            fig(&d.fast),
            fig(&d.slow),
            if c.interleaved { "" } else { "  (sequential)" }
        );
    }
    if let Some(p) = &s.probe_parts {
        out += &analysis::probe_parts::table(p);
    }
    for g in s.gpu_state.iter().filter(|g| !g.flags.is_empty()) {
        out += &format!("⚠ GPU slowed in {} {} {}: {}\n", g.engine, g.workload, g.cell, g.flags.join("; "));
    }
    if let Some(b) = s.bandwidth_probe.as_ref().filter(|b| !b.accepted) {
        out += &format!("⚠ copy-bandwidth probe {}\n", b.note);
    }
    out
}
