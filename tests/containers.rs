//! unlatch in real containers: the Dockerfile's `unlatch` stage built with
//! podman (whose verbs are docker's) and run as the ENTRYPOINT of a small
//! app image on a busybox userland; and, in `ghost_container`, the Ghost
//! stage. The base images are made here (`tests/containers/base-images`),
//! since no registry can be reached. Needs root, podman, runc and
//! debootstrap (Debian packages).
//!
//! Every scenario runs in its own container on a host folder mounted at
//! `/data`, so the test can set up and read the SQLite database there.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The Dockerfile's `unlatch` stage, as the tests tag it.
const UNLATCH_IMAGE: &str = "localhost/unlatch:test";
/// tests/containers/app: unlatch in front of shell commands.
const APP_IMAGE: &str = "localhost/unlatch-app:test";

/// The podman CLI with this repository's settings.
fn podman() -> Command {
    Command::new(format!("{ROOT}/tests/containers/podman"))
}

/// Runs podman; panics with its output unless it succeeds.
fn podman_ok(args: &[&str]) -> String {
    let out = podman().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "podman {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn can_run(test: &str) -> bool {
    available(
        test,
        lacks_root()
            .or_else(|| lacks("podman", "podman and runc (Debian packages podman, runc)"))
            .or_else(|| lacks("debootstrap", "debootstrap (Debian package debootstrap)"))
            .or_else(|| lacks("node", "Node.js 20 (for the Ghost base image)"))
            .or_else(|| lacks("sqlite3", "the sqlite3 shell (Debian package sqlite3)"))
            .as_deref(),
    )
}

/// The base images, then the `unlatch` stage, the app image and the Ghost
/// image: built once for the whole run, before any container runs, so that
/// no build holds podman's storage while a scenario runs (podman's cache
/// makes a rebuild of the same source quick).
fn images() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let step = |cmd: &mut Command| -> Result<(), String> {
            let out = cmd.output().map_err(|e| e.to_string())?;
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
            out.status
                .success()
                .then_some(())
                .ok_or_else(|| format!("{cmd:?} failed"))
        };
        step(&mut Command::new(format!(
            "{ROOT}/tests/containers/base-images"
        )))?;
        step(podman().args([
            "build",
            "--pull=never",
            "--format=docker",
            "--network=host",
            "--target=unlatch",
            "-t",
            UNLATCH_IMAGE,
            ROOT,
        ]))?;
        step(podman().args([
            "build",
            "--pull=never",
            "--format=docker",
            "-t",
            APP_IMAGE,
            &format!("{ROOT}/tests/containers/app"),
        ]))?;
        step(podman().args([
            "build",
            "--pull=never",
            "--format=docker",
            "--network=host",
            "-t",
            GHOST_IMAGE,
            ROOT,
        ]))?;
        // With vfs every layer is a whole copy of its image: what these
        // builds replaced (earlier builds' layers, now untagged) would
        // otherwise fill the disk within a few runs.
        step(podman().args(["image", "prune", "--force"]))
    });
    if let Err(e) = built {
        panic!("building the images: {e}");
    }
}

/// A container of this test's own, removed on drop.
struct Container {
    name: String,
}

impl Container {
    /// `podman run -d` with `args` before the image (`--name` is added).
    fn start(args: &[&str], image: &str, command: &[&str]) -> Container {
        let name = unique("ctr").replace('_', "-");
        podman_ok(
            &[&["run", "-d", "--name", &name], args, &[image], command]
                .concat()
                .to_vec(),
        );
        Container { name }
    }

    fn logs(&self) -> String {
        let out = podman()
            .args(["logs", "--timestamps", &self.name])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_no_secret(&text);
        text
    }

    /// Waits until the logs show `text`.
    fn wait_for_log(&self, text: &str) {
        // Generous: creating a container copies its whole image (vfs).
        let deadline = Instant::now() + Duration::from_secs(240);
        while !self.logs().contains(text) {
            assert!(
                Instant::now() < deadline,
                "{} never logged {text:?}:\n{}",
                self.name,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn inspect(&self, format: &str) -> String {
        podman_ok(&["inspect", "--format", format, &self.name])
            .trim()
            .to_owned()
    }

    /// From start to exit, as podman recorded them (not as long as the
    /// podman CLI took, which waits on storage locks when builds run).
    fn lifetime(&self) -> Duration {
        let at = |field: &str| {
            let text = self.inspect(&format!(
                "{{{{.State.{field}.Format \"2006-01-02T15:04:05.000000000Z07:00\"}}}}"
            ));
            text.parse::<jiff::Timestamp>()
                .unwrap_or_else(|e| panic!("{field} {text:?}: {e}"))
        };
        let lived = at("FinishedAt").duration_since(at("StartedAt"));
        Duration::try_from(lived).unwrap()
    }

    fn exit_code(&self) -> i32 {
        self.inspect("{{.State.ExitCode}}").parse().unwrap()
    }

    /// Waits for the container to end; its exit code.
    fn wait(&self) -> i32 {
        podman_ok(&["wait", &self.name]).trim().parse().unwrap()
    }

    /// SIGKILL to the whole container, as the OOM killer or a stop timeout
    /// that ran out would; the container keeps its filesystem.
    fn kill(&self) {
        podman_ok(&["kill", &self.name]);
        self.wait();
    }

    /// `podman start` of the same container: a restart in place.
    fn restart(&self) {
        podman_ok(&["start", &self.name]);
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        eprintln!("--- logs of {}:\n{}", self.name, self.logs());
        let _ = podman().args(["rm", "-f", "-t", "0", &self.name]).output();
    }
}

/// A host folder for `/data`, writable by `uid`.
fn data_dir(tag: &str, uid: u32) -> Scratch {
    let scratch = Scratch::new(tag);
    std::os::unix::fs::chown(scratch.path(), Some(uid), Some(uid)).unwrap();
    scratch
}

fn volume(scratch: &Scratch) -> String {
    format!("{}:/data", scratch.path().display())
}

fn sqlite_url(file: &Path) -> String {
    format!("sqlite://{}?mode=rwc", file.display())
}

/// `app.db` in `dir` with a knex-migrator lock taken `age` ago, owned by `uid`.
fn locked_database(dir: &Path, age: jiff::SignedDuration, uid: u32) -> PathBuf {
    let file = dir.join("app.db");
    let taken = jiff::Timestamp::now() - age;
    let taken = taken.strftime("%Y-%m-%d %H:%M:%S").to_string();
    sql(
        &sqlite_url(&file),
        &[
            "CREATE TABLE migrations_lock (lock_key varchar(191) NOT NULL PRIMARY KEY, \
             locked boolean DEFAULT '0', acquired_at datetime NULL, released_at datetime NULL)",
            &format!("INSERT INTO migrations_lock VALUES ('km01', 1, '{taken}', NULL)"),
        ],
    );
    std::os::unix::fs::chown(&file, Some(uid), Some(uid)).unwrap();
    file
}

fn locked(file: &Path) -> String {
    row(
        &sqlite_url(file),
        "SELECT CAST(locked AS INTEGER) FROM migrations_lock WHERE lock_key = 'km01'",
    )
    .unwrap()[0]
        .clone()
}

const DB_ENV: &str = "UNLATCH_DATABASE_URL=sqlite:///data/app.db";

/// The app's own output is the last line; `HOOK_RAN` shows the hook in the
/// image ran and handed its variable on.
const APP: [&str; 3] = ["sh", "-c", "echo \"app up, hook ran: $HOOK_RAN\""];

#[test]
fn the_binary_is_static_and_runs_in_scratch() {
    if !can_run("the_binary_is_static_and_runs_in_scratch") {
        return;
    }
    images();
    let scratch = Scratch::new("static");
    let id = podman_ok(&["create", UNLATCH_IMAGE]);
    let id = id.trim();
    let binary = scratch.path().join("unlatch");
    podman_ok(&["cp", &format!("{id}:/unlatch"), binary.to_str().unwrap()]);
    podman_ok(&["rm", id]);
    let headers = Command::new("readelf")
        .args(["--program-headers", "--wide"])
        .arg(&binary)
        .output()
        .unwrap();
    let headers = String::from_utf8_lossy(&headers.stdout);
    assert!(headers.contains("LOAD"), "{headers}");
    assert!(!headers.contains("INTERP"), "an interpreter:\n{headers}");
    assert!(
        !headers.contains("DYNAMIC"),
        "a dynamic section:\n{headers}"
    );

    // The scratch image itself: nothing but /unlatch, reading a SQLite
    // volume (the initContainer form: no COMMAND).
    let dir = data_dir("scratch", 0);
    let db = locked_database(dir.path(), jiff::SignedDuration::from_hours(2), 0);
    let out = run(podman()
        .args(["run", "--rm", "-v", &volume(&dir), "-e", DB_ENV])
        .arg(UNLATCH_IMAGE));
    assert_eq!(code(&out), 0);
    assert!(stderr(&out).contains("stale; freed it"), "{}", stderr(&out));
    assert_eq!(locked(&db), "0");
}

/// The app image, as root, read-only, as a non-root user, and both: the
/// stale lock on the volume is healed, the hook runs and hands its variable
/// on, the app starts.
#[test]
fn heals_a_stale_lock_on_a_volume_as_any_user_on_a_read_only_root() {
    if !can_run("heals_a_stale_lock_on_a_volume_as_any_user_on_a_read_only_root") {
        return;
    }
    images();
    let cases: [(&str, &[&str], u32); 4] = [
        ("root", &[], 0),
        ("read-only", &["--read-only"], 0),
        ("user", &["--user", "4242:4242"], 4242),
        (
            "read-only user",
            &["--read-only", "--user", "4242:4242"],
            4242,
        ),
    ];
    for (case, flags, uid) in cases {
        let dir = data_dir("heal", uid);
        let db = locked_database(dir.path(), jiff::SignedDuration::from_hours(2), uid);
        let out = run(podman()
            .args(["run", "--rm", "-v", &volume(&dir), "-e", DB_ENV])
            .args(flags)
            .arg(APP_IMAGE)
            .args(APP));
        assert_eq!(code(&out), 0, "{case}");
        assert!(stderr(&out).contains("stale; freed it"), "{case}");
        assert_eq!(stdout(&out).trim(), "app up, hook ran: yes", "{case}");
        assert_eq!(locked(&db), "0", "{case}");
    }
}

#[test]
fn stop_reaches_the_app_as_term_and_the_container_exits_with_its_code() {
    if !can_run("stop_reaches_the_app_as_term_and_the_container_exits_with_its_code") {
        return;
    }
    images();
    let app = "trap 'echo got TERM; exit 3' TERM; echo ready; while :; do sleep 0.1; done";
    let container = Container::start(&[], APP_IMAGE, &["sh", "-c", app]);
    container.wait_for_log("ready");
    podman_ok(&["stop", "--time", "60", &container.name]);
    // The app's own code: it ended on the TERM, not on podman's KILL after
    // the timeout (137). How fast is bench/containers' business.
    assert_eq!(container.exit_code(), 3);
    assert!(container.logs().contains("got TERM"));
    assert!(container.lifetime() < Duration::from_secs(50));
}

#[test]
fn leftover_descendants_are_reaped_and_ended() {
    if !can_run("leftover_descendants_are_reaped_and_ended") {
        return;
    }
    images();
    // An orphan that exits while the app runs must not stay a zombie; one
    // still running when the app exits is ended, and the container stops.
    let app = "(sleep 0.2 &); sleep 1; \
               echo zombies: $(grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l); \
               (sleep 1000 &); exit 5";
    let container = Container::start(
        &["-e", "UNLATCH_KILL_GRACE=60s"],
        APP_IMAGE,
        &["sh", "-c", app],
    );
    assert_eq!(container.wait(), 5);
    assert!(container.logs().contains("zombies: 0"));
    // The leftover sleep took the TERM: nothing waited out the grace.
    assert!(container.lifetime() < Duration::from_secs(30));
}

#[test]
fn exit_codes_are_as_documented() {
    if !can_run("exit_codes_are_as_documented") {
        return;
    }
    images();
    let cases: [(&[&str], i32); 5] = [
        (&["/etc/passwd"], 126),
        (&["/no/such/program"], 127),
        (&["sh", "-c", "kill -KILL $$"], 137),
        (&["sh", "-c", "kill -TERM $$"], 143),
        (&["sh", "-c", "exit 9"], 9),
    ];
    for (command, expected) in cases {
        let out = run(podman().args(["run", "--rm", APP_IMAGE]).args(command));
        assert_eq!(code(&out), expected, "{command:?}");
    }
    let out = run(podman().args(["run", "--rm", "-e", "UNLATCH_LOCK_TTL=soon", APP_IMAGE]));
    assert_eq!(code(&out), 64);
    assert!(stderr(&out).contains("UNLATCH_LOCK_TTL"));
}

/// Kubernetes' default terminationMessagePath: a failed preflight leaves its
/// reason there, password masked.
#[test]
fn a_failed_preflight_writes_the_termination_log() {
    if !can_run("a_failed_preflight_writes_the_termination_log") {
        return;
    }
    images();
    let dir = Scratch::new("termlog");
    let log = dir.path().join("termination-log");
    std::fs::write(&log, "").unwrap();
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o666)).unwrap();
    let url = format!("postgres://app:{PASSWORD}@127.0.0.1:9/app");
    let out = run(podman()
        .args(["run", "--rm", "--network=host", "--user", "4242"])
        .args(["-v", &format!("{}:/dev/termination-log", log.display())])
        .args(["-e", &format!("DATABASE_URL={url}")])
        .args(["-e", "UNLATCH_WAIT_TIMEOUT=1s", APP_IMAGE]));
    assert_eq!(code(&out), 69);
    let written = std::fs::read_to_string(&log).unwrap();
    assert_no_secret(&written);
    assert_eq!(written.trim_end().lines().count(), 1, "{written:?}");
    assert!(written.contains("127.0.0.1:9"), "{written:?}");

    std::fs::write(&log, "").unwrap();
    let out = run(podman()
        .args(["run", "--rm"])
        .args(["-v", &format!("{}:/dev/termination-log", log.display())])
        .arg(APP_IMAGE));
    assert_eq!(code(&out), 0);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "");
}

/// A TCP port that forwards to `to` once `open` is called: a database that
/// is down at first and comes up later.
struct LatePort {
    port: u16,
    listener: Option<std::net::TcpListener>,
    to: String,
}

impl LatePort {
    fn new(to: &str) -> LatePort {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // Closed until opened: nothing listens on it meanwhile.
        drop(listener);
        LatePort {
            port,
            listener: None,
            to: to.to_owned(),
        }
    }

    fn open(&mut self) {
        let listener = std::net::TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        forward(listener.try_clone().unwrap(), self.to.clone());
        self.listener = Some(listener);
    }
}

/// A phase of the start in which the container is SIGKILLed: how to get
/// there, what the log shows once there, and how the obstacle goes away.
struct Phase {
    name: &'static str,
    env: Vec<String>,
    command: Vec<&'static str>,
    /// Run with the data folder before the container starts.
    before: fn(&Path),
    shows: &'static str,
    /// Run once the container is killed, before `podman start`.
    after: fn(&Path),
}

/// A file in `/data` whose presence holds the scenario in its phase.
fn hold(dir: &Path, name: &str) {
    std::fs::write(dir.join(name), "").unwrap()
}

fn stale_lock(dir: &Path) {
    locked_database(dir, jiff::SignedDuration::from_hours(2), 0);
}

/// Kills the container in `phase`, restarts it in place, and checks that it
/// comes up and that nothing unlatch left behind outside the database
/// stayed.
fn restart_in_place_after_kill(phase: Phase, extra: &[&str]) {
    let dir = data_dir(phase.name, 0);
    (phase.before)(dir.path());
    let mut args: Vec<String> = vec!["--network=host".into(), "-v".into(), volume(&dir)];
    for var in &phase.env {
        args.extend(["-e".into(), var.clone()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let command = if phase.command.is_empty() {
        APP.to_vec()
    } else {
        phase.command.clone()
    };
    let container = Container::start(&args, APP_IMAGE, &command);
    container.wait_for_log(phase.shows);
    container.kill();
    (phase.after)(dir.path());
    let up = |logs: &str| logs.matches("app up, hook ran: yes").count();
    let up_before = up(&container.logs());
    container.restart();
    let code = container.wait();
    let logs = container.logs();
    assert_eq!(code, 0, "{}: the restart failed:\n{logs}", phase.name);
    assert_eq!(
        up(&logs),
        up_before + 1,
        "{}: the app did not start again:\n{logs}",
        phase.name
    );
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let copies = names
        .iter()
        .filter(|n| n.starts_with("app.db.unlatch-backup-") && !n.contains(".partial-"))
        .count();
    let kept = |n: &&String| {
        ["app.db", "app.db.unlatch-lock"].contains(&n.as_str())
            || n.starts_with("hold")
            || (n.starts_with("app.db.unlatch-backup-") && !n.contains(".partial-"))
    };
    let left: Vec<&String> = names.iter().filter(|n| !kept(n)).collect();
    assert!(left.is_empty(), "{}: left behind {left:?}", phase.name);
    assert!(
        copies <= 3,
        "{}: {copies} copies, UNLATCH_SQLITE_BACKUP_KEEP=3",
        phase.name
    );
}

#[test]
fn restart_in_place_after_kill_waiting_for_the_database() {
    if !can_run("restart_in_place_after_kill_waiting_for_the_database")
        || server_url(Engine::Postgres, "restart_waiting_for_the_database").is_none()
    {
        return;
    }
    images();
    let mut late = LatePort::new("127.0.0.1:5432");
    let url = format!(
        "UNLATCH_DATABASE_URL=postgres://postgres@127.0.0.1:{}/test",
        late.port
    );
    let dir = data_dir("db-wait", 0);
    let args = [
        "--network=host",
        "-e",
        &url,
        "-e",
        "UNLATCH_WAIT_TIMEOUT=5m",
        "-v",
        &volume(&dir),
    ];
    let container = Container::start(&args, APP_IMAGE, &APP);
    container.wait_for_log("waiting for the database");
    container.kill();
    late.open();
    container.restart();
    assert_eq!(container.wait(), 0);
    assert!(container.logs().contains("app up, hook ran: yes"));
}

#[test]
fn restart_in_place_after_kill_waiting_for_another_replica() {
    if !can_run("restart_in_place_after_kill_waiting_for_another_replica") {
        return;
    }
    images();
    let dir = data_dir("replica", 0);
    locked_database(dir.path(), jiff::SignedDuration::from_hours(2), 0);
    hold(dir.path(), "hold-hook");
    let args = ["-v", &volume(&dir), "-e", DB_ENV];
    // The first replica holds the guard while its hook waits.
    let first = Container::start(&args, APP_IMAGE, &APP);
    first.wait_for_log("stale; freed it");
    let second = Container::start(&args, APP_IMAGE, &APP);
    second.wait_for_log("is in its preflight");
    second.kill();
    first.kill();
    std::fs::remove_file(dir.path().join("hold-hook")).unwrap();
    second.restart();
    assert_eq!(second.wait(), 0);
    assert!(second.logs().contains("app up, hook ran: yes"));
}

#[test]
fn restart_in_place_after_kill_in_each_phase() {
    if !can_run("restart_in_place_after_kill_in_each_phase") {
        return;
    }
    images();
    let phases = [
        Phase {
            name: "waiting on a live lock",
            // The lock's holder stands for one on another host: no file
            // open here, which the SQLite proof would take for a holder
            // gone. Proofs off, the lock is live until its TTL.
            env: vec![DB_ENV.into(), "UNLATCH_PROOFS=0".into()],
            command: vec![],
            before: |dir| {
                locked_database(dir, jiff::SignedDuration::from_secs(1), 0);
            },
            shows: "live, leaving it alone",
            // Its holder finishes meanwhile.
            after: |dir| {
                sql(
                    &sqlite_url(&dir.join("app.db")),
                    &["UPDATE migrations_lock SET locked = 0"],
                )
            },
        },
        Phase {
            name: "in a hook",
            env: vec![DB_ENV.into()],
            command: vec![],
            before: |dir| {
                stale_lock(dir);
                hold(dir, "hold-hook")
            },
            shows: "stale; freed it",
            after: |dir| std::fs::remove_file(dir.join("hold-hook")).unwrap(),
        },
        Phase {
            name: "in the migrate command",
            env: vec![
                DB_ENV.into(),
                "UNLATCH_SQLITE_BACKUP=1".into(),
                "UNLATCH_MIGRATE_CMD=sh -c 'echo migrating; while [ -e /data/hold-migrate ]; do sleep 0.1; done'"
                    .into(),
            ],
            command: vec![],
            before: |dir| {
                stale_lock(dir);
                hold(dir, "hold-migrate")
            },
            shows: "migrating",
            after: |dir| std::fs::remove_file(dir.join("hold-migrate")).unwrap(),
        },
        Phase {
            name: "supervising",
            env: vec![DB_ENV.into()],
            command: vec![
                "sh",
                "-c",
                "echo \"app up, hook ran: $HOOK_RAN\"; while [ -e /data/hold-app ]; do sleep 0.1; done",
            ],
            before: |dir| {
                stale_lock(dir);
                hold(dir, "hold-app")
            },
            shows: "app up",
            after: |dir| std::fs::remove_file(dir.join("hold-app")).unwrap(),
        },
    ];
    for phase in phases {
        restart_in_place_after_kill(phase, &["--read-only"]);
    }
}

// ---- The Ghost image: the Dockerfile's `ghost` stage on the ghost:5-alpine
// stand-in (tests/containers/images/ghost), real Ghost 5 from npm.

/// The Dockerfile's `ghost` stage, as the tests tag it.
const GHOST_IMAGE: &str = "localhost/unlatch-ghost:test";

/// A TCP port nothing listens on now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The HTTP status of `GET /` on `port`, if anything answers.
fn http_status(port: u16) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Waits for `GET /` to answer 200; how long that took.
fn wait_for_200(container: &Container, port: u16) -> Duration {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(300);
    loop {
        if http_status(port) == Some(200) {
            return started.elapsed();
        }
        let running = container.inspect("{{.State.Running}}") == "true";
        assert!(
            running && Instant::now() < deadline,
            "Ghost never served 200 (running: {running}):\n{}",
            container.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// How Ghost reaches its database, in its own variables.
enum GhostDb {
    Sqlite(Scratch),
    MySql(TestDb),
}

impl GhostDb {
    fn env(&self, port: u16) -> Vec<String> {
        let mut env = vec![
            format!("server__port={port}"),
            "server__host=127.0.0.1".into(),
            format!("url=http://127.0.0.1:{port}"),
            // Ghost's mail check: no mail server here.
            "mail__transport=Direct".into(),
            // Long enough that a migration killed now is live at the next
            // start, short enough for a test: unlatch waits it out, then
            // heals.
            "UNLATCH_LOCK_TTL=10s".into(),
        ];
        match self {
            GhostDb::Sqlite(_) => env.extend([
                "database__client=sqlite3".into(),
                "database__connection__filename=/var/lib/ghost/content/data/ghost.db".into(),
            ]),
            GhostDb::MySql(db) => {
                let url = url::Url::parse(&db.url).unwrap();
                env.extend([
                    "database__client=mysql".into(),
                    format!("database__connection__host={}", url.host_str().unwrap()),
                    format!("database__connection__port={}", url.port().unwrap_or(3306)),
                    format!("database__connection__user={}", url.username()),
                    format!("database__connection__password={PASSWORD}"),
                    format!("database__connection__database={}", db.name),
                ])
            }
        }
        env
    }

    fn volume(&self) -> Vec<String> {
        match self {
            GhostDb::Sqlite(dir) => vec![
                "-v".into(),
                format!("{}:/var/lib/ghost/content", dir.path().display()),
            ],
            GhostDb::MySql(_) => Vec::new(),
        }
    }

    /// knex-migrator's lock: `Some(true)` held, `None` not readable now
    /// (no table yet, or the database busy with the migration).
    fn locked(&self) -> Option<bool> {
        let value = match self {
            // The sqlite3 shell, read-only: a reader that changes nothing
            // (no journal mode set, no file made) while Ghost migrates.
            // A kill inside a transaction leaves a hot journal, which a
            // read-only reader cannot roll back (SQLITE_READONLY_ROLLBACK);
            // then it is read as the next start would, rolling it back.
            GhostDb::Sqlite(dir) => {
                let file = dir.path().join("data/ghost.db");
                let read = |flags: &[&str]| {
                    let out = Command::new("sqlite3")
                        .args(flags)
                        .args(["-cmd", ".timeout 5000"])
                        .arg(&file)
                        .arg("SELECT locked FROM migrations_lock WHERE lock_key = 'km01'")
                        .output()
                        .ok()?;
                    out.status.success().then_some(())?;
                    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
                };
                let hot_journal = || dir.path().join("data/ghost.db-journal").exists();
                match read(&["-readonly"]) {
                    None if hot_journal() => read(&[])?,
                    value => value?,
                }
            }
            GhostDb::MySql(db) => try_row(
                &db.url,
                "SELECT CAST(locked AS SIGNED) FROM migrations_lock WHERE lock_key = 'km01'",
            )?,
        };
        match value.as_str() {
            "1" => Some(true),
            "0" => Some(false),
            _ => None,
        }
    }
}

/// The first column of the first row as a number, or `None` on any error
/// (a table not made yet).
fn try_row(url: &str, query: &str) -> Option<String> {
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    block_on(async {
        let mut conn = sqlx::AnyConnection::connect(url).await.ok()?;
        let row = sqlx::query(query).fetch_optional(&mut conn).await.ok()?;
        let _ = conn.close().await;
        row?.try_get::<i64, _>(0).ok().map(|v| v.to_string())
    })
}

/// One Ghost scenario at a time: creating a Ghost container copies its
/// whole 1.1 GB image (vfs) and holds podman's storage meanwhile.
fn one_ghost_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static GHOST: std::sync::Mutex<()> = std::sync::Mutex::new(());
    GHOST.lock().unwrap_or_else(|e| e.into_inner())
}

fn ghost_container(db: &GhostDb, port: u16) -> Container {
    let mut args = vec!["--network=host".to_owned()];
    for var in db.env(port) {
        args.extend(["-e".into(), var]);
    }
    args.extend(db.volume());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Container::start(&args, GHOST_IMAGE, &[])
}

/// The first boot on an empty database serves 200; `podman stop` stops
/// Ghost cleanly, well within the stop timeout.
fn ghost_first_boot_and_clean_stop(db: GhostDb) {
    let _turn = one_ghost_at_a_time();
    let port = free_port();
    let ghost = ghost_container(&db, port);
    let took = wait_for_200(&ghost, port);
    eprintln!("first boot served 200 after {took:?}");
    assert_eq!(db.locked(), Some(false));
    podman_ok(&["stop", "--time", "60", &ghost.name]);
    // 0, not 137: Ghost ended on the TERM, before podman's KILL.
    assert_eq!(ghost.exit_code(), 0, "{}", ghost.logs());
    assert!(ghost.logs().contains("Ghost has shut down"));
}

/// `podman kill` while knex-migrator holds its lock leaves the lock held;
/// `podman start` of the same container heals it and serves 200.
fn ghost_killed_while_migrating(db: GhostDb) {
    let _turn = one_ghost_at_a_time();
    let port = free_port();
    let ghost = ghost_container(&db, port);
    // knex-migrator takes its lock before Ghost's init scripts run, and
    // frees it a few seconds later, after the fixtures. Reading the lock
    // meanwhile can fail (SQLite is busy with the writer), so the cue is
    // the first table the init script makes.
    // SIGKILL straight from the host to the container's PID 1, as the OOM
    // killer sends it: podman's own kill can wait on its storage lock while
    // another test creates a container, and the migration would be over.
    let pid: i32 = ghost.inspect("{{.State.Pid}}").parse().unwrap();
    ghost.wait_for_log("Creating table: posts");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    ghost.wait();
    assert_eq!(db.locked(), Some(true), "the kill did not leave the lock");
    ghost.restart();
    wait_for_200(&ghost, port);
    let logs = ghost.logs();
    // Stale after the TTL, or at once when the holder is provably gone:
    // either way a compare-and-swap on the lock observed.
    assert!(
        logs.contains("; freed it (compare-and-swap on what was observed)"),
        "{logs}"
    );
    assert_eq!(db.locked(), Some(false));
}

#[test]
fn ghost_on_sqlite_first_boot_and_clean_stop() {
    if can_run("ghost_on_sqlite_first_boot_and_clean_stop") {
        images();
        ghost_first_boot_and_clean_stop(GhostDb::Sqlite(Scratch::new("ghost-boot")));
    }
}

#[test]
fn ghost_on_sqlite_killed_while_migrating() {
    if can_run("ghost_on_sqlite_killed_while_migrating") {
        images();
        ghost_killed_while_migrating(GhostDb::Sqlite(Scratch::new("ghost-kill")));
    }
}

#[test]
fn ghost_on_mariadb_first_boot_and_clean_stop() {
    if !can_run("ghost_on_mariadb_first_boot_and_clean_stop") {
        return;
    }
    if let Some(db) = TestDb::new(Engine::MySql, "ghost_boot") {
        images();
        ghost_first_boot_and_clean_stop(GhostDb::MySql(db));
    }
}

#[test]
fn ghost_on_mariadb_killed_while_migrating() {
    if !can_run("ghost_on_mariadb_killed_while_migrating") {
        return;
    }
    if let Some(db) = TestDb::new(Engine::MySql, "ghost_kill") {
        images();
        ghost_killed_while_migrating(GhostDb::MySql(db));
    }
}

/// `docker run --user`, which Ghost's own entrypoint supports: the Ghost
/// image sets `UNLATCH_MIGRATE_RUN_AS=node`, and unlatch, not root, cannot
/// switch users. As node (by name or number) it already is that user; as
/// another (OpenShift's arbitrary uid) everything runs as that user, as
/// Ghost's entrypoint does. The app image likewise with `UNLATCH_RUN_AS` set
/// to the user the container runs as. Each migrates and starts.
#[test]
fn started_with_user_as_the_user_asked_for() {
    if !can_run("started_with_user_as_the_user_asked_for") {
        return;
    }
    images();
    let _turn = one_ghost_at_a_time();
    for user in ["node", "1000", "1000:1000", "4242"] {
        let dir = data_dir(
            "ghost-user",
            user.split(':').next().unwrap().parse().unwrap_or(1000),
        );
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = run(podman()
            .args(["run", "--rm", "--network=host", "--user", user])
            .args([
                "-v",
                &format!("{}:/var/lib/ghost/content", dir.path().display()),
            ])
            .args(["-e", "database__client=sqlite3"])
            .args([
                "-e",
                "database__connection__filename=/var/lib/ghost/content/data/ghost.db",
            ])
            .args([GHOST_IMAGE, "sh", "-c", "echo ghost as $(id -u)"]));
        assert_eq!(code(&out), 0, "--user {user}: {}", stderr(&out));
        let both = format!("{}{}", stdout(&out), stderr(&out));
        assert!(
            both.contains("Finished database migration"),
            "--user {user}"
        );
        let uid = if user == "4242" { "4242" } else { "1000" };
        assert!(
            stdout(&out).ends_with(&format!("ghost as {uid}\n")),
            "--user {user}"
        );
        assert!(dir.path().join("data/ghost.db").exists(), "--user {user}");
    }
    let out = run(podman()
        .args(["run", "--rm", "--user", "4242:4242", "--group-add", "2000"])
        .args([
            "-e",
            "UNLATCH_RUN_AS=4242",
            "-e",
            "UNLATCH_MIGRATE_CMD=sh -c 'echo migrate $(id -u) $(id -G)'",
        ])
        .args([
            APP_IMAGE,
            "sh",
            "-c",
            "echo app $(id -u) $(id -G) $HOOK_RAN",
        ]));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "migrate 4242 4242 2000\napp 4242 4242 2000 yes\n"
    );
}
