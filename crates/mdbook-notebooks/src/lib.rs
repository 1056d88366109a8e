//! mdBook preprocessor that renders Jupyter notebooks, with their saved outputs, as chapters.
//!
//! A chapter line `{{#notebook ../notebooks/latency.ipynb}}` (path relative to the chapter
//! file) is replaced by the notebook: markdown cells verbatim, code cells fenced, outputs by
//! their richest saved representation. A missing or invalid notebook fails the build.

pub mod book;
pub mod notebook;

pub use book::run;
pub use notebook::Notebook;

/// Renderers whose output is HTML-capable markdown: the ones this preprocessor runs for.
pub const SUPPORTED_RENDERERS: [&str; 2] = ["html", "markdown"];
