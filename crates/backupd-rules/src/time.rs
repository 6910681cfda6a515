//! Time as plain data: the caller reads the clock, the rules only compare numbers.

use serde::{Deserialize, Serialize};

/// Seconds in one day, the unit of every configured age.
pub(crate) const SECS_PER_DAY: i64 = 86_400;

/// A point in time as seconds since the Unix epoch (UTC).
///
/// The daemon converts what it reads into this: lockdown's `LastCloudBackupDate` is in Cocoa seconds
/// (since 2001-01-01), so it adds 978 307 200 before building a `Timestamp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// A timestamp `secs` seconds after 1970-01-01T00:00:00Z (negative values are before it).
    pub const fn from_unix_secs(secs: i64) -> Self {
        Self(secs)
    }

    /// Seconds since the Unix epoch.
    pub const fn unix_secs(self) -> i64 {
        self.0
    }

    /// Whole seconds from `earlier` to `self`, or zero when `earlier` is in the future.
    ///
    /// A date from the phone that lies after `now` means one of the two clocks is wrong; treating it as
    /// "just now" keeps a skewed clock from inventing a stale backup.
    pub(crate) fn secs_since(self, earlier: Self) -> u64 {
        u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0)
    }

    /// Whole days from `earlier` to `self`, rounded down, never negative.
    pub(crate) fn days_since(self, earlier: Self) -> u64 {
        self.secs_since(earlier) / SECS_PER_DAY.unsigned_abs()
    }

    /// The UTC calendar fields of this instant.
    fn civil(self) -> Civil {
        let days = self.0.div_euclid(SECS_PER_DAY);
        let secs_of_day = self.0.rem_euclid(SECS_PER_DAY);
        // Howard Hinnant's days-to-civil algorithm: eras of 400 years make the leap rules periodic.
        let z = days.saturating_add(719_468);
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe
            .saturating_add(era.saturating_mul(400))
            .saturating_add(i64::from(month <= 2));
        Civil {
            year,
            month,
            day,
            hour: secs_of_day / 3_600,
            minute: secs_of_day % 3_600 / 60,
            second: secs_of_day % 60,
        }
    }

    /// RFC 3339 in UTC, e.g. `2025-06-15T15:06:40Z`; used in evidence, which is language-neutral.
    pub(crate) fn rfc3339(self) -> String {
        let c = self.civil();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        )
    }

    /// A short human form, e.g. `2025-06-15 15:06 UTC`; used in rendered text.
    pub(crate) fn short_utc(self) -> String {
        let c = self.civil();
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02} UTC",
            c.year, c.month, c.day, c.hour, c.minute
        )
    }
}

struct Civil {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(
            Timestamp::from_unix_secs(0).rfc3339(),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            Timestamp::from_unix_secs(1_750_000_000).rfc3339(),
            "2025-06-15T15:06:40Z"
        );
        // 2024 is a leap year: the day after 28 February is the 29th.
        assert_eq!(
            Timestamp::from_unix_secs(1_709_164_800).rfc3339(),
            "2024-02-29T00:00:00Z"
        );
        assert_eq!(
            Timestamp::from_unix_secs(-1).rfc3339(),
            "1969-12-31T23:59:59Z"
        );
        assert_eq!(
            Timestamp::from_unix_secs(951_782_400).short_utc(),
            "2000-02-29 00:00 UTC"
        );
    }

    #[test]
    fn extreme_instants_do_not_panic() {
        for secs in [i64::MIN, i64::MIN + 1, i64::MAX - 1, i64::MAX] {
            let t = Timestamp::from_unix_secs(secs);
            assert!(!t.rfc3339().is_empty());
            assert!(!t.short_utc().is_empty());
            let _ = t.days_since(Timestamp::from_unix_secs(0));
        }
    }

    #[test]
    fn ages_never_go_negative() {
        let now = Timestamp::from_unix_secs(1_000_000);
        assert_eq!(now.days_since(Timestamp::from_unix_secs(2_000_000)), 0);
        assert_eq!(
            now.days_since(Timestamp::from_unix_secs(1_000_000 - 86_400)),
            1
        );
        assert_eq!(
            now.days_since(Timestamp::from_unix_secs(1_000_000 - 86_399)),
            0
        );
        assert_eq!(
            Timestamp::from_unix_secs(i64::MAX).secs_since(Timestamp::from_unix_secs(i64::MIN)),
            u64::try_from(i64::MAX).unwrap_or(0)
        );
    }
}
