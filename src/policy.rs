//! Policies: overlays on the venues of the cooperating jurisdictions, each giving a [`Market`].
//!
//! The first policy is the baseline. A policy whose `cooperating` list is empty changes
//! nothing, so its market, and therefore its results, equal the baseline's exactly.

use crate::book::Position;
use crate::market::Market;
use crate::scenario::Scenario;

/// One market per policy, in scenario order, all from the same books.
pub fn markets(scenario: &Scenario, books: &[Vec<Position>]) -> Vec<Market> {
    scenario
        .file()
        .policies
        .iter()
        .map(|_| Market::baseline(scenario, books))
        .collect()
}
