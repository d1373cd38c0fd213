//! Database URLs and Ghost's configuration: never panic, and never show a
//! password in an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

const SECRET: &str = "Fz-S3cret";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // Only the spliced-in password must not show; text may quote it itself.
    if text.contains(SECRET) {
        return;
    }
    // As a URL, with a recognisable password spliced in after the scheme.
    let url = match text.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://user:{SECRET}@{rest}"),
        None => text.to_owned(),
    };
    if let Err(e) = unlatch::db::Target::parse(&url, "DATABASE_URL") {
        assert!(!e.message.contains(SECRET), "{}", e.message);
    }
    assert!(!unlatch::db::redact(&url).contains(SECRET) || !url.contains('@'));
    // As Ghost's config file, and as Ghost's variables.
    let dir = std::env::temp_dir().join(format!("unlatch-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("config.development.json"), text);
    let env = unlatch::config::Env::capture(
        [("database__client", "mysql"), ("database__connection__database", text), ("database__connection__password", SECRET)]
            .map(|(k, v)| (k.into(), v.into())),
    )
    .unwrap();
    for env in [unlatch::config::Env::default(), env] {
        match unlatch::apps::ghost::database_url(&env, &dir) {
            Ok(Some((url, source))) => {
                if let Err(e) = unlatch::db::Target::parse(&url, &source) {
                    assert!(!e.message.contains(SECRET), "{}", e.message);
                }
            }
            Ok(None) => {}
            Err(e) => assert!(!e.message.contains(SECRET), "{}", e.message),
        }
    }
});
