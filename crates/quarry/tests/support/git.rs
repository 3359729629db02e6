//! Git repositories for the git source's tests, made with the git CLI.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::stderr;

/// Runs git in `dir` with a fixed identity, no signing and `main` as the
/// default branch; returns its trimmed stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=Quarry Test",
            "-c",
            "user.email=t@example.invalid",
        ])
        .args([
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", stderr(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Writes `files` (path, text) under `repo`.
pub fn write(repo: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let p = repo.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

/// Commits everything in the work tree; returns the new commit's SHA.
pub fn commit_all(repo: &Path, message: &str) -> String {
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", message]);
    git(repo, &["rev-parse", "HEAD"])
}

/// Writes `files` and commits them.
pub fn commit(repo: &Path, files: &[(&str, &str)], message: &str) -> String {
    write(repo, files);
    commit_all(repo, message)
}

/// `parent/handbook`: a repository whose first commit has four pages under
/// `docs/` (intro, deploy, old, moved) and `extra`.
pub fn handbook_repo(parent: &Path, extra: &[(&str, &str)]) -> PathBuf {
    let repo = parent.join("handbook");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    write(
        &repo,
        &[
            (
                "docs/intro.md",
                "# Intro\n\nThe aardvark onboarding guide.\n",
            ),
            (
                "docs/deploy.md",
                "# Deploy\n\nThe bison rollout checklist.\n",
            ),
            ("docs/old.md", "# Old\n\nThe cormorant archive.\n"),
            ("docs/moved.md", "# Moved\n\nThe dromedary handbook page.\n"),
        ],
    );
    commit(&repo, extra, "first");
    repo
}
