//! Policies: overlays on the venues of the cooperating jurisdictions, each giving a [`Market`].
//!
//! The first policy is the baseline. A policy whose `cooperating` list is empty changes
//! nothing, so its market, and therefore its results, equal the baseline's exactly. Overlays
//! never create or destroy positions: positions above a new leverage cap are topped up, or
//! (the migration share) moved whole to venues outside the cooperating set. Moved positions
//! change the venues' open interest (each venue's larger side), and so the index weights, but
//! not the study's: shares of open interest are of the baseline's figure under every policy.

use crate::book::{Position, Side};
use crate::error::Result;
use crate::ladder::{Fill, Ladder};
use crate::margin::MarginSchedule;
use crate::market::{Market, Supervisor, VenueTerms, open_interest, side_notional};
use crate::scenario::Scenario;
use crate::scenario::file::{FundSizing, ImpactLaw, Policy, View};

/// One market per policy, in scenario order, all from the same books; stopped by an
/// interrupt between venues ([`Market::build`]).
pub fn markets(scenario: &Scenario, books: &[Vec<Position>]) -> Result<Vec<Market>> {
    scenario
        .file()
        .policies
        .iter()
        .map(|p| market(scenario, books, p))
        .collect()
}

/// The market of one policy.
pub fn market(scenario: &Scenario, books: &[Vec<Position>], policy: &Policy) -> Result<Market> {
    let f = scenario.file();
    let cooperating = cooperating(scenario, policy);
    if !cooperating.contains(&true) {
        return Market::baseline(scenario, books);
    }
    let mut terms = terms(scenario, books, policy, &cooperating);
    let mut funds: Vec<f64> = f.venues.iter().map(|v| v.insurance_fund).collect();
    if let Some(pool) = policy.pooled_default_fund {
        let members: Vec<usize> = (0..terms.len()).filter(|&i| cooperating[i]).collect();
        let size = match pool.sizing {
            FundSizing::Sum => members.iter().map(|&i| funds[i]).sum(),
            FundSizing::Cover2 => {
                let stress = pool.stress_move.expect("validated for cover2");
                let losses: Vec<[f64; 2]> = members
                    .iter()
                    .map(|&i| stressed_losses(&terms[i], &f.venues[i], f.price.start, stress))
                    .collect();
                // The two largest losses within one move: a fall and a rise cannot happen
                // at once, so one member's loss on the fall and another's on the rise are
                // never added (PFMI's cover-2 is the two largest exposures in one scenario).
                let cover2 = [0, 1]
                    .map(|m| {
                        let mut exposures: Vec<f64> = losses.iter().map(|l| l[m]).collect();
                        exposures.sort_by(|a, b| b.total_cmp(a));
                        exposures.iter().take(2).sum::<f64>()
                    })
                    .into_iter()
                    .fold(0.0, f64::max);
                let own: f64 = members.iter().map(|&i| funds[i]).sum();
                own.max(cover2)
            }
        };
        // The pool takes the first member's slot; the other members' own funds are merged in.
        let pool_index = members[0];
        for &i in &members {
            funds[i] = 0.0;
            terms[i].fund = pool_index;
        }
        funds[pool_index] = size;
    }

    let mut market = Market::build(scenario, terms, funds)?;
    // Migration leaves the venues' sides unequal: an onshore venue losing more longs than
    // shorts keeps its shorts' open interest while the offshore one gains the longs'. The sum
    // would grow, and `open_interest_lost` and the timeline would divide by another figure
    // than the baseline's.
    market.total_open_interest = books.iter().map(|b| open_interest(b, f.price.start)).sum();
    if let Some(s) = &policy.supervision {
        let weights: Vec<f64> = market.venues.iter().map(|v| v.weight).collect();
        let watched = |keep: &dyn Fn(usize) -> bool| -> Vec<usize> {
            (0..f.venues.len())
                .filter(|&i| cooperating[i] && keep(i))
                .collect()
        };
        market.supervisors = match s.view {
            View::Global => vec![Supervisor::new(s, watched(&|_| true), &weights)],
            View::Local => policy
                .cooperating
                .iter()
                .map(|j| {
                    let venues = watched(&|i| f.venues[i].jurisdiction == *j);
                    Supervisor::new(s, venues, &weights)
                })
                .filter(|sup| !sup.venues.is_empty())
                .collect(),
        };
    }
    Ok(market)
}

/// Positions per venue under `policy` (longs, shorts): the books after its leverage cap moved
/// the migration share of above-cap positions to the venues outside, for sizing the study's
/// memory before any ladder is built ([`crate::footprint`]).
pub fn book_sides(
    scenario: &Scenario,
    books: &[Vec<Position>],
    policy: &Policy,
) -> Vec<(usize, usize)> {
    let cooperating = cooperating(scenario, policy);
    // A position whose whole quantity migrated stays behind with none, and makes no tranche.
    let count = |positions: &[Position], side: Side| {
        positions
            .iter()
            .filter(|p| p.side == side && p.quantity > 0.0)
            .count()
    };
    if !cooperating.contains(&true) {
        return books
            .iter()
            .map(|b| (count(b, Side::Long), count(b, Side::Short)))
            .collect();
    }
    terms(scenario, books, policy, &cooperating)
        .iter()
        .map(|t| {
            (
                count(&t.positions, Side::Long),
                count(&t.positions, Side::Short),
            )
        })
        .collect()
}

/// Which venues `policy` covers (their jurisdiction cooperates).
fn cooperating(scenario: &Scenario, policy: &Policy) -> Vec<bool> {
    scenario
        .file()
        .venues
        .iter()
        .map(|v| policy.cooperating.contains(&v.jurisdiction))
        .collect()
}

/// Every venue's terms under `policy`, whose `cooperating` venues it changes.
fn terms(
    scenario: &Scenario,
    books: &[Vec<Position>],
    policy: &Policy,
    cooperating: &[bool],
) -> Vec<VenueTerms> {
    let f = scenario.file();
    let mut terms = VenueTerms::all_baseline(scenario, books);
    let own_margin: Vec<MarginSchedule> = terms.iter().map(|t| t.margin.clone()).collect();
    for (i, t) in terms.iter_mut().enumerate() {
        if !cooperating[i] {
            continue;
        }
        if let Some(floor) = policy.margin_floor {
            t.margin = t.margin.with_floor(floor.initial, floor.maintenance);
        }
        if let Some(mark) = policy.mark_price {
            t.mark = mark;
        }
        if let Some(routing) = policy.routing {
            t.routing = routing;
        }
        if let Some(cap) = policy.leverage_cap {
            t.leverage_cap = cap;
        }
    }
    // Only venues whose rules the policy tightens re-check their positions' leverage. A floor
    // only ever raises rates, so a schedule it changed is tightened, maintenance included: a
    // higher maintenance rate alone would otherwise liquidate, in the first step, positions
    // that a higher initial rate would have had topped up.
    let tightened: Vec<bool> = (0..terms.len())
        .map(|i| {
            cooperating[i]
                && (terms[i].margin != own_margin[i]
                    || policy
                        .leverage_cap
                        .is_some_and(|c| c < 1.0 / own_margin[i].base_initial()))
        })
        .collect();
    cap_leverage(
        &mut terms,
        &tightened,
        cooperating,
        &own_margin,
        policy,
        f.price.start,
    );
    terms
}

/// Applies the policy's leverage cap (and the cap implied by higher initial margins, tier by
/// tier) to the cooperating venues: above-cap positions are topped up to the cap, except the
/// migration share, which moves to the venues outside the cooperating set in proportion to
/// their open interest on its side, at its own leverage up to each destination's cap for its
/// size.
///
/// Leverage is measured at the start price (notional over equity now), as a venue checks
/// margin when new rules take effect: a position bought above today's price carries more
/// leverage than it was opened with. Topped-up positions therefore start with equity of at
/// least `1 / cap` of their notional, above any maintenance rate below the initial one.
/// A position already past its trigger under the venue's own rules `own_margin` (a snapshot
/// may hold some) is liquidated in the first step in the baseline, and so here too: a new
/// rule does not rescue it by assuming its trader covers a loss already made.
fn cap_leverage(
    terms: &mut [VenueTerms],
    tightened: &[bool],
    cooperating: &[bool],
    own_margin: &[MarginSchedule],
    policy: &Policy,
    start: f64,
) {
    let outside: Vec<usize> = (0..terms.len()).filter(|&i| !cooperating[i]).collect();
    // Each side's open interest outside: a migrating long goes where longs trade, a short
    // where shorts do (a snapshot's sides need not match).
    let outside_oi = |side: Side| -> Vec<f64> {
        outside
            .iter()
            .map(|&i| side_notional(&terms[i].positions, side, start))
            .collect()
    };
    let (long_oi, short_oi) = (outside_oi(Side::Long), outside_oi(Side::Short));
    let outside_margin: Vec<MarginSchedule> =
        outside.iter().map(|&i| terms[i].margin.clone()).collect();
    let mut arrivals: Vec<Vec<Position>> = vec![Vec::new(); terms.len()];
    for i in 0..terms.len() {
        if !tightened[i] {
            continue;
        }
        let policy_cap = policy.leverage_cap.unwrap_or(f64::INFINITY);
        let t = &mut terms[i];
        for p in &mut t.positions {
            let cap = t.margin.max_leverage(p.quantity * start).min(policy_cap);
            if p.leverage_at(start) <= cap || p.past_trigger(&own_margin[i], start) {
                continue;
            }
            let oi = match p.side {
                Side::Long => &long_oi,
                Side::Short => &short_oi,
            };
            let total: f64 = oi.iter().sum();
            // With nowhere to go (full coverage, or no position on this side outside) nothing
            // migrates.
            let moving = if total > 0.0 {
                p.quantity * policy.migration.unwrap_or(0.0)
            } else {
                0.0
            };
            for (k, &dest) in outside.iter().enumerate() {
                if moving == 0.0 || oi[k] == 0.0 {
                    continue;
                }
                let migrant = Position {
                    quantity: moving * oi[k] / total,
                    ..*p
                };
                let dest_cap = outside_margin[k].max_leverage(migrant.quantity * start);
                arrivals[dest].push(migrant.capped_at(start, dest_cap));
            }
            // What stays is capped for its own size: a smaller rest may sit in a lower tier.
            let staying = p.quantity - moving;
            let stay_cap = t.margin.max_leverage(staying * start).min(policy_cap);
            *p = Position {
                quantity: staying,
                ..p.capped_at(start, stay_cap)
            };
        }
    }
    for (t, mut new) in terms.iter_mut().zip(arrivals) {
        t.positions.append(&mut new);
    }
}

/// A venue's loss beyond bankruptcy prices if the price fell, then if it rose, by `stress`
/// and every crossed position were closed at the jumped price (no cascade): its stressed
/// exposures for cover-2 sizing, `[fall, rise]`.
fn stressed_losses(
    terms: &VenueTerms,
    venue: &crate::scenario::file::Venue,
    start: f64,
    stress: f64,
) -> [f64; 2] {
    [
        (Side::Long, start * (1.0 - stress)),
        (Side::Short, start * (1.0 + stress)),
    ]
    .map(|(side, price)| {
        let ladder = Ladder::build(
            &terms.positions,
            side,
            &terms.margin,
            venue.liquidation_fee,
            None,
            // Every crossed tranche fills at the one jumped price, whatever the law.
            ImpactLaw::Linear,
        );
        let crossed = ladder.crossed_until(0, price.ln());
        ladder
            .sweep(0, crossed, Fill::at(price.ln()), 0.0, 1.0)
            .bad_debt
    })
}
