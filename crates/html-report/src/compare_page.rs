//! `compare.html`: two runs, cell by cell (the rows of `analysis::run_diff`), in the report's style.

use charming::component::Axis;
use charming::element::{AxisType, Color, ItemStyle, Tooltip, Trigger};
use charming::series::Boxplot;
use charming::Chart;

use analysis::run_diff::{DiffRow, RunDiff, Threshold};

use crate::charts::{cell_label, colour, Built};
use crate::page::{esc, table, Page};
use crate::tables::num;

/// Per figure, each cell's change in percent with its interval, one series per engine.
pub fn change_chart(d: &RunDiff, metric: &str) -> Built {
    let rows: Vec<&DiffRow> = d.rows.iter().filter(|r| r.metric == metric).collect();
    if rows.is_empty() {
        return Err(format!("no cell of both runs has {metric}"));
    }
    let label = |r: &DiffRow| {
        let l = cell_label(&r.workload, r.batch_size as usize, r.prompt_tokens as usize);
        if r.load.is_empty() {
            l
        } else {
            format!("{l} · {}", r.load)
        }
    };
    let mut labels: Vec<String> = Vec::new();
    for r in &rows {
        if !labels.contains(&label(r)) {
            labels.push(label(r));
        }
    }
    let mut engines: Vec<&str> = rows.iter().map(|r| r.engine.as_str()).collect();
    engines.dedup();
    engines.sort();
    engines.dedup();
    let mut chart = Chart::new()
        .title(
            charming::component::Title::new()
                .text(format!("Change of {metric}, NEW over BASE (%): box = interval, bar = median"))
                .left("center"),
        )
        .legend(charming::component::Legend::new().top(28))
        .animation(false)
        .tooltip(Tooltip::new().trigger(Trigger::Item))
        .x_axis(Axis::new().type_(AxisType::Category).data(labels.clone()))
        .y_axis(Axis::new().type_(AxisType::Value).name("change (%)").scale(true));
    for e in engines {
        let data: Vec<Vec<f64>> = labels
            .iter()
            .map(|l| {
                rows.iter()
                    .find(|r| r.engine == e && &label(r) == l)
                    .map(|r| {
                        let pct = |x: f64| (x - 1.0) * 100.0;
                        let [lo, hi] = r.ratio_ci.unwrap_or([r.ratio, r.ratio]);
                        vec![pct(lo), pct(lo), pct(r.ratio), pct(hi), pct(hi)]
                    })
                    .unwrap_or_default()
            })
            .collect();
        chart = chart.series(
            Boxplot::new()
                .name(e)
                .item_style(ItemStyle::new().color(Color::from("#ffffff")).border_color(colour(e).as_str()).border_width(2))
                .tooltip(Tooltip::new().formatter("@interval"))
                .data(data),
        );
    }
    Ok(chart)
}

pub fn page(d: &RunDiff) -> Page {
    let mut page = Page::new(
        &format!("{} → {}", d.base, d.new),
        &format!("{} rows compared · {} improved · {} regressed", d.rows.len(), d.improved, d.regressed),
    );
    let threshold = match &d.threshold {
        Threshold::Given(t) => format!("{:.1} % for every row (given)", t * 100.0),
        Threshold::Config(t) => format!("{:.1} % for every row (NEW's analysis.compare_noise_threshold)", t * 100.0),
        Threshold::BetweenRuns { file, default } => {
            format!("twice each cell's between-run CV of decode speed from {file}; {:.1} % for cells it does not list", default * 100.0)
        }
        Threshold::Default(t) => format!("{:.1} % (no between-run figure given)", t * 100.0),
    };
    let warnings: String = d.warnings.iter().map(|w| format!("<li class=\"flag\">{}</li>", esc(w))).collect();
    page.section(
        "method",
        "How to read it",
        &format!(
            "<p class=\"note\">Change = NEW's median over BASE's, with a bootstrap interval. A row is improved or regressed only when \
             Mann-Whitney's test is significant after Holm's correction over all {} rows (α = {}) <i>and</i> the change exceeds the noise \
             threshold: {}.</p>{}",
            d.rows.len(),
            d.alpha,
            esc(&threshold),
            if warnings.is_empty() {
                "<p class=\"good\">The runs were made under the same recorded conditions.</p>".into()
            } else {
                format!("<ul class=\"flags\">{warnings}</ul>")
            }
        ),
    );
    page.chart("decode-change", "Decode speed", "Hover a box for its values; click an engine to hide it.", change_chart(d, "decode_tok_s"));
    page.chart("ttft-change", "Time to first token", "Lower is better for times.", change_chart(d, "ttft_ms"));
    let rows: Vec<Vec<String>> = d
        .rows
        .iter()
        .map(|r| {
            let class = match r.verdict {
                "regressed" => "bad",
                "improved" => "good",
                _ => "",
            };
            vec![
                esc(&r.engine),
                esc(&format!(
                    "{}{}",
                    cell_label(&r.workload, r.batch_size as usize, r.prompt_tokens as usize),
                    if r.load.is_empty() { String::new() } else { format!(" · {}", r.load) }
                )),
                format!("{} ({})", esc(r.metric), esc(r.unit)),
                format!("{} <small>n={}</small>", num(r.median_base), r.n_base),
                format!("{} <small>n={}</small>", num(r.median_new), r.n_new),
                format!("{:+.1} %", (r.ratio - 1.0) * 100.0),
                r.ratio_ci.map(|[a, b]| format!("[{:+.1}, {:+.1}] %", (a - 1.0) * 100.0, (b - 1.0) * 100.0)).unwrap_or("–".into()),
                r.p_holm.map(|p| format!("{p:.3}")).unwrap_or("–".into()),
                format!("{:.1} %", r.threshold * 100.0),
                format!("<span class=\"{class}\">{}</span>", r.verdict),
            ]
        })
        .collect();
    page.section(
        "rows",
        "Every cell both runs measured",
        &table("compare", &["engine", "cell", "figure", "BASE", "NEW", "change", "interval", "p (Holm)", "noise", "verdict"], &rows),
    );
    if !d.only_base.is_empty() || !d.only_new.is_empty() {
        let list = |xs: &[String]| xs.iter().map(|x| format!("<li>{}</li>", esc(x))).collect::<String>();
        page.section(
            "unmatched",
            "Cells in one run only (not compared)",
            &format!("<p>BASE only:</p><ul>{}</ul><p>NEW only:</p><ul>{}</ul>", list(&d.only_base), list(&d.only_new)),
        );
    }
    page
}
