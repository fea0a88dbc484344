//! What a signal does inside the process: its own test binary, because what a signal sets
//! and clears is process-wide (the flag [`cascade::runner::INTERRUPT`], the lists of what a
//! second signal removes), and the tests running beside these in a shared binary would see
//! the flag and stop, or have their folders removed under them.

use std::path::Path;
use std::sync::atomic::Ordering;

use cascade::market::Market;
use cascade::results::{Destination, Staging, remove_partial};
use cascade::runner::INTERRUPT;
use cascade::{Error, Scenario, policy};

#[test]
fn an_interrupt_stops_building_the_market_of_every_policy() {
    let scenario = Scenario::load(Path::new("tests/fixtures/tiny.toml"), &[]).expect("valid");
    let books = scenario.books();
    // Built without a signal, so the refusals below are the signal's doing.
    assert!(Market::baseline(&scenario, &books).is_ok());
    assert_eq!(
        policy::markets(&scenario, &books).map(|m| m.len()).ok(),
        Some(2)
    );

    // Building a market looks at the flag (before each venue's ladders, which this does not
    // tell apart from a look before the first only: that a run of several venues of millions
    // of positions stops within one venue's build was measured by hand, with a SIGTERM).
    INTERRUPT.store(true, Ordering::SeqCst);
    assert!(matches!(
        Market::baseline(&scenario, &books),
        Err(Error::Interrupted)
    ));
    assert!(matches!(
        policy::markets(&scenario, &books),
        Err(Error::Interrupted)
    ));
    INTERRUPT.store(false, Ordering::SeqCst);
}

/// What is left in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn an_exit_that_skips_destructors_still_removes_what_was_being_written() {
    // What the second interrupt's handler calls before it exits at once, with a run's --out
    // planned and its staging directory being filled: `remove_partial` must know every
    // staging directory, a report's as well as a run's, and the folders made for --out, which
    // go as they do on the first interrupt. (One test: it empties the lists every test adds to.)
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("theirs")).unwrap();
    let planned = |out: &str| {
        Destination::plan(Some(&tmp.path().join(out)), tmp.path(), "s", None, false).unwrap()
    };
    let _destination = planned("sub/deeper/x");
    let _kept = planned("theirs/made/y");
    std::fs::write(tmp.path().join("theirs/made/notes.txt"), "").unwrap();
    let run = Staging::new_in(&tmp.path().join("sub/deeper"), ".cascade-partial-").unwrap();
    std::fs::write(run.path().join("paths.csv"), "half").unwrap();
    let report = Staging::new_in(tmp.path(), ".cascade-report-").unwrap();
    std::fs::write(report.path().join("report.html"), "half").unwrap();
    remove_partial();
    // A folder written into since stays; one that was there before is never removed.
    assert_eq!(names(tmp.path()), ["theirs"]);
    assert_eq!(names(&tmp.path().join("theirs/made")), ["notes.txt"]);
}
