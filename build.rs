//! Records which commit the binary was built from (`CASCADE_BUILD`), so that results carry it
//! beside the crate version: the version is bumped on releases, the model changes between them,
//! and shards or sweep cells of one study must come from the same code.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    // Rebuild the identity when the commit or the working tree changes.
    for path in [
        ".git/HEAD",
        ".git/index",
        ".git/refs",
        ".git/packed-refs",
        "src",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        if Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let build = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(commit) => {
            // Uncommitted changes to tracked files make the commit a poor name for the code.
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_none_or(|changes| !changes.is_empty());
            format!("git {commit}{}", if dirty { "-dirty" } else { "" })
        }
        None => "unknown (not built from a git checkout)".to_string(),
    };
    println!("cargo:rustc-env=CASCADE_BUILD={build}");
}
