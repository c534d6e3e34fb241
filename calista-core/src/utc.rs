//! UTC dates and times from the system clock, without a date library.

use std::time::{SystemTime, UNIX_EPOCH};

/// A UTC date and time, to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct UtcDateTime {
    /// Year.
    pub year: i64,
    /// Month, 1-12.
    pub month: u32,
    /// Day, 1-31.
    pub day: u32,
    /// Hour, 0-23.
    pub hour: u32,
    /// Minute, 0-59.
    pub minute: u32,
    /// Second, 0-59.
    pub second: u32,
    /// Millisecond, 0-999.
    pub millisecond: u32,
}

impl UtcDateTime {
    /// Now, from the system clock (the epoch if the clock is before it).
    pub(crate) fn now() -> Self {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            millisecond: since.subsec_millis(),
            ..Self::from_unix(i64::try_from(since.as_secs()).unwrap_or(i64::MAX))
        }
    }

    /// The date and time `seconds` after 1970-01-01T00:00:00Z.
    pub(crate) fn from_unix(seconds: i64) -> Self {
        let days = seconds.div_euclid(86_400);
        let of_day = seconds.rem_euclid(86_400);
        // Civil from days (Howard Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        let small = |n: i64| u32::try_from(n).unwrap_or(0);
        Self {
            year,
            month: small(month),
            day: small(day),
            hour: small(of_day / 3_600),
            minute: small(of_day % 3_600 / 60),
            second: small(of_day % 60),
            millisecond: 0,
        }
    }

    /// `YYYYMMDDTHHMMSS.mmmZ`, for file names: sortable, and distinct for two backups
    /// taken in the same second.
    pub(crate) fn compact(&self) -> String {
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.millisecond
        )
    }

    /// `YYYY-MM-DDTHH:MM:SSZ`.
    pub(crate) fn iso8601(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

#[cfg(test)]
mod tests {
    use super::UtcDateTime;

    #[test]
    fn known_instants() {
        assert_eq!(UtcDateTime::from_unix(0).iso8601(), "1970-01-01T00:00:00Z");
        assert_eq!(
            UtcDateTime::from_unix(951_782_400).iso8601(),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            UtcDateTime::from_unix(1_756_204_200).iso8601(),
            "2025-08-26T10:30:00Z"
        );
        assert_eq!(
            UtcDateTime::from_unix(1_756_204_200).compact(),
            "20250826T103000.000Z"
        );
        assert_eq!(UtcDateTime::from_unix(-1).iso8601(), "1969-12-31T23:59:59Z");
    }
}
