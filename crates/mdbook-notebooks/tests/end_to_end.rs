//! The binary as mdBook runs it: `supports <renderer>`, then `[context, book]` JSON through
//! stdin and stdout. The input fixture is what mdBook 0.5.4 sent for `tests/fixtures/book`
//! (captured with a `tee` preprocessor; its root replaced by `@ROOT@`). When mdBook itself is
//! found (`$MDBOOK`, or `~/.cache/inference-bench/tools/bin/mdbook` as `scripts/book.sh` installs
//! it), the fixture book is also built with it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_mdbook-notebooks");

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn pipe(input: &str) -> Output {
    let mut child = Command::new(BIN).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn captured_input() -> String {
    let text = std::fs::read_to_string(fixtures().join("mdbook-0.5.4-input.json")).unwrap();
    text.replace("@ROOT@", fixtures().to_str().unwrap())
}

#[test]
fn supports_html_and_markdown_only() {
    let code = |r: &str| Command::new(BIN).args(["supports", r]).status().unwrap().code();
    assert_eq!(code("html"), Some(0));
    assert_eq!(code("markdown"), Some(0));
    assert_eq!(code("latex"), Some(1));
}

#[test]
fn book_through_the_binary() {
    let input = captured_input();
    let output = pipe(&input);
    assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    let book: Value = serde_json::from_slice(&output.stdout).unwrap();

    // The same book with the two directives expanded, nothing else changed.
    let mut expected: Value = serde_json::from_str::<Value>(&input).unwrap()[1].clone();
    let every = std::fs::read_to_string(fixtures().join("every-output.md")).unwrap();
    let chapter = &mut expected["items"][2]["Chapter"];
    chapter["content"] = format!("# A chapter with a notebook\n\n{every}").into();
    chapter["sub_items"][0]["Chapter"]["content"] = "# Placeholder\n\nPlaceholder notebook for the preprocessor's tests.\n".into();
    assert_eq!(book, expected);
    assert_eq!(book["items"][1], serde_json::json!({"PartTitle": "Notebooks"}));
    assert_eq!(book["items"][4], "Separator");
}

#[test]
fn missing_notebook_fails_naming_chapter_and_notebook() {
    let input = captured_input().replace("../placeholder.ipynb", "../not-there.ipynb");
    let output = pipe(&input);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("chapter book/placeholder.md"), "{stderr}");
    assert!(stderr.contains("{{#notebook ../not-there.ipynb}}"), "{stderr}");
    assert!(stderr.contains("not-there.ipynb: No such file"), "{stderr}");
}

#[test]
fn invalid_notebook_fails() {
    let input = captured_input().replace("../placeholder.ipynb", "../invalid.ipynb");
    let output = pipe(&input);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("chapter book/placeholder.md") && stderr.contains("invalid.ipynb"), "{stderr}");
}

#[test]
fn garbage_input_fails() {
    assert_eq!(pipe("not json").status.code(), Some(1));
    assert_eq!(pipe(r#"{"sections": []}"#).status.code(), Some(1));
}

fn find_mdbook() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("MDBOOK") {
        return Some(PathBuf::from(path));
    }
    let home = std::env::var_os("HOME")?;
    let cache = std::env::var_os("BENCH_CACHE").map(PathBuf::from).unwrap_or_else(|| Path::new(&home).join(".cache/inference-bench"));
    Some(cache.join("tools/bin/mdbook")).filter(|p| p.exists())
}

#[test]
fn real_mdbook_builds_the_fixture_book() {
    let Some(mdbook) = find_mdbook() else {
        eprintln!("mdbook not found (set MDBOOK or run scripts/book.sh): real-mdbook build not run");
        return;
    };
    let out_dir = std::env::temp_dir().join(format!("mdbook-notebooks-e2e-{}", std::process::id()));
    let output = Command::new(&mdbook)
        .arg("build")
        .arg("-d")
        .arg(&out_dir)
        .arg(fixtures())
        .env("MDBOOK_PREPROCESSOR__NOTEBOOKS__COMMAND", BIN)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let html = std::fs::read_to_string(out_dir.join("chapter.html")).unwrap();
    std::fs::remove_dir_all(&out_dir).ok();
    assert!(html.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""), "inline SVG kept");
    assert!(html.contains("data:image/png;base64,iVBORw0KGgo"), "PNG kept");
    assert!(html.contains("<td>lm_rs</td>"), "markdown output rendered as a table");
    assert!(html.contains("<p>after a blank line</p>"), "HTML after a blank line stays HTML");
    assert!(html.contains("Error: ValueError"), "error shown");
    assert!(!html.contains("{{#notebook"), "directive expanded");
}
