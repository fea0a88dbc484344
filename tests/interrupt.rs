//! A signal that arrives while the books are being built: its own test binary, because the
//! flag a signal sets ([`cascade::runner::INTERRUPT`]) is process-wide, and the integration
//! tests running beside this one in a shared binary would see it and stop.

use std::path::Path;
use std::sync::atomic::Ordering;

use cascade::market::Market;
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
