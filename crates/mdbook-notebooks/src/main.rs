//! `mdbook-notebooks`: the command mdBook runs as `[preprocessor.notebooks]`.
//!
//! ```text
//! mdbook-notebooks supports html     # exit 0: this renderer is supported
//! mdbook-notebooks < input.json      # [context, book] in, book out
//! ```

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [cmd, renderer] if cmd == "supports" => {
            if mdbook_notebooks::SUPPORTED_RENDERERS.contains(&renderer.as_str()) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        [] => match preprocess() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mdbook-notebooks: error: {e:#}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("usage: mdbook-notebooks [supports <renderer>]  (reads [context, book] JSON on stdin)");
            ExitCode::from(2)
        }
    }
}

fn preprocess() -> Result<()> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).context("cannot read stdin")?;
    let input = serde_json::from_str(&input).context("stdin is not JSON")?;
    let book = mdbook_notebooks::run(input)?;
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer(&mut stdout, &book).context("cannot write the book to stdout")?;
    stdout.flush()?;
    Ok(())
}
