//! unlatch as PID 1 in a new PID namespace (`unshare --pid --fork
//! --mount-proc`), and as a child subreaper. Where tini (Debian package
//! `tini`) has the same feature, the same test runs against it and both
//! must agree. Needs root.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::{kill, Signal};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Init {
    Unlatch,
    Tini,
}

/// Whether this machine can run the test: root and `unshare`, and tini for
/// the comparisons. A missing piece is a skip, said plainly, or a failure
/// under UNLATCH_TEST_REQUIRE_SERVERS=1.
fn can_run(init: Init, test: &str) -> bool {
    let missing = lacks_root()
        .or_else(|| lacks("unshare", "unshare"))
        .or_else(|| {
            if init == Init::Tini {
                lacks("tini", "tini (Debian package tini)")
            } else {
                None
            }
        });
    available(&format!("{test} with {init:?}"), missing.as_deref())
}

/// `init -- app...` as PID 1 of a new PID namespace. The init starts with
/// default signal dispositions, whatever this test inherited (under
/// `nohup`, SIGHUP arrives ignored, and tini would keep it so); if the test
/// gives up, killing `unshare` kills the init and the whole namespace.
fn as_pid_1(init: Init, app: &[&str]) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc", "--kill-child"]);
    // SAFETY: only signal() with SIG_DFL, which is async-signal-safe;
    // nothing allocates.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            for sig in
                Signal::iterator().filter(|s| !matches!(s, Signal::SIGKILL | Signal::SIGSTOP))
            {
                let _ = nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl);
            }
            Ok(())
        });
    }
    match init {
        Init::Unlatch => cmd.arg(env!("CARGO_BIN_EXE_unlatch")),
        Init::Tini => cmd.arg("tini"),
    };
    cmd.arg("--").args(app);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    cmd
}

/// Waits for `child`, killing it after `limit` (a hang is a failure, not a
/// slow pass).
fn finish(mut child: Child, limit: Duration) -> (i32, String) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut out = String::new();
            if let Some(mut stdout) = child.stdout.take() {
                stdout.read_to_string(&mut out).unwrap();
            }
            return (status.code().unwrap_or(-1), out);
        }
        if Instant::now() > deadline {
            let _ = Command::new("sh")
                .args([
                    "-c",
                    "ps -eo pid,ppid,pgid,stat,args | grep -E 'unlatch|tini|sleep|unshare' >&2",
                ])
                .status();
            let _ = child.kill();
            panic!("did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

const BOTH: [Init; 2] = [Init::Unlatch, Init::Tini];

/// The child's stdout, line by line, read on a thread (so a test can wait
/// with a deadline instead of blocking forever).
fn lines_of(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = send.send(line);
        }
    });
    receive
}

#[test]
fn the_apps_exit_code_is_kept_and_death_by_signal_n_is_128_plus_n() {
    for init in BOTH {
        if !can_run(init, "exit_codes") {
            continue;
        }
        for (script, expected) in [
            ("exit 0", 0),
            ("exit 3", 3),
            ("exit 255", 255),
            ("kill -KILL $$", 137),
            ("kill -TERM $$", 143),
        ] {
            let out = run(&mut as_pid_1(init, &["sh", "-c", script]));
            assert_eq!(code(&out), expected, "{init:?}: {script}");
        }
    }
}

#[test]
fn an_app_not_found_is_127_and_one_not_executable_126() {
    for init in BOTH {
        if !can_run(init, "start_failures") {
            continue;
        }
        let out = run(&mut as_pid_1(init, &["/nonexistent/app"]));
        assert_eq!(code(&out), 127, "{init:?}: not found");
        let scratch = Scratch::new("noexec");
        let file = scratch.path().join("app");
        std::fs::write(&file, "#!/bin/sh\n").unwrap();
        let out = run(&mut as_pid_1(init, &[file.to_str().unwrap()]));
        assert_eq!(code(&out), 126, "{init:?}: not executable");
    }
}

#[test]
fn every_signal_is_forwarded_and_the_apps_code_kept() {
    let script =
        "for s in TERM INT HUP QUIT USR1 USR2 WINCH; do trap \"echo got-$s; exit 42\" $s; done; \
                  echo ready; sleep 100 & wait";
    for init in BOTH {
        if !can_run(init, "signals") {
            continue;
        }
        for sig in [
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGHUP,
            Signal::SIGQUIT,
            Signal::SIGUSR1,
            Signal::SIGUSR2,
            Signal::SIGWINCH,
        ] {
            let mut child = as_pid_1(init, &["sh", "-c", script])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut stdout = BufReader::new(child.stdout.take().unwrap());
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            assert_eq!(line, "ready\n", "{init:?}");
            kill(init_pid(&child), sig).unwrap();
            child.stdout = None;
            let mut rest = String::new();
            stdout.read_to_string(&mut rest).unwrap();
            let (code, _) = finish(child, Duration::from_secs(20));
            let name = sig.as_str().trim_start_matches("SIG");
            assert_eq!(rest, format!("got-{name}\n"), "{init:?}: {sig}");
            assert_eq!(code, 42, "{init:?}: {sig}");
        }
    }
}

/// A shell snippet that counts zombies; with `ppid`, only those whose parent
/// is that PID.
fn count_zombies(ppid: &str) -> String {
    format!(
        "z=0; for f in /proc/[0-9]*/stat; do read -r line < $f 2>/dev/null || continue; rest=\"${{line##*) }}\"; \
         set -- $rest; if [ \"$1\" = Z ] && {{ [ -z \"{ppid}\" ] || [ \"$2\" = \"{ppid}\" ]; }}; then z=$((z+1)); fi; done; echo zombies=$z"
    )
}

#[test]
fn a_hundred_orphans_are_reaped() {
    // Each `(sleep &)` orphans its sleep at once; they exit together later.
    let script = format!(
        "for i in $(seq 100); do (sleep 0.5 &); done; sleep 2.5; {}",
        count_zombies("")
    );
    for init in BOTH {
        if !can_run(init, "orphans") {
            continue;
        }
        let out = run(&mut as_pid_1(init, &["sh", "-c", &script]));
        assert_eq!(code(&out), 0);
        assert_eq!(stdout(&out), "zombies=0\n", "{init:?}");
    }
}

#[test]
fn orphans_counted_here_would_be_zombies_without_a_reaper() {
    // The check above can fail: with a PID 1 that never waits for orphans
    // (Python, here), the same zombies stay.
    if !can_run(Init::Unlatch, "orphans_control") {
        return;
    }
    let program = format!(
        "import subprocess, time\n\
         subprocess.run(['sh', '-c', 'for i in $(seq 10); do (sleep 0.2 &); done'])\n\
         time.sleep(1.5)\n\
         print(subprocess.run(['sh', '-c', {:?}], capture_output=True, text=True).stdout, end='')\n",
        count_zombies("")
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc", "python3", "-c", &program]);
    let out = run(&mut cmd);
    assert_eq!(stdout(&out), "zombies=10\n");
}

#[test]
fn as_a_subreaper_it_reaps_orphans_and_ends_leftovers() {
    if !can_run(Init::Unlatch, "subreaper") {
        return;
    }
    let marker = format!("1000.{}", std::process::id());
    let script = format!(
        "for i in $(seq 20); do (sleep 0.2 &); done; sleep 1.5; {}; (sleep {marker} &); exit 5",
        count_zombies("$PPID")
    );
    let out = run(unlatch()
        .env("UNLATCH_MODE", "supervise")
        .env("UNLATCH_KILL_GRACE", "2s")
        .args(["--", "sh", "-c", &script]));
    assert_eq!(code(&out), 5);
    assert_eq!(stdout(&out), "zombies=0\n");
    assert!(
        stderr(&out).contains("unlatch is its subreaper"),
        "{}",
        stderr(&out)
    );
    let left = Command::new("pgrep")
        .args(["-f", &format!("sleep {marker}")])
        .output()
        .unwrap();
    assert!(left.stdout.is_empty(), "the orphaned sleep was ended");
}

#[test]
fn leftover_descendants_are_ended_when_the_app_exits() {
    if !can_run(Init::Unlatch, "leftovers") {
        return;
    }
    // One leftover ends on TERM, one ignores it and needs the KILL.
    let script = "sleep 1000 & sh -c 'trap \"\" TERM; sleep 1000' & sleep 0.2; exit 3";
    let started = Instant::now();
    let child = as_pid_1(Init::Unlatch, &["sh", "-c", script])
        .env("UNLATCH_KILL_GRACE", "1s")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (code, _) = finish(child, Duration::from_secs(30));
    assert_eq!(code, 3, "the app's own code");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn sigterm_during_the_preflight_as_pid_1() {
    if !can_run(Init::Unlatch, "preflight_term") {
        return;
    }
    let child = as_pid_1(Init::Unlatch, &["sh", "-c", "echo app"])
        .env("UNLATCH_MIGRATE_CMD", "sleep 100")
        .env("UNLATCH_KILL_GRACE", "2s")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = init_pid(&child);
    std::thread::sleep(Duration::from_millis(500));
    kill(pid, Signal::SIGTERM).unwrap();
    let (code, out) = finish(child, Duration::from_secs(20));
    assert_eq!(code, 143);
    assert_eq!(out, "", "the app never started");
}

/// A user with a supplementary group, made once for the run-as tests.
fn test_user() -> (String, String) {
    let (user, extra) = ("unlatchtest", "unlatchtest-extra");
    let _ = Command::new("groupadd").args(["-f", extra]).status();
    if Command::new("id")
        .arg(user)
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        let status = Command::new("useradd")
            .args([
                "--no-create-home",
                "--home-dir",
                "/home/unlatchtest",
                "--shell",
                "/bin/sh",
                "--groups",
                extra,
                user,
            ])
            .status()
            .unwrap();
        assert!(status.success() || Command::new("id").arg(user).status().unwrap().success());
    }
    let ids = |args: &[&str]| {
        String::from_utf8(
            Command::new("id")
                .args(args)
                .arg(user)
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
    };
    (
        user.to_owned(),
        format!(
            "{} {} {}",
            ids(&["-u"]).trim(),
            ids(&["-g"]).trim(),
            ids(&["-G"]).trim()
        ),
    )
}

#[test]
fn run_as_sets_uid_gid_groups_and_home_for_app_and_migrate() {
    if !can_run(Init::Unlatch, "run_as") {
        return;
    }
    let (user, ids) = test_user();
    let show = "echo $0 $(id -u) $(id -g) $(id -G) $HOME";
    for mode in ["exec", "supervise"] {
        let out = run(unlatch()
            .env("UNLATCH_MODE", mode)
            .env("UNLATCH_RUN_AS", &user)
            .env("UNLATCH_MIGRATE_CMD", format!("sh -c '{show}' migrate"))
            .args(["--", "sh", "-c", show, "app"]));
        assert_eq!(code(&out), 0, "{mode}");
        assert_eq!(
            stdout(&out),
            format!("migrate {ids} /home/unlatchtest\napp {ids} /home/unlatchtest\n"),
            "{mode}"
        );
    }
    // The migrate command alone, as another user (Ghost: entrypoint as root,
    // migrations as node); and a group given explicitly.
    let out = run(unlatch()
        .env("UNLATCH_MIGRATE_RUN_AS", format!("{user}:daemon"))
        .env("UNLATCH_MIGRATE_CMD", format!("sh -c '{show}' migrate"))
        .args(["--", "sh", "-c", "echo app $(id -u) $(id -g)", "app"]));
    let uid = ids.split(' ').next().unwrap();
    let first = stdout(&out).lines().next().unwrap().to_owned();
    assert!(first.starts_with(&format!("migrate {uid} 1 ")), "{first}");
    assert!(stdout(&out).ends_with("app 0 0\n"), "{}", stdout(&out));
    // unlatch itself started with supplementary groups (adm, disk) of its
    // own: the app has the user's groups only, not one of unlatch's.
    let mut cmd = unlatch();
    cmd.env("UNLATCH_RUN_AS", &user).args([
        "--",
        "sh",
        "-c",
        "echo $(id -G); grep ^Groups: /proc/self/status",
    ]);
    let out = run(&mut wrapped("setpriv", &["--groups", "4,6", "--"], &cmd));
    assert_eq!(code(&out), 0);
    let user_groups = ids.splitn(3, ' ').nth(2).unwrap();
    let mut lines = stdout(&out)
        .lines()
        .map(str::to_owned)
        .collect::<Vec<_>>()
        .into_iter();
    assert_eq!(lines.next().unwrap(), user_groups);
    let primary = ids.split(' ').nth(1).unwrap();
    let supplementary = user_groups.split(' ').filter(|g| *g != primary);
    let status = lines.next().unwrap();
    for gid in ["4", "6"] {
        assert!(
            !status.split_whitespace().any(|g| g == gid),
            "kept unlatch's group {gid}: {status}"
        );
    }
    for gid in supplementary {
        assert!(
            status.split_whitespace().any(|g| g == gid),
            "lost the user's group {gid}: {status}"
        );
    }
}

/// `docker run --user node` of an image that sets
/// `UNLATCH_MIGRATE_RUN_AS=node` (the Ghost image), or Kubernetes'
/// `runAsUser` with `UNLATCH_RUN_AS` the same user: unlatch is not root, so
/// it cannot call setgroups, yet it already is the user asked for. The
/// hooks, the migrate command and the app run as it is, with the groups the
/// runtime gave it (`--group-add`, `fsGroup`). Another user cannot be had
/// without root: said up front (64), naming the variable.
#[test]
fn run_as_the_user_unlatch_already_is_works_without_root() {
    if !can_run(Init::Unlatch, "run_as_without_root") {
        return;
    }
    let (user, _) = test_user();
    let scratch = Scratch::new("run_as_self");
    std::fs::set_permissions(
        scratch.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let hooks = scratch.path().join("hooks");
    std::fs::create_dir(&hooks).unwrap();
    hook(&hooks, "10-who", "echo hook $(id -u) $(id -G)", 0o755);
    let show = "echo $0 $(id -u) $(id -G)";
    // As the user (its own uid), with an extra group the runtime gave it.
    let uid = String::from_utf8(
        Command::new("id")
            .args(["-u", &user])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_owned();
    let as_user = [
        "--reuid",
        &uid,
        "--regid",
        &uid,
        "--groups",
        &format!("{uid},2000"),
        "--",
    ];
    for (variable, spec) in [
        ("UNLATCH_RUN_AS", user.clone()),
        ("UNLATCH_MIGRATE_RUN_AS", uid.clone()),
    ] {
        for mode in ["exec", "supervise"] {
            let mut cmd = unlatch();
            cmd.env("UNLATCH_MODE", mode)
                .env(variable, &spec)
                .env("UNLATCH_HOOKS_DIR", &hooks)
                .env("UNLATCH_MIGRATE_CMD", format!("sh -c '{show}' migrate"))
                .args(["--", "sh", "-c", show, "app"]);
            let out = run(&mut wrapped("setpriv", &as_user, &cmd));
            assert_eq!(code(&out), 0, "{variable}={spec} {mode}: {}", stderr(&out));
            let ids = format!("{uid} {uid} 2000");
            assert_eq!(
                stdout(&out),
                format!("10-who: hook {ids}\nmigrate {ids}\napp {ids}\n"),
                "{variable}={spec} {mode}"
            );
        }
    }
    // Another user, without root: a configuration error, before anything.
    let mut cmd = unlatch();
    cmd.env("UNLATCH_MIGRATE_RUN_AS", "root")
        .env("UNLATCH_MIGRATE_CMD", "true")
        .args(["--", "true"]);
    let out = run(&mut wrapped("setpriv", &as_user, &cmd));
    assert_eq!(code(&out), 64, "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("UNLATCH_MIGRATE_RUN_AS=root: that is uid 0, but unlatch runs as uid"),
        "{}",
        stderr(&out)
    );
}

/// Commands from variables run without a shell: `;`, `$` and `>` reach the
/// program as they are, and nothing else runs.
#[test]
fn commands_from_variables_are_not_given_to_a_shell() {
    let scratch = Scratch::new("no_shell");
    let witness = scratch.path().join("witness");
    let line = format!("echo $HOME; touch {} > /dev/null", witness.display());
    let out = run(unlatch()
        .env("HOME", "/nowhere")
        .env("UNLATCH_MIGRATE_CMD", &line)
        .args(["--", "true"]));
    assert_eq!(code(&out), 0);
    assert_eq!(
        stdout(&out),
        format!("$HOME; touch {} > /dev/null\n", witness.display())
    );
    assert!(!witness.exists(), "a shell ran the command");
}

#[test]
fn ctrl_c_on_a_terminal_reaches_the_app() {
    for init in BOTH {
        if !can_run(init, "pty") {
            continue;
        }
        let pty = nix::pty::openpty(None, None).unwrap();
        let slave = pty.slave.as_raw_fd();
        let mut cmd = as_pid_1(
            init,
            &[
                "sh",
                "-c",
                "trap 'echo got-INT; exit 7' INT; echo ready; sleep 100 & wait",
            ],
        );
        let io = || Stdio::from(pty.slave.try_clone().unwrap());
        cmd.stdin(io()).stdout(io()).stderr(io());
        // SAFETY: setsid() and ioctl() are single system calls; nothing
        // allocates.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(move || {
                nix::unistd::setsid()?;
                if nix::libc::ioctl(slave, nix::libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        drop(cmd);
        let mut master = std::fs::File::from(pty.master);
        let mut seen = String::new();
        let mut buf = [0u8; 256];
        // Lines, not words: unlatch's log quotes the script.
        while !seen.contains("ready\r\n") {
            let n = master.read(&mut buf).unwrap();
            assert!(n > 0, "{init:?}: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        master.write_all(&[0x03]).unwrap();
        while !seen.contains("got-INT\r\n") {
            let n = master.read(&mut buf).unwrap_or(0);
            assert!(n > 0, "{init:?}: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        let (code, _) = finish(child, Duration::from_secs(20));
        assert_eq!(code, 7, "{init:?}: {seen}");
    }
}

#[test]
fn signal_target_group_reaches_the_whole_process_group() {
    if !can_run(Init::Unlatch, "signal_group") {
        return;
    }
    // The child shrugs USR1 off (a no-op trap: an ignored signal would stay
    // ignored in its own child); only that child, in the same group, acts.
    let script = "trap : USR1; sh -c 'trap \"echo inner-got-USR1; exit 0\" USR1; echo ready; sleep 100 & wait'; exit 9";
    let mut child = as_pid_1(Init::Unlatch, &["sh", "-c", script])
        .env("UNLATCH_SIGNAL_TARGET", "group")
        .env("UNLATCH_KILL_GRACE", "1s")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut child);
    assert_eq!(
        lines.recv_timeout(Duration::from_secs(20)).unwrap(),
        "ready"
    );
    kill(init_pid(&child), Signal::SIGUSR1).unwrap();
    let (code, _) = finish(child, Duration::from_secs(20));
    assert_eq!(
        (code, lines.iter().collect::<Vec<_>>()),
        (9, vec!["inner-got-USR1".to_owned()])
    );
}
