//! The one place that decides whether and how progress is shown.
//!
//! Nothing else in the library knows about terminals: the runner calls [`Progress::advance`]
//! and the bar (or its hidden stand-in) does the rest. indicatif hides the bar by itself when
//! stderr is not a terminal, so logs of batch jobs stay clean.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress display over a known number of paths.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar over `total` paths, or a hidden one when `show` is false.
    pub fn paths(total: u64, show: bool) -> Progress {
        let bar = if show {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} paths ({per_sec}, eta {eta})",
                )
                .expect("the template is valid"),
            );
            bar
        } else {
            ProgressBar::hidden()
        };
        Progress { bar }
    }

    /// Records `n` more finished paths.
    pub fn advance(&self, n: usize) {
        self.bar.inc(n as u64);
    }

    /// Clears the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
