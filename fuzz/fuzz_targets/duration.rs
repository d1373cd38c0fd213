//! The duration parser behind every `UNLATCH_*` time setting: never panics;
//! an accepted value renders back to a duration that parses again.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(duration) = unlatch::config::duration(text) {
        // Within a century (any setting a person writes): how unlatch shows
        // a duration parses back. Beyond, the rendering may outgrow the
        // parser's 64-character limit.
        if duration.as_secs() < 100 * 366 * 86_400 {
            let shown = unlatch::clock::human(duration);
            assert!(unlatch::config::duration(&shown).is_ok(), "{shown}");
        }
    } else if let Err(e) = unlatch::config::duration(text) {
        assert!(e.starts_with("expected"), "{e}");
    }
});
