//! The `cascade` command line: a thin layer over the library.
//!
//! `main` runs one command, prints the whole error chain, and maps errors to exit codes:
//! 0 success, 2 bad input (scenario, flags, paths), 1 anything else.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
