//! Whole numbers on the command line, read as a scenario file writes them.

/// A parser of a whole number from `min` to `max`, written as in a scenario file (`10000`
/// or `10_000`), for clap's `value_parser`. Its refusals use the words of the scenario's own
/// errors, so `--paths 0` and `--set simulation.paths=0` are told the same bound.
pub fn whole(min: i64, max: i64) -> impl Fn(&str) -> Result<i64, String> + Clone {
    move |text: &str| {
        let digits = text.strip_prefix('-').unwrap_or(text);
        // TOML's rule: an underscore only between two digits.
        let written = digits
            .split('_')
            .all(|group| !group.is_empty() && group.bytes().all(|b| b.is_ascii_digit()));
        let bound = if max == i64::MAX && min == 0 {
            "0 or more".to_string()
        } else if max == i64::MAX {
            format!("at least {min}")
        } else {
            format!("from {min} to {max}")
        };
        match text.replace('_', "").parse::<i64>() {
            Ok(n) if written && (min..=max).contains(&n) => Ok(n),
            Ok(_) if written => Err(format!("expected a whole number, {bound}")),
            // Beyond i64 is beyond the largest integer a scenario file holds too.
            Err(_) if written => Err(format!(
                "expected a whole number, {bound}, and at most {} (2^63 - 1)",
                i64::MAX
            )),
            _ => Err(format!(
                "expected a whole number, {bound} (as 10000 or 10_000)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::whole;

    #[test]
    fn whole_numbers_are_read_as_a_scenario_file_writes_them() {
        let paths = whole(1, i64::MAX);
        assert_eq!(paths("10_000"), Ok(10_000));
        assert_eq!(paths("9223372036854775807"), Ok(i64::MAX));
        for refused in ["0", "-5", "1e3", "10__000", "_10", "10_", "1.5", "", "ten"] {
            let e = paths(refused).unwrap_err();
            assert!(
                e.starts_with("expected a whole number, at least 1"),
                "{refused}: {e}"
            );
        }
        assert!(
            paths("9223372036854775808")
                .unwrap_err()
                .contains("(2^63 - 1)")
        );
        assert_eq!(
            whole(0, i64::MAX)("-1"),
            Err("expected a whole number, 0 or more".to_string())
        );
        let threads = whole(1, 1024);
        assert_eq!(threads("1024"), Ok(1024));
        assert_eq!(
            threads("1025"),
            Err("expected a whole number, from 1 to 1024".to_string())
        );
    }
}
