//! `maxSurge`: how many rooms above the desired count a rolling update may add.

/// A parsed `maxSurge` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxSurge {
    /// `"N"`, N ≥ 1.
    Absolute(u64),
    /// `"N%"` of the desired rooms, rounded up.
    Percent(u64),
}

impl MaxSurge {
    /// Parses `"N"` (N ≥ 1) or `"N%"` (N ≥ 1). Returns a message on failure.
    pub fn parse(text: &str) -> Result<MaxSurge, &'static str> {
        let text = text.trim();
        if text.is_empty() {
            return Err("is required");
        }
        let (digits, percent) = match text.strip_suffix('%') {
            Some(d) => (d, true),
            None => (text, false),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err("must be an integer ≥ 1 or a percentage such as 25%");
        }
        let n: u64 = digits.parse().map_err(|_| "is too large")?;
        if n < 1 {
            return Err("must be at least 1 (or 1%)");
        }
        Ok(if percent {
            MaxSurge::Percent(n)
        } else {
            MaxSurge::Absolute(n)
        })
    }

    /// Rooms a rolling update may add above `desired`: absolute N, or
    /// `ceil(pct/100 × desired)`; never less than one (upstream `ComputeMaxSurge`).
    pub fn rooms(self, desired: u64) -> u64 {
        let surge = match self {
            MaxSurge::Absolute(n) => n,
            MaxSurge::Percent(pct) => (pct.saturating_mul(desired)).div_ceil(100),
        };
        surge.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_absolute_and_percent() {
        assert_eq!(MaxSurge::parse("3"), Ok(MaxSurge::Absolute(3)));
        assert_eq!(MaxSurge::parse("25%"), Ok(MaxSurge::Percent(25)));
        assert!(MaxSurge::parse("0").is_err());
        assert!(MaxSurge::parse("0%").is_err());
        assert!(MaxSurge::parse("-1").is_err());
        assert!(MaxSurge::parse("%").is_err());
        assert!(MaxSurge::parse("").is_err());
        assert!(MaxSurge::parse("1.5").is_err());
    }

    #[test]
    fn surge_rooms_round_up_and_never_zero() {
        // (maxSurge, desired, surge)
        let table = [
            ("25%", 100, 25),
            ("25%", 10, 3),
            ("10%", 1, 1),
            ("50%", 0, 1),
            ("5", 100, 5),
            ("1", 0, 1),
            ("100%", 7, 7),
        ];
        for (text, desired, want) in table {
            let surge = MaxSurge::parse(text).unwrap();
            assert_eq!(surge.rooms(desired), want, "{text} of {desired}");
        }
    }
}
