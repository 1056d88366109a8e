//! The page every report is: a self-contained HTML document (style, ECharts and our script
//! inline; a Content-Security-Policy that forbids any fetch), sections of HTML, and the option of
//! each chart as JSON the script hands to ECharts.

use std::fmt::Write;

/// The ECharts script charming ships (see build.rs), and its version.
const ECHARTS: &str = include_str!(concat!(env!("OUT_DIR"), "/echarts.min.js"));
pub const ECHARTS_VERSION: &str = env!("ECHARTS_VERSION");
const STYLE: &str = include_str!("../assets/report.css");
const SCRIPT: &str = include_str!("../assets/report.js");
/// Nothing leaves the page: no network, no frames; inline script, style and data: images only.
const POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:";

/// Text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON that can sit inside a `<script>` element (a `</script>` in a string would end it).
fn script_json(v: &serde_json::Value) -> String {
    v.to_string().replace("</", "<\\/")
}

#[derive(Default)]
pub struct Page {
    title: String,
    subtitle: String,
    body: String,
    /// (element id, ECharts option) in page order.
    charts: Vec<(String, serde_json::Value)>,
}

impl Page {
    pub fn new(title: &str, subtitle: &str) -> Page {
        Page { title: title.into(), subtitle: subtitle.into(), ..Page::default() }
    }

    /// A section with a heading (its id is `id`, for links) and HTML content.
    pub fn section(&mut self, id: &str, heading: &str, html: &str) {
        let _ = write!(self.body, "<section id=\"{}\"><h2>{}</h2>\n{html}\n</section>\n", esc(id), esc(heading));
    }

    /// A chart section: the chart, or the reason the run has none.
    pub fn chart(&mut self, id: &str, heading: &str, note: &str, chart: Result<charming::Chart, String>) {
        let html = match chart {
            Ok(chart) => {
                // charming's own serialisation: the option ECharts reads, as plain JSON.
                let option = serde_json::to_value(&chart).expect("a chart serialises");
                self.charts.push((id.to_string(), option));
                format!(
                    "<p class=\"note\">{}</p><div class=\"chart\" id=\"chart-{}\" data-chart=\"{}\"></div>",
                    esc(note),
                    esc(id),
                    esc(id)
                )
            }
            Err(why) => format!("<p class=\"note missing\">No chart: {}</p>", esc(&why)),
        };
        self.section(id, heading, &html);
    }

    /// The chart options, by id (what the page hands to ECharts).
    pub fn options(&self) -> &[(String, serde_json::Value)] {
        &self.charts
    }

    pub fn render(&self) -> String {
        let charts: serde_json::Map<String, serde_json::Value> = self.charts.iter().cloned().collect();
        let mut out = String::with_capacity(ECHARTS.len() + self.body.len() + 4096);
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta http-equiv=\"Content-Security-Policy\" content=\"{POLICY}\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n\
             <header><h1>{}</h1><p>{}</p></header>\n<main>\n{}</main>\n\
             <footer>Charts by Apache ECharts {ECHARTS_VERSION} (Apache License 2.0), inlined; this page loads nothing.</footer>\n\
             <script type=\"application/json\" id=\"chart-options\">{}</script>\n\
             <script>\n{ECHARTS}\n</script>\n<script>\n{SCRIPT}</script>\n</body>\n</html>\n",
            esc(&self.title),
            esc(&self.title),
            esc(&self.subtitle),
            self.body,
            script_json(&serde_json::Value::Object(charts)),
        );
        out
    }
}

/// The chart options a rendered page carries (for tests and checks: what the reader's browser gets).
pub fn options_in(html: &str) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    let start = html
        .find("<script type=\"application/json\" id=\"chart-options\">")
        .ok_or_else(|| anyhow::anyhow!("no chart options in the page"))?;
    let rest = &html[start..];
    let open = rest.find('>').unwrap() + 1;
    let close = rest.find("</script>").ok_or_else(|| anyhow::anyhow!("chart options not closed"))?;
    let v: serde_json::Value = serde_json::from_str(&rest[open..close].replace("<\\/", "</"))?;
    v.as_object().cloned().ok_or_else(|| anyhow::anyhow!("chart options are not an object"))
}

/// An HTML table: header cells and rows of already-escaped cell HTML.
pub fn table(class: &str, header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("<table class=\"{}\"><thead><tr>", esc(class));
    for h in header {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for r in rows {
        out.push_str("<tr>");
        for c in r {
            let _ = write!(out, "<td>{c}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}
