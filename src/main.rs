//! The `cascade` command line: a thin layer over the library.
//!
//! `main` runs one command, prints the whole error chain, and maps errors to exit codes:
//! 0 success, 2 bad input (scenario, flags, paths), 1 anything else.

mod cli;

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Written, not printed: a closed standard error must not turn the error into a
            // panic (exit 101) that hides its exit code.
            let _ = writeln!(std::io::stderr(), "error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
