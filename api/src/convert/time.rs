//! RFC 3339 timestamps from the engine's milliseconds since the epoch.
//!
//! Two flavours: protojson's `google.protobuf.Timestamp` (the fraction has
//! 0, 3, 6 or 9 digits; we hold milliseconds, so 0 or 3), and Go's
//! `time.Time` JSON (RFC3339Nano: trailing zeros of the fraction dropped),
//! which operation inputs embed. Both are UTC with a `Z` suffix. A few lines
//! of calendar arithmetic spare the crate a date library.

use maestro_engine::Time;

/// A `google.protobuf.Timestamp`.
pub(crate) fn timestamp(time: Time) -> pbjson_types::Timestamp {
    let ms = time.as_millis();
    pbjson_types::Timestamp {
        seconds: i64::try_from(ms / 1000).unwrap_or(i64::MAX),
        // Below 10^9: fits.
        nanos: i32::try_from(ms % 1000 * 1_000_000).unwrap_or(0),
    }
}

/// protojson's Timestamp form as text, e.g. `2024-02-29T12:00:00Z` or
/// `2024-02-29T12:00:00.250Z`, for a field the protos declare a string.
pub(crate) fn rfc3339(time: Time) -> String {
    let ms = time.as_millis() % 1000;
    let base = seconds_part(time.as_millis() / 1000);
    if ms == 0 {
        format!("{base}Z")
    } else {
        format!("{base}.{ms:03}Z")
    }
}

/// Go's `time.Time` JSON form, e.g. `2024-02-29T12:00:00.25Z`.
pub(crate) fn go_time(time: Time) -> String {
    let ms = time.as_millis() % 1000;
    let base = seconds_part(time.as_millis() / 1000);
    if ms == 0 {
        return format!("{base}Z");
    }
    let fraction = format!("{ms:03}");
    format!("{base}.{}Z", fraction.trim_end_matches('0'))
}

/// Go's zero `time.Time`, which upstream writes for a time never set.
pub const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// `YYYY-MM-DDTHH:MM:SS` for seconds since the epoch.
fn seconds_part(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01, after
/// Howard Hinnant's `civil_from_days` (eras of 400 years, March-based
/// years so that the leap day is the last day of the year).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01; every era is 146 097 days.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: u64 = 86_400_000;

    #[test]
    fn known_instants() {
        let table = [
            (0, "1970-01-01T00:00:00Z"),
            (1_000, "1970-01-01T00:00:01Z"),
            (1_641_306_511_000, "2022-01-04T14:28:31Z"),
            (951_782_400_000, "2000-02-29T00:00:00Z"), // leap day of a /400 year
            (951_868_800_000, "2000-03-01T00:00:00Z"),
            (1_709_164_800_000, "2024-02-29T00:00:00Z"),
            (4_107_542_400_000, "2100-03-01T00:00:00Z"), // 2100 is not leap
            (4_107_456_000_000, "2100-02-28T00:00:00Z"),
            (253_402_300_799_000, "9999-12-31T23:59:59Z"),
        ];
        for (ms, want) in table {
            assert_eq!(rfc3339(Time(ms)), want, "{ms}");
        }
    }

    #[test]
    fn fractions() {
        assert_eq!(rfc3339(Time(1_250)), "1970-01-01T00:00:01.250Z");
        assert_eq!(go_time(Time(1_250)), "1970-01-01T00:00:01.25Z");
        assert_eq!(go_time(Time(1_001)), "1970-01-01T00:00:01.001Z");
        assert_eq!(go_time(Time(1_000)), "1970-01-01T00:00:01Z");
    }

    /// Every day for 600 years follows the previous one in the calendar.
    #[test]
    fn consecutive_days_are_consecutive_dates() {
        let mut previous = civil_from_days(0);
        for d in 1..(600 * 366) {
            let (y, m, day) = civil_from_days(d);
            let (py, pm, pd) = previous;
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let month_len = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            if day == 1 {
                assert_eq!(
                    pd,
                    month_len[(pm - 1) as usize],
                    "end of month before {y}-{m}"
                );
                assert!((y, m) == (py, pm + 1) || (y, m, pm) == (py + 1, 1, 12));
            } else {
                assert_eq!((y, m, day), (py, pm, pd + 1));
            }
            previous = (y, m, day);
        }
        assert_eq!(rfc3339(Time(DAY_MS * 365)), "1971-01-01T00:00:00Z");
    }
}
