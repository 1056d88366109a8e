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

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git").arg("-C").arg(dir).args(args).output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A checkout holding the files of its latest commit over the `.git` of the one before (as the
    /// GPU machine gets it) is that commit when its files hash to the commit's tree, and dirty once
    /// a file differs.
    #[test]
    fn a_copied_checkout_is_its_commit_exactly_when_its_files_are() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        sh(root, &["init", "-q"]);
        for (k, v) in [("user.email", "t@t"), ("user.name", "t")] {
            sh(root, &["config", k, v]);
        }
        std::fs::write(root.join(".gitignore"), "/results/*\n").unwrap();
        std::fs::write(root.join("a.txt"), "one\n").unwrap();
        sh(root, &["add", "-A"]);
        sh(root, &["commit", "-qm", "1"]);
        let first = sh(root, &["rev-parse", "HEAD"]);
        std::fs::write(root.join("a.txt"), "two\n").unwrap();
        std::fs::create_dir_all(root.join("results/run")).unwrap();
        std::fs::write(root.join("results/run/summary.json"), "{}\n").unwrap();
        sh(root, &["add", "-A"]);
        sh(root, &["add", "-f", "results/run/summary.json"]);
        sh(root, &["commit", "-qm", "2"]);
        let (second, tree) = (sh(root, &["rev-parse", "HEAD"]), sh(root, &["rev-parse", "HEAD^{tree}"]));
        let paths = root.join("../paths");
        std::fs::write(&paths, sh(root, &["ls-files"]) + "\n").unwrap();
        // The machine's copy: the second commit's files, the first commit's history and index.
        sh(root, &["reset", "-q", &first]);
        assert_eq!(source(root).dirty, Some(true));
        std::env::set_var("BENCH_SOURCE_COMMIT", &second);
        std::env::set_var("BENCH_SOURCE_TREE", &tree);
        std::env::set_var("BENCH_SOURCE_PATHS", &paths);
        let s = source(root);
        assert_eq!((s.commit.as_deref(), s.dirty, s.by), (Some(second.as_str()), Some(false), "tree hash of the copied checkout"));
        assert!(check_clean(root, false).unwrap().is_none());
        std::fs::write(root.join("a.txt"), "three\n").unwrap();
        assert_eq!(source(root).commit.as_deref(), Some(first.as_str()));
        assert!(check_clean(root, false).unwrap_err().to_string().contains("uncommitted changes"));
        for k in ["BENCH_SOURCE_COMMIT", "BENCH_SOURCE_TREE", "BENCH_SOURCE_PATHS"] {
            std::env::remove_var(k);
        }
        let _ = std::fs::remove_file(&paths);
    }
}
