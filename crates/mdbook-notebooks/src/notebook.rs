//! A Jupyter notebook (nbformat 4) and its rendering as mdBook markdown.
//!
//! Markdown cells are copied verbatim; code cells become fenced blocks; each saved output is
//! rendered by its richest representation: `text/markdown` verbatim, `text/html` raw,
//! `image/svg+xml` inline, `image/png` / `image/jpeg` as data-URI images, `text/plain` and
//! stream text in ```` ```text ```` blocks, errors as a visible error box.
//! Cells tagged `remove-cell`, `remove-input` or `remove-output` (the Jupyter Book convention)
//! lose that part.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The parts of an nbformat 4 notebook this renderer reads.
#[derive(Debug, Deserialize)]
pub struct Notebook {
    pub nbformat: u32,
    #[serde(default)]
    pub metadata: Value,
    pub cells: Vec<Cell>,
}

#[derive(Debug, Deserialize)]
pub struct Cell {
    pub cell_type: String,
    pub source: MultilineString,
    #[serde(default)]
    pub metadata: Value,
    #[serde(default)]
    pub outputs: Vec<Output>,
    /// Markdown cells: images pasted into the cell, referenced as `attachment:<name>`.
    #[serde(default)]
    pub attachments: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "output_type", rename_all = "snake_case")]
pub enum Output {
    Stream {
        name: String,
        text: MultilineString,
    },
    DisplayData {
        data: Map<String, Value>,
    },
    ExecuteResult {
        data: Map<String, Value>,
    },
    Error {
        ename: String,
        evalue: String,
        #[serde(default)]
        traceback: Vec<String>,
    },
}

/// nbformat stores text either as one string or as a list of lines (each keeping its `\n`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum MultilineString {
    One(String),
    Lines(Vec<String>),
}

impl MultilineString {
    pub fn text(&self) -> String {
        match self {
            MultilineString::One(s) => s.clone(),
            MultilineString::Lines(lines) => lines.concat(),
        }
    }
}

impl Notebook {
    /// Parses notebook JSON; only nbformat 4 is accepted.
    pub fn parse(json: &str) -> Result<Notebook> {
        let nb: Notebook = serde_json::from_str(json).context("not a valid nbformat 4 notebook")?;
        if nb.nbformat != 4 {
            bail!("nbformat {} is not supported (only 4)", nb.nbformat);
        }
        Ok(nb)
    }

    /// The fence language of code cells: the kernel's language (`rust` for evcxr).
    fn language(&self) -> String {
        let from = |v: &Value| v.as_str().filter(|s| is_simple_word(s)).map(str::to_lowercase);
        from(&self.metadata["language_info"]["name"])
            .or_else(|| from(&self.metadata["kernelspec"]["language"]))
            .unwrap_or_else(|| "rust".to_string())
    }

    /// The notebook as markdown, ready to stand in a chapter.
    pub fn to_markdown(&self) -> String {
        let language = self.language();
        let mut blocks: Vec<String> = Vec::new();
        for cell in &self.cells {
            let tags = cell_tags(cell);
            if tags.contains(&"remove-cell") {
                continue;
            }
            let source = cell.source.text();
            match cell.cell_type.as_str() {
                "markdown" => blocks.push(with_attachments(&source, &cell.attachments)),
                "code" => {
                    if !tags.contains(&"remove-input") && !source.trim().is_empty() {
                        // evcxr cells are not standalone programs: no play button, no `mdbook test`.
                        blocks.push(fenced(&format!("{language},ignore"), &source));
                    }
                    if !tags.contains(&"remove-output") {
                        blocks.extend(render_outputs(&cell.outputs));
                    }
                }
                // Raw cells are meant for other converters; keep their text visible as text.
                _ => {
                    if !source.trim().is_empty() {
                        blocks.push(fenced("text", &source));
                    }
                }
            }
        }
        let blocks: Vec<String> = blocks.into_iter().map(|b| b.trim_matches('\n').to_string()).filter(|b| !b.is_empty()).collect();
        let mut out = blocks.join("\n\n");
        out.push('\n');
        out
    }
}

fn is_simple_word(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '+')
}

fn cell_tags(cell: &Cell) -> Vec<&str> {
    cell.metadata["tags"].as_array().map(|tags| tags.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

/// Replaces `attachment:<name>` references with data URIs of the attached image.
fn with_attachments(source: &str, attachments: &Map<String, Value>) -> String {
    let mut text = source.to_string();
    for (name, bundle) in attachments {
        let Some(bundle) = bundle.as_object() else { continue };
        if let Some((mime, data)) = bundle.iter().find(|(m, _)| m.starts_with("image/")) {
            let data: String = mime_text(data).chars().filter(|c| !c.is_whitespace()).collect();
            let uri = if mime == "image/svg+xml" {
                // SVG attachments are stored as text, not base64.
                format!("data:image/svg+xml;utf8,{}", percent_encode_svg(&data))
            } else {
                format!("data:{mime};base64,{data}")
            };
            text = text.replace(&format!("attachment:{name}"), &uri);
        }
    }
    text
}

fn percent_encode_svg(svg: &str) -> String {
    svg.chars()
        .map(|c| match c {
            '%' => "%25".to_string(),
            '#' => "%23".to_string(),
            '"' => "'".to_string(),
            '<' => "%3C".to_string(),
            '>' => "%3E".to_string(),
            ' ' => "%20".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// Outputs in order; consecutive stream outputs of the same stream are joined into one block.
fn render_outputs(outputs: &[Output]) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut pending: Option<(String, String)> = None; // (stream name, text so far)
    let flush = |pending: &mut Option<(String, String)>, blocks: &mut Vec<String>| {
        if let Some((name, text)) = pending.take() {
            blocks.push(render_stream(&name, &text));
        }
    };
    for output in outputs {
        match output {
            Output::Stream { name, text } => {
                let text = text.text();
                match &mut pending {
                    Some((current, so_far)) if current == name => so_far.push_str(&text),
                    _ => {
                        flush(&mut pending, &mut blocks);
                        pending = Some((name.clone(), text));
                    }
                }
            }
            Output::DisplayData { data } | Output::ExecuteResult { data } => {
                flush(&mut pending, &mut blocks);
                blocks.push(render_mime_bundle(data));
            }
            Output::Error { ename, evalue, traceback } => {
                flush(&mut pending, &mut blocks);
                blocks.push(render_error(ename, evalue, traceback));
            }
        }
    }
    flush(&mut pending, &mut blocks);
    blocks
}

fn render_stream(name: &str, text: &str) -> String {
    let text = strip_ansi(text);
    if name == "stderr" {
        // stderr stays visible but is told apart from stdout.
        format!(
            "<div class=\"notebook-stderr\" style=\"border-left: 3px solid #d9a400; padding-left: 0.5em\">\n\n{}\n\n</div>",
            fenced("text", &text)
        )
    } else {
        fenced("text", &text)
    }
}

/// The representations this renderer knows, richest first.
const MIME_ORDER: [&str; 6] = ["text/markdown", "text/html", "image/svg+xml", "image/png", "image/jpeg", "text/plain"];

fn render_mime_bundle(data: &Map<String, Value>) -> String {
    let Some(mime) = MIME_ORDER.iter().find(|m| data.contains_key(**m)) else {
        let kinds: Vec<&str> = data.keys().map(String::as_str).collect();
        return format!("*(output not shown: no renderable representation among {})*", kinds.join(", "));
    };
    let text = mime_text(&data[*mime]);
    match *mime {
        "text/markdown" => text,
        "text/html" => format!("<div class=\"notebook-output notebook-html\">\n{}\n</div>", raw_html(&text)),
        "image/svg+xml" => {
            format!("<div class=\"notebook-output notebook-svg\">\n{}\n</div>", raw_html(&inline_svg(&text)))
        }
        "image/png" | "image/jpeg" => {
            let b64: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            format!(
                "<div class=\"notebook-output notebook-image\">\n<img src=\"data:{mime};base64,{b64}\" alt=\"notebook output\">\n</div>"
            )
        }
        _ => fenced("text", &strip_ansi(&text)),
    }
}

fn render_error(ename: &str, evalue: &str, traceback: &[String]) -> String {
    let mut text = format!("{ename}: {evalue}");
    let traceback = strip_ansi(&traceback.join("\n"));
    if !traceback.trim().is_empty() && traceback.trim() != text.trim() {
        text.push_str("\n\n");
        text.push_str(&traceback);
    }
    format!(
        "<div class=\"notebook-error\" style=\"border-left: 4px solid #c62828; padding-left: 0.5em\">\n\
         <p><strong>Error: {}</strong></p>\n\n{}\n\n</div>",
        html_escape(ename),
        fenced("text", &strip_ansi(&text))
    )
}

/// A MIME value is a string or a list of lines; JSON values (application/json) become JSON text.
fn mime_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(lines) if lines.iter().all(Value::is_string) => lines.iter().filter_map(Value::as_str).collect(),
        other => other.to_string(),
    }
}

/// Drops the XML declaration and doctype, which have no place inside an HTML page.
fn inline_svg(svg: &str) -> String {
    match svg.find("<svg") {
        Some(start) => svg[start..].to_string(),
        None => svg.to_string(),
    }
}

/// Raw HTML for a CommonMark HTML block: such a block ends at the first blank line, after which
/// the rest would be read as markdown (indented lines as code). Blank lines become empty
/// comments, which render as nothing (inside `<pre>` the line break stays).
fn raw_html(html: &str) -> String {
    html.trim_matches('\n').lines().map(|line| if line.trim().is_empty() { "<!---->" } else { line }).collect::<Vec<_>>().join("\n")
}

/// A fenced code block whose fence is longer than any backtick run in the text.
pub fn fenced(info: &str, text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    let body = text.trim_end_matches('\n');
    format!("{fence}{info}\n{body}\n{fence}")
}

/// Removes ANSI escape sequences (colours in tracebacks and compiler messages).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            // CSI: ESC [ parameters, intermediates, one final byte in @..~
            Some('[') => {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            // OSC: ESC ] ... terminated by BEL or ESC \
            Some(']') => {
                chars.next();
                while let Some(c) = chars.next() {
                    if c == '\u{7}' {
                        break;
                    }
                    if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                        chars.next();
                        break;
                    }
                }
            }
            Some(_) => {
                chars.next();
            }
            None => {}
        }
    }
    out
}

pub fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Notebook {
        Notebook::parse(include_str!("../tests/fixtures/every-output.ipynb")).unwrap()
    }

    #[test]
    fn renders_every_output_kind() {
        let expected = include_str!("../tests/fixtures/every-output.md");
        let rendered = fixture().to_markdown();
        assert_eq!(rendered, expected, "rendered:\n{rendered}");
    }

    #[test]
    fn markdown_cells_verbatim_and_code_fenced() {
        let md = fixture().to_markdown();
        assert!(md.starts_with("# Every output kind\n\nA markdown cell with **bold** text.\n"));
        assert!(md.contains("```rust,ignore\nlet x = 1 + 1;\nx\n```"));
    }

    #[test]
    fn outputs_by_kind() {
        let md = fixture().to_markdown();
        // text/plain and stdout
        assert!(md.contains("```text\n2\n```"));
        assert!(md.contains("```text\nhello\nworld\n```"), "consecutive stdout outputs are joined");
        // text/markdown verbatim, preferred to text/plain
        assert!(md.contains("| engine | tok/s |\n|---|---|\n| lm_rs | 445.5 |"));
        assert!(!md.contains("plain fallback of the table"));
        // text/html raw in a div, no blank line left inside it
        assert!(md.contains(
            "<div class=\"notebook-output notebook-html\">\n<table><tr><td>1</td></tr></table>\n<!---->\n<p>after a blank line</p>\n</div>"
        ));
        // svg inline without its XML declaration
        assert!(md.contains("<div class=\"notebook-output notebook-svg\">\n<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(!md.contains("<?xml"));
        // png as a data URI, line breaks of the base64 removed
        assert!(md.contains("<img src=\"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==\""));
        // stderr in its own box
        assert!(md.contains("<div class=\"notebook-stderr\""));
        // error: name, value, traceback, no ANSI escapes
        assert!(md.contains("<p><strong>Error: ValueError</strong></p>"));
        assert!(md.contains("ValueError: bad value"));
        assert!(md.contains("----> 1 raise ValueError(\"bad value\")"));
        assert!(!md.contains('\u{1b}'));
    }

    #[test]
    fn tags_remove_parts() {
        let md = fixture().to_markdown();
        assert!(!md.contains("hidden setup"), "remove-input drops the source");
        assert!(md.contains("```text\nsetup done\n```"), "but keeps the output");
        assert!(!md.contains("removed entirely"));
    }

    #[test]
    fn strips_ansi_sequences() {
        assert_eq!(strip_ansi("\u{1b}[0;31mred\u{1b}[0m plain \u{1b}]8;;http://x\u{7}link"), "red plain link");
    }

    #[test]
    fn fence_longer_than_backticks_inside() {
        assert_eq!(fenced("text", "a ``` b"), "````text\na ``` b\n````");
        assert_eq!(fenced("text", "plain\n"), "```text\nplain\n```");
    }

    #[test]
    fn rejects_other_nbformat() {
        let err = Notebook::parse(r#"{"nbformat": 3, "cells": []}"#).unwrap_err();
        assert!(err.to_string().contains("nbformat 3"), "{err}");
        assert!(Notebook::parse("{").is_err());
    }

    #[test]
    fn unknown_mime_is_said_not_dropped() {
        let mut data = Map::new();
        data.insert("application/vnd.custom".into(), Value::String("x".into()));
        assert!(render_mime_bundle(&data).contains("application/vnd.custom"));
    }

    #[test]
    fn markdown_attachments_become_data_uris() {
        let mut att = Map::new();
        att.insert("a.png".into(), serde_json::json!({"image/png": "QUJD\n"}));
        assert_eq!(with_attachments("![x](attachment:a.png)", &att), "![x](data:image/png;base64,QUJD)");
    }
}
