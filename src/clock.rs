//! Time as migration tools write it, and as unlatch prints it.
//!
//! knex-migrator writes `acquired_at` as the writer's local wall-clock time
//! with no zone (`YYYY-MM-DD HH:MM:SS`), so reading it needs the zone the
//! writer ran in; PostgreSQL renders a `timestamptz` with its offset, which
//! then wins. A value that cannot be read is not guessed at: the caller
//! treats the lock's age as unknown.
//!
//! May touch: nothing (pure functions).

use std::sync::OnceLock;
use std::time::Duration;

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

/// The instant a lock timestamp names: with an offset when it has one, else
/// as wall-clock time in `zone`; epoch seconds or milliseconds (what knex
/// stores for a JavaScript `Date` in SQLite) are read too.
/// The zone a tool wrote its zone-less timestamps in. The system's zone is
/// looked up only when a held lock is first judged: finding it reads the
/// zone database, about 2 ms that a start with a free lock need not pay.
#[derive(Debug, Clone)]
pub struct LockZone(OnceLock<TimeZone>);

impl LockZone {
    pub fn fixed(zone: TimeZone) -> LockZone {
        LockZone(OnceLock::from(zone))
    }

    pub fn system() -> LockZone {
        LockZone(OnceLock::new())
    }
}

impl std::ops::Deref for LockZone {
    type Target = TimeZone;

    fn deref(&self) -> &TimeZone {
        self.0
            .get_or_init(|| TimeZone::try_system().unwrap_or(TimeZone::UTC))
    }
}

pub fn parse_lock_time(text: &str, zone: &TimeZone) -> Option<Timestamp> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = text.parse().ok()?;
        return if n > 100_000_000_000 {
            Timestamp::from_millisecond(n).ok()
        } else {
            Timestamp::from_second(n).ok()
        };
    }
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Some(ts);
    }
    let civil: DateTime = text.parse().ok()?;
    // At a DST fold one wall-clock time names two instants; take the later,
    // so that the lock looks younger, never older, than it may be.
    zone.to_ambiguous_timestamp(civil).later().ok()
}

/// When a timestamp the database wrote with its own clock (`NOW()` into a
/// zone-less column) was, given the database's clock now: the age is taken
/// between the two, so neither zone needs to be known.
pub fn by_database_clock(then: &str, db_now: &str) -> Option<Timestamp> {
    if let Ok(absolute) = then.trim().parse::<Timestamp>() {
        // It carries its offset (a PostgreSQL timestamptz): no clock needed.
        return Some(absolute);
    }
    let then = parse_lock_time(then, &TimeZone::UTC)?;
    let now = parse_lock_time(db_now, &TimeZone::UTC)?;
    let age = now.duration_since(then);
    Timestamp::now().checked_sub(age).ok()
}

/// Now, as a tool writes it: `YYYY-MM-DD HH:MM:SS` in `zone`, with the
/// offset appended when `with_offset` (for PostgreSQL `timestamptz`).
pub fn now_text(zone: &TimeZone, with_offset: bool) -> String {
    let now = Zoned::now().with_time_zone(zone.clone());
    if with_offset {
        now.strftime("%Y-%m-%d %H:%M:%S%:z").to_string()
    } else {
        now.strftime("%Y-%m-%d %H:%M:%S").to_string()
    }
}

/// How long ago `then` was; `None` if it is in the future.
pub fn age(then: Timestamp, now: Timestamp) -> Option<Duration> {
    Duration::try_from(now.duration_since(then)).ok()
}

/// A duration for people: whole seconds, `1h 30m`, `45s`, `0s`.
pub fn human(d: Duration) -> String {
    // Days at most: months and years, which humantime would write past a
    // month, are refused as settings, and what unlatch shows must read back.
    let s = d.as_secs();
    let parts = [
        (s / 86_400, "d"),
        (s / 3600 % 24, "h"),
        (s / 60 % 60, "m"),
        (s % 60, "s"),
    ];
    let shown: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    match shown.is_empty() {
        true => "0s".to_owned(),
        false => shown.join(" "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    /// A lock's timestamp as a tool wrote it, the zone it is read in, and
    /// the instant it is read as (`None`: not a time), each row named after
    /// the behaviour it shows.
    #[rustfmt::skip]
    const TIMES: &[(&str, &str, &str, Option<&str>)] = &[
        ("naive time in UTC", "2024-03-01 20:41:41", "UTC", Some("2024-03-01T20:41:41Z")),
        ("naive time in the writer's zone", "2024-03-01 20:41:41", "Europe/Berlin", Some("2024-03-01T19:41:41Z")),
        ("naive time in the writer's summer time", "2024-07-01 20:41:41", "Europe/Berlin", Some("2024-07-01T18:41:41Z")),
        // 02:30 happened twice in Berlin on 2024-10-27: at 00:30Z and 01:30Z.
        ("a DST fold reads as the later instant", "2024-10-27 02:30:00", "Europe/Berlin", Some("2024-10-27T01:30:00Z")),
        ("an offset wins over the zone", "2024-03-01 20:41:41+00", "Asia/Tokyo", Some("2024-03-01T20:41:41Z")),
        ("an offset with minutes and a fraction", "2024-03-01 20:41:41.5+05:30", "UTC", Some("2024-03-01T15:11:41.5Z")),
        ("epoch milliseconds", "1709325701000", "UTC", Some("2024-03-01T20:41:41Z")),
        ("epoch seconds", "1709325701", "UTC", Some("2024-03-01T20:41:41Z")),
        ("nothing is not a time", "", "UTC", None),
        ("a word is not a time", "yesterday", "UTC", None),
        ("month 13 is not a time", "2024-13-01 00:00:00", "UTC", None),
    ];

    #[test]
    fn each_lock_time_reads_as_its_instant() {
        for (behaviour, text, zone_name, expected) in TIMES {
            let read = parse_lock_time(text, &zone(zone_name)).map(|t| t.to_string());
            assert_eq!(read.as_deref(), *expected, "{behaviour}");
        }
    }

    #[test]
    fn future_has_no_age() {
        let now = Timestamp::from_second(1_000_000).unwrap();
        assert_eq!(
            age(Timestamp::from_second(999_000).unwrap(), now),
            Some(Duration::from_secs(1000))
        );
        assert_eq!(age(Timestamp::from_second(1_000_001).unwrap(), now), None);
    }

    #[test]
    fn now_text_has_the_tools_shape() {
        let text = now_text(&TimeZone::UTC, false);
        assert_eq!(text.len(), 19, "{text}");
        assert!(parse_lock_time(&text, &TimeZone::UTC).is_some());
        assert!(now_text(&zone("Asia/Kolkata"), true).ends_with("+05:30"));
    }

    #[test]
    fn human_rounds_to_seconds() {
        assert_eq!(human(Duration::from_millis(5_400_700)), "1h 30m");
        assert_eq!(human(Duration::from_millis(300)), "0s");
        // Days, never months: a month is refused as a setting.
        assert_eq!(human(Duration::from_secs(40 * 86_400 + 3_600)), "40d 1h");
    }
}
