//! Revision ids for imported migrations: the source's dates where it has them, in the
//! source's order, a minute apart at least.

use super::{ImportError, Tool};
use crate::naming::Revision;
use crate::utc::UtcDateTime;

/// One id per migration, strictly increasing, from each migration's date (if any).
///
/// A migration gets its date if that is after the id before it, else the next minute. The
/// undated migrations before the first dated one count back from it, a minute each, unless
/// `start` is given; with no dated migration at all they count on from `start`, which is
/// then required.
pub(super) fn assign(
    dates: &[Option<Revision>],
    start: Option<Revision>,
    tool: Tool,
) -> Result<Vec<Revision>, ImportError> {
    let leading = dates.iter().take_while(|d| d.is_none()).count();
    let first = match (start, dates.get(leading).copied().flatten()) {
        (Some(start), _) if leading > 0 => minutes(start),
        (Some(start), _) => return Err(ImportError::StartUnused { tool, start }),
        (None, Some(dated)) => minutes(dated) - i64::try_from(leading).unwrap_or(i64::MAX),
        (None, None) => return Err(ImportError::NeedsStart { tool }),
    };
    let mut ids = Vec::with_capacity(dates.len());
    let mut previous: Option<i64> = None;
    for date in dates {
        let next = match (previous, date) {
            (None, Some(date)) if leading == 0 => minutes(*date),
            (None, _) => first,
            (Some(previous), Some(date)) => minutes(*date).max(previous + 1),
            (Some(previous), None) => previous + 1,
        };
        ids.push(revision(next).ok_or(ImportError::OutOfRange)?);
        previous = Some(next);
    }
    Ok(ids)
}

/// Minutes since 1970-01-01T00:00Z.
fn minutes(revision: Revision) -> i64 {
    let (year, month, day) = (
        i64::from(revision.year()),
        i64::from(revision.month()),
        i64::from(revision.day()),
    );
    // Days from civil (Howard Hinnant's algorithm), the inverse of `UtcDateTime::from_unix`.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 1_440 + i64::from(revision.hour()) * 60 + i64::from(revision.minute())
}

/// The revision at `minutes` since the epoch, if it is a year calista names files with.
fn revision(minutes: i64) -> Option<Revision> {
    let at = UtcDateTime::from_unix(minutes.checked_mul(60)?);
    Revision::new(
        u32::try_from(at.year).ok()?,
        at.month,
        at.day,
        at.hour,
        at.minute,
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(text: &str) -> Revision {
        Revision::parse(text).unwrap()
    }

    fn ids(dates: &[Option<&str>], start: Option<&str>) -> Result<Vec<String>, ImportError> {
        let dates: Vec<_> = dates.iter().map(|d| d.map(rev)).collect();
        assign(&dates, start.map(rev), Tool::Sqlx)
            .map(|ids| ids.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn minutes_and_revisions_are_inverses_across_months_years_and_leap_days() {
        for text in [
            "19700101_0000",
            "20240229_2359",
            "20231231_2359",
            "00010101_0000",
            "99991231_2359",
        ] {
            assert_eq!(revision(minutes(rev(text))), Some(rev(text)), "{text}");
        }
        assert_eq!(
            revision(minutes(rev("20231231_2359")) + 1),
            Some(rev("20240101_0000"))
        );
    }

    #[test]
    fn dates_are_kept_and_two_in_one_minute_get_the_next_free_minute() {
        assert_eq!(
            ids(
                &[
                    Some("20230101_1200"),
                    Some("20230101_1200"),
                    Some("20230101_1200"),
                    Some("20230101_1203"),
                    Some("20230105_0900"),
                ],
                None
            )
            .unwrap(),
            [
                "20230101_1200",
                "20230101_1201",
                "20230101_1202",
                "20230101_1203",
                "20230105_0900"
            ]
        );
    }

    #[test]
    fn a_date_before_the_one_before_it_never_reorders() {
        assert_eq!(
            ids(&[Some("20230301_1200"), Some("20230101_1200")], None).unwrap(),
            ["20230301_1200", "20230301_1201"]
        );
    }

    #[test]
    fn undated_migrations_count_back_from_the_first_dated_one() {
        // diesel's `00000000000000_diesel_initial_setup` comes before dated migrations.
        assert_eq!(
            ids(&[None, None, Some("20230101_0000"), None], None).unwrap(),
            [
                "20221231_2358",
                "20221231_2359",
                "20230101_0000",
                "20230101_0001"
            ]
        );
    }

    #[test]
    fn undated_migrations_count_on_from_the_start() {
        assert_eq!(
            ids(&[None, None, None], Some("20200101_2359")).unwrap(),
            ["20200101_2359", "20200102_0000", "20200102_0001"]
        );
        assert_eq!(
            ids(&[None, Some("20100101_0000")], Some("20200101_0000")).unwrap(),
            ["20200101_0000", "20200101_0001"]
        );
    }

    #[test]
    fn a_start_is_required_when_nothing_is_dated_and_refused_when_unused() {
        assert!(matches!(
            ids(&[None, None], None),
            Err(ImportError::NeedsStart { tool: Tool::Sqlx })
        ));
        assert!(matches!(
            ids(&[Some("20230101_1200")], Some("20200101_0000")),
            Err(ImportError::StartUnused { .. })
        ));
        assert!(matches!(
            ids(&[None, None], Some("99991231_2359")),
            Err(ImportError::OutOfRange)
        ));
    }
}
