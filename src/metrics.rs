//! The per-path figures: their names (a contract with users' scripts) and their row layout.
//!
//! One path under one policy produces one row of `f64`: the [`Metric`]s in declaration order,
//! then for every venue the [`VenueMetric`]s. Rows are plain slices so a batch of paths writes
//! into one preallocated buffer without allocating per path.

/// Share of a venue's bad debt below which what is left unpaid is rounding, not insolvency: a
/// fund sized to exactly the loss it meets (a cover-2 pool whose stress move is the move that
/// came) falls short by the last bits of two sums that reached one figure by other roads.
pub const INSOLVENCY_ROUNDING: f64 = 1e-9;

/// Whether `unabsorbed` of `bad_debt` (USD, one venue or a group of them, one path) leaves it
/// insolvent: unpaid beyond rounding ([`INSOLVENCY_ROUNDING`]).
pub fn insolvent(unabsorbed: f64, bad_debt: f64) -> bool {
    unabsorbed > INSOLVENCY_ROUNDING * bad_debt
}

/// A per-path metric; its [`Metric::name`] is the `paths.csv` column and `summary.json` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Notional closed by forced liquidation (USD), valued at the start price like open
    /// interest, so that a deeper crash never makes the same liquidations look smaller.
    LiquidatedNotional,
    /// Positions liquidated, wholly or in part.
    LiquidatedPositions,
    /// Largest fall of the traded price (open-interest-weighted index) below the start, as a
    /// fraction, measured at the end of each step.
    MaxDrawdown,
    /// Largest fall of the fundamental below the start, as a fraction.
    ExogenousDrawdown,
    /// `max_drawdown / exogenous_drawdown`, each floored at one basis point (1 where neither fell).
    Amplification,
    /// Shortfall of liquidations filled beyond bankruptcy prices (USD).
    BadDebt,
    /// What the insurance funds paid towards bad debt (USD).
    InsuranceFundDrawn,
    /// Notional of profitable positions closed by auto-deleveraging (USD).
    AdlNotional,
    /// Bad debt neither the funds nor ADL absorbed (USD).
    UnabsorbedLoss,
    /// Venues left with unabsorbed loss (beyond rounding: see [`insolvent`]).
    InsolventVenues,
    /// Largest relative gap between the highest and lowest venue price at a step's end.
    MaxVenueGap,
    /// Cascade rounds that liquidated something, summed over steps.
    CascadeRounds,
    /// Steps in which anything was liquidated (the cascade's duration, in steps).
    CascadeSteps,
    /// Liquidated notional of longs (USD, at the start price).
    LiquidatedLongNotional,
    /// Liquidated notional of shorts (USD, at the start price).
    LiquidatedShortNotional,
    /// Steps in which the round cap stopped the cascade before its fixed point.
    RoundCapHits,
    /// Times a supervisor acted (circuit breaker or margin add-on).
    Interventions,
    /// Net share of the starting open interest gone by the end of the horizon, counted in
    /// contracts (notional at the start price): what forced liquidation closed, less the
    /// notional (per side) of the cohorts that opened during the horizon, between 0 and 1.
    /// Each forced close removes its quantity from open interest, as when the other side of
    /// the forced order is closing too; observed declines also hold voluntary deleveraging,
    /// which the model does not have.
    OpenInterestLost,
    /// What the liquidated quantity traded for (USD at the prices the liquidations filled
    /// at), as exchanges and aggregators report liquidations: below `liquidated_notional`
    /// for longs sold into a falling market, above it for shorts bought back into a rising
    /// one.
    LiquidatedValue,
    /// `liquidated_value` of longs.
    LiquidatedLongValue,
    /// `liquidated_value` of shorts.
    LiquidatedShortValue,
    /// Bad debt ADL covered (USD): the profit taken from the profitable opposite side, the
    /// loss the venues' rules socialise to traders who did not default. With
    /// `insurance_fund_drawn` and `unabsorbed_loss` it adds up to `bad_debt`.
    AdlHaircut,
}

impl Metric {
    /// Every metric, in row order.
    pub const ALL: [Metric; 22] = [
        Metric::LiquidatedNotional,
        Metric::LiquidatedPositions,
        Metric::MaxDrawdown,
        Metric::ExogenousDrawdown,
        Metric::Amplification,
        Metric::BadDebt,
        Metric::InsuranceFundDrawn,
        Metric::AdlNotional,
        Metric::UnabsorbedLoss,
        Metric::InsolventVenues,
        Metric::MaxVenueGap,
        Metric::CascadeRounds,
        Metric::CascadeSteps,
        Metric::LiquidatedLongNotional,
        Metric::LiquidatedShortNotional,
        Metric::RoundCapHits,
        Metric::Interventions,
        Metric::OpenInterestLost,
        Metric::LiquidatedValue,
        Metric::LiquidatedLongValue,
        Metric::LiquidatedShortValue,
        Metric::AdlHaircut,
    ];

    /// Column name.
    pub fn name(self) -> &'static str {
        match self {
            Metric::LiquidatedNotional => "liquidated_notional",
            Metric::LiquidatedPositions => "liquidated_positions",
            Metric::MaxDrawdown => "max_drawdown",
            Metric::ExogenousDrawdown => "exogenous_drawdown",
            Metric::Amplification => "amplification",
            Metric::BadDebt => "bad_debt",
            Metric::InsuranceFundDrawn => "insurance_fund_drawn",
            Metric::AdlNotional => "adl_notional",
            Metric::UnabsorbedLoss => "unabsorbed_loss",
            Metric::InsolventVenues => "insolvent_venues",
            Metric::MaxVenueGap => "max_venue_gap",
            Metric::CascadeRounds => "cascade_rounds",
            Metric::CascadeSteps => "cascade_steps",
            Metric::LiquidatedLongNotional => "liquidated_long_notional",
            Metric::LiquidatedShortNotional => "liquidated_short_notional",
            Metric::RoundCapHits => "round_cap_hits",
            Metric::Interventions => "interventions",
            Metric::OpenInterestLost => "open_interest_lost",
            Metric::LiquidatedValue => "liquidated_value",
            Metric::LiquidatedLongValue => "liquidated_long_value",
            Metric::LiquidatedShortValue => "liquidated_short_value",
            Metric::AdlHaircut => "adl_haircut",
        }
    }

    /// Position in a row.
    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A per-venue, per-path figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VenueMetric {
    /// Liquidated notional of longs (USD).
    LiquidatedLongNotional,
    /// Liquidated notional of shorts (USD).
    LiquidatedShortNotional,
    /// Bad debt (USD).
    BadDebt,
    /// Insurance fund paid towards this venue's bad debt (USD).
    InsuranceFundDrawn,
    /// ADL notional (USD).
    AdlNotional,
    /// Unabsorbed loss (USD); positive means the venue is insolvent on the path.
    UnabsorbedLoss,
    /// Liquidated longs at the prices they filled at (USD).
    LiquidatedLongValue,
    /// Liquidated shorts at the prices they filled at (USD).
    LiquidatedShortValue,
    /// Bad debt ADL covered (USD).
    AdlHaircut,
}

impl VenueMetric {
    /// Every venue metric, in row order.
    pub const ALL: [VenueMetric; 9] = [
        VenueMetric::LiquidatedLongNotional,
        VenueMetric::LiquidatedShortNotional,
        VenueMetric::BadDebt,
        VenueMetric::InsuranceFundDrawn,
        VenueMetric::AdlNotional,
        VenueMetric::UnabsorbedLoss,
        VenueMetric::LiquidatedLongValue,
        VenueMetric::LiquidatedShortValue,
        VenueMetric::AdlHaircut,
    ];

    /// Position within a venue's cells.
    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }

    /// Column suffix (`<venue>.<name>` in `paths.csv`).
    pub fn name(self) -> &'static str {
        match self {
            VenueMetric::LiquidatedLongNotional => "liquidated_long_notional",
            VenueMetric::LiquidatedShortNotional => "liquidated_short_notional",
            VenueMetric::BadDebt => "bad_debt",
            VenueMetric::InsuranceFundDrawn => "insurance_fund_drawn",
            VenueMetric::AdlNotional => "adl_notional",
            VenueMetric::UnabsorbedLoss => "unabsorbed_loss",
            VenueMetric::LiquidatedLongValue => "liquidated_long_value",
            VenueMetric::LiquidatedShortValue => "liquidated_short_value",
            VenueMetric::AdlHaircut => "adl_haircut",
        }
    }
}

/// Where each figure sits in a row, for a given number of venues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowLayout {
    /// Number of venues.
    pub venues: usize,
}

impl RowLayout {
    /// Length of one row.
    pub fn len(&self) -> usize {
        Metric::ALL.len() + self.venues * VenueMetric::ALL.len()
    }

    /// Never empty: there is always at least the path metrics.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Position of a venue metric.
    #[inline]
    pub fn venue(&self, venue: usize, m: VenueMetric) -> usize {
        Metric::ALL.len() + venue * VenueMetric::ALL.len() + m.index()
    }

    /// The path's cells of `row` and venue `venue`'s, as arrays that [`Metric::index`] and
    /// [`VenueMetric::index`] index without a bounds check each (two checks in all).
    #[inline]
    pub fn cells<'r>(
        &self,
        row: &'r mut [f64],
        venue: usize,
    ) -> (
        &'r mut [f64; Metric::ALL.len()],
        &'r mut [f64; VenueMetric::ALL.len()],
    ) {
        let (path, venues) = row.split_at_mut(Metric::ALL.len());
        let at = venue * VenueMetric::ALL.len();
        (
            path.try_into().expect("a row holds every path metric"),
            (&mut venues[at..at + VenueMetric::ALL.len()])
                .try_into()
                .expect("a row holds every venue's metrics"),
        )
    }

    /// Which columns of a row are counts (`liquidated_positions`, `cascade_rounds`, ...),
    /// written as integers; the others, USD and fractions, are doubles. Venue columns are
    /// all in USD.
    pub fn counts(&self) -> Vec<bool> {
        (0..self.len())
            .map(|k| {
                Metric::ALL
                    .get(k)
                    .is_some_and(|m| crate::units::metric(m.name()).1 == crate::units::Unit::Count)
            })
            .collect()
    }

    /// Column names of a row, venue columns as `<venue>.<metric>`.
    pub fn columns(&self, venue_names: &[String]) -> Vec<String> {
        let mut cols: Vec<String> = Metric::ALL.iter().map(|m| m.name().to_string()).collect();
        for v in venue_names {
            for m in VenueMetric::ALL {
                cols.push(format!("{v}.{}", m.name()));
            }
        }
        cols
    }
}

#[cfg(test)]
mod tests {
    use super::insolvent;

    #[test]
    fn a_venue_is_insolvent_when_it_leaves_more_than_rounding_unpaid() {
        // No bad debt and nothing unpaid is solvent: a calm market has no insolvent venue.
        assert!(!insolvent(0.0, 0.0));
        assert!(insolvent(1.0, 0.0));
        assert!(!insolvent(1e-10, 1.0));
        assert!(insolvent(2e-9, 1.0));
    }
}
