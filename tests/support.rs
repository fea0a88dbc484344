//! What several chapters share: running the binary (to its end, or until a signal stops it),
//! and scenario text without its seed.

use std::path::Path;
use std::process::Command;

/// Runs `cascade` in `dir`; returns (exit code, stdout, stderr). A panic is always a failure,
/// whatever the exit code the test expects.
pub fn cascade(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cascade"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        stderr,
    )
}

/// Runs `cascade` in `dir`, sends it `signal` (`-INT`, `-TERM`, ...) once it has run 1.5 s,
/// and waits for it to stop; returns (exit code, stderr). The run must still be running then.
pub fn interrupted(dir: &Path, args: &[&str], signal: &str) -> (i32, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_cascade"))
        .current_dir(dir)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {signal}: the run had already ended");
    let out = child.wait_with_output().expect("the run ends");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    (out.status.code().unwrap_or(-1), stderr)
}

/// Scenario text without its `seed = ...` line, and so without a fixed seed.
pub fn without_seed(text: &str) -> String {
    let unseeded: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("seed"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(unseeded, text, "the scenario sets a seed");
    unseeded
}
