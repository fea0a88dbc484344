//! Records which commit the binary was built from (`CASCADE_BUILD`), so that results carry it
//! beside the crate version: the version is bumped on releases, the model changes between them,
//! and shards or sweep cells of one study must come from the same code.

use std::path::Path;
use std::process::Command;

/// Runs git without taking its optional locks (a plain `git status` may rewrite the index).
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("--no-optional-locks")
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// What the binary is made of: its "dirty" flag looks at these alone, so an edited README
/// or test neither marks the build dirty nor rebuilds it.
const SOURCES: [&str; 6] = [
    "src",
    "build.rs",
    "Cargo.toml",
    "Cargo.lock",
    "assets",
    "scenarios/quickstart.toml",
];

fn main() {
    // Rebuild the identity when the sources or the commit change (HEAD and the branch refs;
    // the git directory is asked of git: in a worktree `.git` is a file naming it).
    let mut watched: Vec<String> = SOURCES.iter().map(|s| s.to_string()).collect();
    for dir in [
        git(&["rev-parse", "--git-dir"]),
        git(&["rev-parse", "--git-common-dir"]),
    ]
    .into_iter()
    .flatten()
    {
        for file in ["HEAD", "refs", "packed-refs"] {
            watched.push(format!("{dir}/{file}"));
        }
    }
    for path in watched {
        if Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let build = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(commit) => {
            let mut status = vec!["status", "--porcelain", "--untracked-files=no", "--"];
            status.extend(SOURCES);
            // Uncommitted changes to the sources make the commit a poor name for the code.
            let dirty = git(&status).is_none_or(|changes| !changes.is_empty());
            format!("git {commit}{}", if dirty { "-dirty" } else { "" })
        }
        None => "unknown (not built from a git checkout)".to_string(),
    };
    println!("cargo:rustc-env=CASCADE_BUILD={build}");
}
