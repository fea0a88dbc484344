//! The maximum of the last `n` values of a series, in constant time a value (amortized).
//!
//! A supervisor watching the drawdown over a window of steps needs the window's peak at every
//! step. Scanning the window each step cost O(window) a step: with a day's window of one-minute
//! steps, `harmonization.toml` (five policies, one of them supervised) took twice as long as
//! with its fifteen-step window.

use std::collections::VecDeque;

/// The last `len` values pushed, reduced to those that can still be a window's maximum.
#[derive(Debug, Clone, Default)]
pub struct WindowMax {
    /// Position in the series and value of every pushed value not yet out of the window and
    /// not followed by one at least as large: positions ascending, values descending, so the
    /// front is the window's maximum.
    candidates: VecDeque<(u64, f64)>,
    /// The position the next value takes.
    next: u64,
    /// Values a window holds (at least 1).
    len: u64,
}

impl WindowMax {
    /// Empties it for a series whose windows hold `len` values (at least 1), keeping the
    /// memory it has.
    pub fn reset(&mut self, len: usize) {
        self.candidates.clear();
        self.next = 0;
        self.len = (len as u64).max(1);
    }

    /// Adds `x` and returns the largest of the last `len` values, `x` among them; NaN takes
    /// its place in the window but is never the largest (as [`f64::max`] has it), and a
    /// window of NaN only is NaN.
    pub fn push(&mut self, x: f64) -> f64 {
        // A value at most `x` is never again a maximum: `x` stays in the window longer. (A NaN
        // kept here would break the order that makes the front the maximum.)
        if !x.is_nan() {
            while self.candidates.back().is_some_and(|&(_, v)| v <= x) {
                self.candidates.pop_back();
            }
            self.candidates.push_back((self.next, x));
        }
        while self
            .candidates
            .front()
            .is_some_and(|&(at, _)| at + self.len <= self.next)
        {
            self.candidates.pop_front();
        }
        self.next += 1;
        self.candidates.front().map_or(f64::NAN, |&(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn it_is_the_maximum_of_the_last_values(
            values in prop::collection::vec(-1e3f64..1e3, 1..200),
            len in 1usize..40,
        ) {
            let mut w = WindowMax::default();
            w.reset(len);
            for (i, &x) in values.iter().enumerate() {
                let window = &values[(i + 1).saturating_sub(len)..=i];
                let expected = window.iter().copied().fold(f64::MIN, f64::max);
                prop_assert_eq!(w.push(x), expected, "at {} of {:?}", i, values);
            }
        }
    }

    #[test]
    fn nan_is_never_the_largest() {
        let mut w = WindowMax::default();
        w.reset(3);
        assert!(w.push(f64::NAN).is_nan(), "nothing else in the window");
        assert_eq!(w.push(5.0), 5.0);
        assert_eq!(w.push(f64::NAN), 5.0);
        assert_eq!(w.push(7.0), 7.0, "a NaN between kept 5 in front of 7");
        assert_eq!(w.push(1.0), 7.0);
    }

    #[test]
    fn a_reset_starts_a_new_series() {
        let mut w = WindowMax::default();
        w.reset(3);
        for x in [5.0, 1.0, 2.0] {
            w.push(x);
        }
        assert_eq!(w.push(0.0), 2.0, "5 has left the window of three");
        w.reset(2);
        assert_eq!(w.push(-1.0), -1.0, "nothing of the old series is left");
        assert_eq!(w.push(-3.0), -1.0);
        assert_eq!(w.push(-4.0), -3.0);
    }
}
