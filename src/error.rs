//! The library's error type, and which errors are the user's to fix (exit code 2).

use std::fmt;
use std::path::PathBuf;

/// One problem found in a scenario: where it is and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path, e.g. `venues[1].maintenance_margin`.
    pub path: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Everything that can go wrong in `cascade`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The scenario file (or its overrides) is invalid; every problem found is listed.
    #[error("{} is invalid:{}", file.display(), list(problems))]
    InvalidScenario {
        /// The scenario file.
        file: PathBuf,
        /// Every problem found, in file order.
        problems: Vec<Problem>,
    },
    /// Some other input the user gave is unusable (a flag, an output path, a result directory).
    #[error("{0}")]
    BadInput(String),
    /// The run was interrupted (Ctrl-C); nothing was written.
    #[error("interrupted; no result was written")]
    Interrupted,
    /// A sweep was interrupted: the cell being run was not written, the cells finished before
    /// it were.
    #[error(
        "interrupted; the cell being run was not written, the cells finished before it are \
         kept in {0}: add --resume to the same command to finish the sweep"
    )]
    SweepInterrupted(PathBuf),
    /// Reading or writing a file failed for a reason outside the user's input.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the file.
        context: String,
        /// The operating system's error.
        source: std::io::Error,
    },
}

fn list(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("\n  - {p}")).collect()
}

impl Error {
    /// The process exit code this error maps to: 2 for bad input, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::InvalidScenario { .. } | Error::BadInput(_) => 2,
            Error::Io { .. } | Error::Interrupted | Error::SweepInterrupted(_) => 1,
        }
    }

    /// An I/O error with the context that names the file.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// An I/O error on a path the user named: bad input (exit code 2) where the path itself is
    /// the problem (no permission, a read-only file system, a name the system refuses, a
    /// folder that is a file), an I/O failure otherwise (a full disk, say).
    pub fn at_path(context: impl Into<String>, source: std::io::Error) -> Self {
        use std::io::ErrorKind::{
            InvalidFilename, IsADirectory, NotADirectory, NotFound, PermissionDenied,
            ReadOnlyFilesystem,
        };
        match source.kind() {
            PermissionDenied | ReadOnlyFilesystem | InvalidFilename | NotADirectory
            | IsADirectory | NotFound => Error::BadInput(format!("{}: {source}", context.into())),
            _ => Error::io(context, source),
        }
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Refuses a list of files or directories that names one of them twice (two spellings, or a
/// link such as `output/x/latest` beside its target): it would be counted twice. `what` says
/// what two of them are ("the same directory"), `ask` what to do instead.
pub fn named_once(paths: &[PathBuf], what: &str, ask: &str) -> Result<()> {
    let mut seen: Vec<(PathBuf, &PathBuf)> = Vec::new();
    for path in paths {
        let real = path.canonicalize().unwrap_or_else(|_| path.clone());
        if let Some((_, first)) = seen.iter().find(|(r, _)| *r == real) {
            return Err(Error::BadInput(format!(
                "{} and {} are {what}; {ask}",
                first.display(),
                path.display()
            )));
        }
        seen.push((real, path));
    }
    Ok(())
}
