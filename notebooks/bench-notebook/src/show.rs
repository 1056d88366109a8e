//! Showing results in a cell. evcxr turns stdout between `EVCXR_BEGIN_CONTENT <mime type>` and
//! `EVCXR_END_CONTENT` into a rich output of that type, which Jupyter saves in the notebook.

use std::fmt::Write;

/// Shows an HTML fragment as the cell's output.
pub fn html(fragment: &str) {
    println!("EVCXR_BEGIN_CONTENT text/html\n{}\nEVCXR_END_CONTENT", fragment.trim_end());
}

/// Shows an SVG document (the `analysis::plots` functions return them) as the cell's output.
pub fn svg(document: &str) {
    println!("EVCXR_BEGIN_CONTENT image/svg+xml\n{}\nEVCXR_END_CONTENT", document.trim_end());
}

/// Several outputs of one kind in one cell: evcxr keeps only the last `EVCXR_BEGIN_CONTENT` of
/// each MIME type a cell prints, so a cell that shows one table or chart per half of a run joins
/// them into one HTML output with this.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    parts: Vec<String>,
}

impl Outputs {
    pub fn new() -> Outputs {
        Outputs::default()
    }

    /// A heading line (escaped) before the next part.
    pub fn heading(&mut self, text: &str) -> &mut Outputs {
        self.parts.push(format!("<p><b>{}</b></p>", escape(text)));
        self
    }

    /// A paragraph of HTML, as given.
    pub fn html(&mut self, fragment: &str) -> &mut Outputs {
        self.parts.push(fragment.trim_end().to_string());
        self
    }

    pub fn table(&mut self, table: &Table) -> &mut Outputs {
        self.parts.push(table.to_html());
        self
    }

    /// An SVG document, inlined (its XML declaration dropped), under a caption.
    pub fn svg(&mut self, caption: &str, document: &str) -> &mut Outputs {
        let start = document.find("<svg").unwrap_or(0);
        self.parts.push(format!("<figure>\n{}\n<figcaption>{}</figcaption>\n</figure>", document[start..].trim_end(), escape(caption)));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    pub fn to_html(&self) -> String {
        self.parts.join("\n")
    }

    /// Shows everything as the cell's one HTML output (nothing when empty).
    pub fn show(&self) {
        if !self.is_empty() {
            html(&self.to_html());
        }
    }
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A number with `digits` decimals, or `–` when there is none (or it is not finite).
pub fn num(x: Option<f64>, digits: usize) -> String {
    match x {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        _ => "–".into(),
    }
}

/// An interval as `low–high`, or `–`.
pub fn interval(ci: Option<[f64; 2]>, digits: usize) -> String {
    match ci {
        Some([lo, hi]) if lo.is_finite() && hi.is_finite() => format!("{lo:.digits$}–{hi:.digits$}"),
        _ => "–".into(),
    }
}

/// `median (low–high)`, the interval left out when there is none.
pub fn with_interval(median: f64, ci: Option<[f64; 2]>, digits: usize) -> String {
    match ci {
        Some(_) => format!("{median:.digits$} ({})", interval(ci, digits)),
        None => format!("{median:.digits$}"),
    }
}

/// `2.48× (2.10–2.90)`: a ratio of medians with its interval (when it has one).
pub fn ratio(median: f64, ci: Option<[f64; 2]>) -> String {
    match ci {
        Some(_) => format!("{median:.2}× ({})", interval(ci, 2)),
        None => format!("{median:.2}×"),
    }
}

/// The correctness gate's verdict in words: the engine's logits and greedy tokens against the
/// transformers reference, as the gate recorded them.
pub fn gate(passed: Option<bool>, max_rel_logit_err: Option<f64>, greedy_match_steps: Option<usize>, steps: Option<usize>) -> String {
    let err = max_rel_logit_err.map_or("?".into(), |e| if e == 0.0 { "0".into() } else { format!("{e:.1e}") });
    let tokens = match (greedy_match_steps, steps) {
        (Some(g), Some(s)) => format!("{g} of {s}"),
        _ => "?".into(),
    };
    match passed {
        Some(true) => format!("passed (max relative logit error {err}; greedy tokens identical for {tokens} steps)"),
        Some(false) => format!("⚠ differs from the reference (max relative logit error {err}; {tokens} greedy tokens identical)"),
        None => "not checked".into(),
    }
}

/// A p-value: three decimals, or scientific notation below 0.001.
pub fn pvalue(p: Option<f64>) -> String {
    match p {
        Some(v) if v.is_finite() && v < 1e-3 => format!("{v:.1e}"),
        Some(v) if v.is_finite() => format!("{v:.3}"),
        _ => "–".into(),
    }
}

/// Bytes as gigabytes (10⁹) with two decimals, or `–`.
pub fn gb(bytes: Option<u64>) -> String {
    num(bytes.map(|b| b as f64 / 1e9), 2)
}

fn looks_numeric(s: &str) -> bool {
    let t = s.trim_start_matches(['−', '-', '+', '×']);
    t.chars().next().is_some_and(|c| c.is_ascii_digit()) || s == "–"
}

/// An HTML table built row by row; cells that start with a number are right-aligned.
#[derive(Debug, Clone, Default)]
pub struct Table {
    caption: Option<String>,
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
    note: Option<String>,
}

impl Table {
    pub fn new<S: AsRef<str>>(headers: impl IntoIterator<Item = S>) -> Table {
        Table { headers: headers.into_iter().map(|h| h.as_ref().to_string()).collect(), ..Table::default() }
    }

    /// A title above the table.
    pub fn caption(mut self, caption: impl Into<String>) -> Table {
        self.caption = Some(caption.into());
        self
    }

    /// A line under the table (what the columns mean, where the figures come from).
    pub fn note(mut self, note: impl Into<String>) -> Table {
        self.note = Some(note.into());
        self
    }

    pub fn row<S: ToString>(&mut self, cells: impl IntoIterator<Item = S>) -> &mut Table {
        self.rows.push(cells.into_iter().map(|c| c.to_string()).collect());
        self
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn to_html(&self) -> String {
        let mut out = String::from("<table>\n");
        if let Some(c) = &self.caption {
            let _ = writeln!(out, "<caption>{}</caption>", escape(c));
        }
        out += "<thead><tr>";
        for h in &self.headers {
            let _ = write!(out, "<th>{}</th>", escape(h));
        }
        out += "</tr></thead>\n<tbody>\n";
        for row in &self.rows {
            out += "<tr>";
            for cell in row {
                let align = if looks_numeric(cell) { " style=\"text-align:right\"" } else { "" };
                let _ = write!(out, "<td{align}>{}</td>", escape(cell));
            }
            out += "</tr>\n";
        }
        out += "</tbody>\n</table>";
        if let Some(n) = &self.note {
            let _ = write!(out, "\n<p><small>{}</small></p>", escape(n));
        }
        out
    }

    /// Shows the table as the cell's output.
    pub fn show(&self) {
        html(&self.to_html());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_missing_figures_as_a_dash() {
        assert_eq!(num(Some(60.126), 1), "60.1");
        assert_eq!(num(None, 1), "–");
        assert_eq!(num(Some(f64::NAN), 1), "–");
        assert_eq!(interval(Some([44.745, 67.519]), 1), "44.7–67.5");
        assert_eq!(with_interval(60.126, Some([44.745, 67.519]), 1), "60.1 (44.7–67.5)");
        assert_eq!(with_interval(60.126, None, 2), "60.13");
        assert_eq!(ratio(2.4818, Some([2.1, 2.9])), "2.48× (2.10–2.90)");
        assert_eq!(gate(Some(false), Some(0.0195), Some(23), Some(32)), "⚠ differs from the reference (max relative logit error 1.9e-2; 23 of 32 greedy tokens identical)");
        assert_eq!(gate(None, None, None, None), "not checked");
        assert_eq!((pvalue(Some(0.0123)), pvalue(Some(0.000583)), pvalue(None)), ("0.012".into(), "5.8e-4".into(), "–".into()));
        assert_eq!(gb(Some(2_471_645_608)), "2.47");
    }

    #[test]
    fn table_escapes_and_aligns() {
        let mut t = Table::new(["engine", "tok/s"]).caption("a < b").note("n & m");
        t.row(["<b>", "12.5"]).row(["x", "–"]);
        let h = t.to_html();
        assert!(h.contains("<caption>a &lt; b</caption>"));
        assert!(h.contains("<td>&lt;b&gt;</td><td style=\"text-align:right\">12.5</td>"));
        assert!(h.contains("<small>n &amp; m</small>"));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn outputs_join_into_one_html_fragment() {
        let mut t = Table::new(["a"]);
        t.row(["1"]);
        let mut o = Outputs::new();
        assert!(o.is_empty());
        o.heading("run <1>").table(&t).svg("chart & more", "<?xml version=\"1.0\"?>\n<svg width=\"2\"></svg>\n");
        let h = o.to_html();
        assert!(h.starts_with("<p><b>run &lt;1&gt;</b></p>\n<table>"), "{h}");
        assert!(h.ends_with("<figure>\n<svg width=\"2\"></svg>\n<figcaption>chart &amp; more</figcaption>\n</figure>"), "{h}");
    }
}
