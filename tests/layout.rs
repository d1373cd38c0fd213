//! The crate's map: `lib.rs`'s module list and its layout doc name exactly
//! the modules `src/` holds, and each module opens with its doc.

use std::collections::BTreeSet;
use std::path::Path;

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// The top-level modules `src/` holds: `x.rs` and `x/mod.rs`, bar the
/// crate's roots.
fn modules_on_disk() -> BTreeSet<String> {
    let modules: BTreeSet<String> = std::fs::read_dir(SRC)
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            let name = path.file_stem()?.to_str()?.to_owned();
            let is_module =
                path.extension().is_some_and(|e| e == "rs") || path.join("mod.rs").is_file();
            (is_module && name != "lib" && name != "main").then_some(name)
        })
        .collect();
    assert!(modules.len() > 10, "src/ read: {modules:?}");
    modules
}

fn lib_rs() -> String {
    std::fs::read_to_string(Path::new(SRC).join("lib.rs")).unwrap()
}

#[test]
fn lib_declares_every_module_on_disk() {
    let declared: BTreeSet<String> = lib_rs()
        .lines()
        .filter_map(|line| line.strip_prefix("pub mod ")?.strip_suffix(';'))
        .map(str::to_owned)
        .collect();
    assert_eq!(declared, modules_on_disk());
}

#[test]
fn the_layout_doc_names_every_module_and_no_other() {
    let doc: String = lib_rs()
        .lines()
        .filter_map(|line| line.strip_prefix("//!"))
        .collect::<Vec<_>>()
        .join("\n");
    // Links as rustdoc writes them: [`name`] or [`mod@name`].
    let linked: BTreeSet<String> = doc
        .split("[`")
        .skip(1)
        .filter_map(|rest| rest.split_once("`]").map(|(name, _)| name))
        .map(|name| name.trim_start_matches("mod@").to_owned())
        .collect();
    assert_eq!(linked, modules_on_disk());
}

#[test]
fn every_module_opens_with_its_doc() {
    let mut files = Vec::new();
    let mut folders = vec![Path::new(SRC).to_owned()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.starts_with("//!"),
            "{} does not open with a module doc",
            file.display()
        );
    }
}
