//! The lock timestamp parser: never panics, whatever a table holds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for zone in [jiff::tz::TimeZone::UTC, jiff::tz::TimeZone::get("Europe/Berlin").unwrap()] {
        let _ = unlatch::clock::parse_lock_time(text, &zone);
    }
    let _ = unlatch::clock::by_database_clock(text, "2026-11-22 10:00:00");
    let _ = unlatch::clock::by_database_clock("2026-11-22 10:00:00", text);
});
