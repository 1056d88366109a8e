//! The mdBook 0.5 preprocessor protocol, spoken without the mdbook crates.
//!
//! mdBook writes `[context, book]` as JSON to stdin and reads the book back from stdout.
//! The book is `{"items": [BookItem]}` where a BookItem is `{"Chapter": {name, content, number,
//! sub_items, path, source_path, parent_names}}`, `"Separator"` or `{"PartTitle": "..."}`.
//! The book is kept as a `serde_json::Value`, so fields this preprocessor does not know
//! travel through unchanged. A chapter's `source_path` is relative to the book's `src`
//! directory (`context.config.book.src`, default `src`, itself relative to `context.root`).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::notebook::Notebook;

/// The directive a chapter uses, alone on its line: `{{#notebook ../notebooks/latency.ipynb}}`.
const DIRECTIVE: &str = "{{#notebook ";

/// Reads `[context, book]`, returns the book with every notebook directive expanded.
pub fn run(input: Value) -> Result<Value> {
    let Value::Array(mut pair) = input else { bail!("input is not a [context, book] JSON array") };
    if pair.len() != 2 {
        bail!("input is an array of {} items, expected [context, book]", pair.len());
    }
    let mut book = pair.pop().unwrap();
    let context = pair.pop().unwrap();
    let root = context["root"].as_str().ok_or_else(|| anyhow!("context.root is missing"))?;
    let src = context["config"]["book"]["src"].as_str().unwrap_or("src");
    let src_dir = Path::new(root).join(src);

    let items = book
        .get_mut("items")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| anyhow!("book.items is missing: this preprocessor speaks mdBook 0.5"))?;
    for item in items {
        expand_item(item, &src_dir, Path::new(root))?;
    }
    Ok(book)
}

fn expand_item(item: &mut Value, src_dir: &Path, root: &Path) -> Result<()> {
    let Some(chapter) = item.get_mut("Chapter") else { return Ok(()) }; // Separator, PartTitle
    if let Some(source_path) = chapter["source_path"].as_str().map(PathBuf::from) {
        let chapter_file = src_dir.join(&source_path);
        let shown = chapter_file.strip_prefix(root).unwrap_or(&chapter_file).to_path_buf();
        if let Some(content) = chapter["content"].as_str() {
            let expanded = expand_content(content, &chapter_file).with_context(|| format!("chapter {}", shown.display()))?;
            chapter["content"] = Value::String(expanded);
        }
    }
    if let Some(sub_items) = chapter.get_mut("sub_items").and_then(Value::as_array_mut) {
        for sub in sub_items {
            expand_item(sub, src_dir, root)?;
        }
    }
    Ok(())
}

/// Replaces each directive line outside fenced code with the rendered notebook. The notebook
/// path is relative to the chapter file.
pub fn expand_content(content: &str, chapter_file: &Path) -> Result<String> {
    let mut out = String::with_capacity(content.len());
    let mut fence: Option<String> = None; // the opening fence while inside a code block
    for line in content.split_inclusive('\n') {
        let trimmed = line.trim();
        if let Some(open) = &fence {
            if trimmed.starts_with(open.as_str()) && trimmed.trim_start_matches(open.chars().next().unwrap()).is_empty() {
                fence = None;
            }
            out.push_str(line);
            continue;
        }
        if let Some(open) = fence_opening(trimmed) {
            fence = Some(open);
            out.push_str(line);
            continue;
        }
        match parse_directive(trimmed) {
            Some(target) => {
                let dir = chapter_file.parent().unwrap_or(Path::new("."));
                let notebook_path = dir.join(target);
                let markdown = render_file(&notebook_path).with_context(|| format!("{{{{#notebook {target}}}}}"))?;
                out.push_str(&markdown);
                if !markdown.ends_with('\n') {
                    out.push('\n');
                }
            }
            None => out.push_str(line),
        }
    }
    Ok(out)
}

/// `{{#notebook path}}` alone on a line gives `path`.
fn parse_directive(line: &str) -> Option<&str> {
    let rest = line.strip_prefix(DIRECTIVE)?.strip_suffix("}}")?.trim();
    (!rest.is_empty()).then_some(rest)
}

/// A line opening a fenced code block gives its fence (three or more ` or ~).
fn fence_opening(line: &str) -> Option<String> {
    let c = line.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let run: String = line.chars().take_while(|x| *x == c).collect();
    (run.len() >= 3).then_some(run)
}

/// Reads and renders one notebook file.
pub fn render_file(path: &Path) -> Result<String> {
    let json = std::fs::read_to_string(path).with_context(|| format!("cannot read notebook {}", path.display()))?;
    let notebook = Notebook::parse(&json).with_context(|| format!("notebook {}", path.display()))?;
    Ok(notebook.to_markdown())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
    }

    #[test]
    fn directive_replaced_relative_to_chapter() {
        let chapter = fixtures().join("book/chapter.md");
        let out = expand_content("# Title\n\n{{#notebook ../every-output.ipynb}}\n\nAfter.\n", &chapter).unwrap();
        assert!(out.starts_with("# Title\n\n# Every output kind\n"));
        assert!(out.ends_with("\n\nAfter.\n"));
        assert!(!out.contains("{{#notebook"));
    }

    #[test]
    fn directive_in_code_or_inline_left_alone() {
        let chapter = fixtures().join("chapter.md");
        let text = "Use `{{#notebook x.ipynb}}` in a line.\n\n```md\n{{#notebook missing.ipynb}}\n```\n";
        assert_eq!(expand_content(text, &chapter).unwrap(), text);
    }

    #[test]
    fn missing_notebook_names_chapter_and_path() {
        let input = serde_json::json!([
            {"root": fixtures().to_str().unwrap(), "config": {"book": {"src": "book"}}, "renderer": "html", "mdbook_version": "0.5.4"},
            {"items": [{"Chapter": {"name": "Latency", "content": "# Latency\n{{#notebook ../nope.ipynb}}\n",
              "number": [1], "sub_items": [], "path": "latency.md", "source_path": "latency.md", "parent_names": []}}]}
        ]);
        let err = format!("{:#}", run(input).unwrap_err());
        assert!(err.contains("chapter book/latency.md"), "{err}");
        assert!(err.contains("{{#notebook ../nope.ipynb}}"), "{err}");
        assert!(err.contains("nope.ipynb"), "{err}");
    }

    #[test]
    fn invalid_notebook_is_an_error() {
        let chapter = fixtures().join("chapter.md");
        let err = format!("{:#}", expand_content("{{#notebook invalid.ipynb}}\n", &chapter).unwrap_err());
        assert!(err.contains("invalid.ipynb") && err.contains("not a valid nbformat 4 notebook"), "{err}");
    }

    #[test]
    fn nested_chapters_drafts_and_separators() {
        let input = serde_json::json!([
            {"root": fixtures().to_str().unwrap(), "config": {"book": {"src": "book"}}, "renderer": "html", "mdbook_version": "0.5.4"},
            {"items": [
                "Separator",
                {"PartTitle": "Notebooks"},
                {"Chapter": {"name": "Draft", "content": "", "number": null, "sub_items": [], "path": null, "source_path": null, "parent_names": []}},
                {"Chapter": {"name": "Parent", "content": "parent\n", "number": [1], "path": "p.md", "source_path": "p.md", "parent_names": [],
                  "sub_items": [{"Chapter": {"name": "Child", "content": "{{#notebook ../every-output.ipynb}}\n", "number": [1, 1],
                    "sub_items": [], "path": "c.md", "source_path": "c.md", "parent_names": ["Parent"]}}]}}
            ]}
        ]);
        let book = run(input).unwrap();
        let child = &book["items"][3]["Chapter"]["sub_items"][0]["Chapter"];
        assert!(child["content"].as_str().unwrap().starts_with("# Every output kind"));
        assert_eq!(child["number"], serde_json::json!([1, 1]));
        assert_eq!(book["items"][0], "Separator");
        assert_eq!(book["items"][3]["Chapter"]["content"], "parent\n");
    }
}
