//! Which code a run measured. A reference run comes from a clean commit; a run from a checkout
//! with uncommitted changes is refused unless asked for, and then keeps the diff beside it.

use std::path::Path;
use std::process::Command;

fn git(root: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git").arg("-C").arg(root).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).to_string())
}

/// The commit whose files the checkout holds, and whether it holds anything else.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub commit: Option<String>,
    pub dirty: Option<bool>,
    /// How the commit was established: `HEAD`, or the tree hash of a copied checkout.
    pub by: &'static str,
}

/// The git tree of the working tree as a commit of it would hold it, computed on a scratch index
/// so the checkout's own is not touched: the files `paths` lists (the sent commit's, some of them
/// tracked although ignored) and every untracked file that is not ignored.
fn working_tree_hash(root: &Path, paths: &Path) -> Option<String> {
    let index = std::env::temp_dir().join(format!("bench-index-{}", std::process::id()));
    let run = |args: &[&str]| {
        let out = Command::new("git").arg("-C").arg(root).args(args).env("GIT_INDEX_FILE", &index).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let _ = std::fs::remove_file(&index);
    let list = format!("--pathspec-from-file={}", paths.display());
    let tree = run(&["add", "-f", &list]).and_then(|_| run(&["add", "-A"])).and_then(|_| run(&["write-tree"]));
    let _ = std::fs::remove_file(&index);
    tree
}

/// Where the code came from. A copy of a checkout made without its latest history (the GPU
/// machine gets the files of a commit with an older `.git`) names the commit it was made from in
/// `BENCH_SOURCE_COMMIT`, that commit's tree in `BENCH_SOURCE_TREE` and its file list in
/// `BENCH_SOURCE_PATHS` (a file); when the files hash to that tree, they are that commit exactly.
pub fn source(root: &Path) -> Source {
    let status = git(root, &["status", "--porcelain"]);
    if let (Ok(commit), Ok(tree), Some(paths)) =
        (std::env::var("BENCH_SOURCE_COMMIT"), std::env::var("BENCH_SOURCE_TREE"), std::env::var_os("BENCH_SOURCE_PATHS"))
    {
        if working_tree_hash(root, Path::new(&paths)).as_deref() == Some(tree.trim()) {
            return Source { commit: Some(commit.trim().to_string()), dirty: Some(false), by: "tree hash of the copied checkout" };
        }
    }
    Source {
        commit: git(root, &["rev-parse", "HEAD"]).map(|s| s.trim().to_string()),
        dirty: status.map(|s| !s.trim().is_empty()),
        by: "HEAD",
    }
}

/// Checks that the checkout at `root` is a clean git tree. With `allow_dirty`, a dirty (or
/// non-git) tree is accepted and the returned text is what the run keeps as `git.diff`: the
/// changes against HEAD and the untracked files' names.
pub fn check_clean(root: &Path, allow_dirty: bool) -> anyhow::Result<Option<String>> {
    let Some(status) = git(root, &["status", "--porcelain"]) else {
        anyhow::ensure!(
            allow_dirty,
            "{} is not a git checkout, so the run could not name its commit; pass --allow-dirty to run anyway",
            root.display()
        );
        return Ok(Some("not a git checkout\n".into()));
    };
    if status.trim().is_empty() || source(root).dirty == Some(false) {
        return Ok(None);
    }
    if !allow_dirty {
        let files: Vec<&str> = status.lines().take(8).collect();
        anyhow::bail!(
            "the checkout has uncommitted changes ({}{}); commit them, or pass --allow-dirty (the run then keeps git.diff)",
            files.join("; "),
            if status.lines().count() > 8 { "; …" } else { "" }
        );
    }
    let diff = git(root, &["diff", "HEAD"]).unwrap_or_default();
    let untracked = git(root, &["ls-files", "--others", "--exclude-standard"]).unwrap_or_default();
    Ok(Some(format!("{diff}\n# untracked files:\n{untracked}")))
}

/// A resumed run continues the same code: the commit must be the one the run started from.
pub fn check_resume(root: &Path, run_dir: &Path, allow_dirty: bool) -> anyhow::Result<()> {
    let env_path = run_dir.join("environment.json");
    let env: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&env_path).map_err(|e| anyhow::anyhow!("{}: {e} (not a run directory?)", env_path.display()))?,
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", env_path.display()))?;
    let started = env["git_commit"].as_str().map(str::to_string);
    let now = source(root).commit;
    anyhow::ensure!(
        started == now,
        "{} was started at commit {} and this checkout is at {}: a run is resumed with the code it started with",
        run_dir.display(),
        started.as_deref().unwrap_or("(none)"),
        now.as_deref().unwrap_or("(none)")
    );
    let dirty_before = run_dir.join("git.diff").exists();
    anyhow::ensure!(
        allow_dirty || !dirty_before,
        "{} was started from a dirty tree (see its git.diff); resume it with --allow-dirty",
        run_dir.display()
    );
    if check_clean(root, allow_dirty)?.is_some() && !dirty_before {
        anyhow::bail!("{} was started from a clean tree; commit or stash the changes before resuming it", run_dir.display());
    }
    Ok(())
}
