//! Process control: the signals unlatch answers during the preflight, the
//! commands it runs (migrate, rollback) and the final exec of COMMAND.
//!
//! No other module touches signals or child processes. Every command runs in
//! a process group of its own, so stopping it stops whatever it started
//! (`npm` and `sh -c` wrappers included): TERM to the group, a grace period,
//! then KILL. Children start with default signal dispositions and an empty
//! signal mask, whatever unlatch itself ignores or blocks (Rust ignores
//! SIGPIPE, and an ignored signal stays ignored across exec).
//!
//! May touch: child processes and their groups; this process's signal
//! handlers and, at the end, its image (exec).

use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};

use crate::clock::human;
use crate::exit::{Code, Failure};
use crate::user::RunAs;

/// TERM and INT, which end the preflight cleanly.
pub struct Stop {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Stop {
    pub fn install() -> io::Result<Stop> {
        Ok(Stop {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Resolves with the signal's number when one arrives.
    pub async fn signalled(&mut self) -> i32 {
        tokio::select! {
            _ = self.term.recv() => Signal::SIGTERM as i32,
            _ = self.int.recv() => Signal::SIGINT as i32,
        }
    }
}

/// How a command ended.
#[derive(Debug)]
pub enum Ended {
    /// It could not be started: not found, not executable...
    CouldNotStart(String),
    Exited(ExitStatus),
    /// It ran past its time limit and was stopped.
    TimedOut,
    /// unlatch got this signal; it was passed on and the command stopped.
    Stopped(i32),
}

/// Limits for [`run`].
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
    pub grace: Duration,
}

/// What to run, as whom, with which extra environment.
#[derive(Debug, Clone, Copy)]
pub struct Spec<'a> {
    pub argv: &'a [String],
    pub run_as: Option<&'a RunAs>,
    /// Added to the inherited environment (from hooks' env file).
    pub env: &'a [(String, String)],
}

/// Where a command's output goes.
#[derive(Debug, Clone, Copy)]
pub enum Output<'a> {
    /// Straight to unlatch's stdout and stderr.
    Inherit,
    /// Line by line, each line prefixed with `name: ` (hooks).
    Prefixed(&'a str),
}

/// Runs a command (named `what` in messages) in its own process group,
/// within `limits`, answering TERM/INT by passing them on.
pub async fn run(
    what: &str,
    spec: Spec<'_>,
    limits: Limits,
    output: Output<'_>,
    stop: &mut Stop,
) -> Result<Ended, Failure> {
    let mut command = clean_command(spec, Terminal::Leave);
    command.process_group(0);
    if let Output::Prefixed(_) = output {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    let mut child = match tokio::process::Command::from(command).spawn() {
        Ok(child) => child,
        Err(e) => {
            return Ok(Ended::CouldNotStart(format!(
                "cannot run {}: {}",
                spec.argv[0],
                spawn_error(&e)
            )))
        }
    };
    let group = Pid::from_raw(child.id().expect("a child just spawned has a pid") as i32);
    log::info!(
        "running {what}: {} (pid {group}, timeout {})",
        shell_words::join(spec.argv),
        human(limits.timeout)
    );
    let copies = match output {
        Output::Prefixed(name) => Some(copy_prefixed(&mut child, name)),
        Output::Inherit => None,
    };

    let started = Instant::now();
    let ended = tokio::select! {
        status = child.wait() => Ended::Exited(status.map_err(internal)?),
        _ = tokio::time::sleep(limits.timeout) => {
            log::warn!("{what} ran past its timeout of {}: sending SIGTERM to its process group", human(limits.timeout));
            stop_group(&mut child, group, Signal::SIGTERM, limits.grace).await?;
            Ended::TimedOut
        }
        n = stop.signalled() => {
            let sig = Signal::try_from(n).unwrap_or(Signal::SIGTERM);
            log::warn!("got {sig} while {what} runs: passing it on to its process group");
            stop_group(&mut child, group, sig, limits.grace).await?;
            Ended::Stopped(n)
        }
    };
    if let Ended::Exited(status) = &ended {
        log::info!(
            "{what} {} after {}",
            describe(*status),
            human(started.elapsed())
        );
        end_leftovers(group, limits.grace).await;
    }
    if let Some((out, err)) = copies {
        // The group is gone: the pipes are at their end.
        let _ = tokio::join!(out, err);
    }
    Ok(ended)
}

/// Copies a child's stdout and stderr to ours, line by line, `name: ` first.
fn copy_prefixed(
    child: &mut tokio::process::Child,
    name: &str,
) -> (tokio::task::JoinHandle<()>, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    fn copy<R: tokio::io::AsyncRead + Unpin + Send + 'static>(
        from: Option<R>,
        prefix: String,
        to_stderr: bool,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let Some(from) = from else { return };
            let mut lines = BufReader::new(from).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if to_stderr {
                    eprintln!("{prefix}{line}");
                } else {
                    println!("{prefix}{line}");
                }
            }
        })
    }
    let prefix = format!("{name}: ");
    (
        copy(child.stdout.take(), prefix.clone(), false),
        copy(child.stderr.take(), prefix, true),
    )
}

/// Sends `first` to the group, waits `grace` for the leader, then KILLs the
/// whole group.
async fn stop_group(
    child: &mut tokio::process::Child,
    group: Pid,
    first: Signal,
    grace: Duration,
) -> Result<(), Failure> {
    let _ = killpg(group, first);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        log::warn!(
            "process group {group} still running {} after {first}: sending SIGKILL",
            human(grace)
        );
        let _ = killpg(group, Signal::SIGKILL);
        child.wait().await.map_err(internal)?;
    }
    let _ = killpg(group, Signal::SIGKILL);
    Ok(())
}

/// Ends what a finished command left running in its group: TERM, `grace`,
/// KILL. They are not our children, so we watch the group, not a pid.
async fn end_leftovers(group: Pid, grace: Duration) {
    if killpg(group, None).is_err() {
        return;
    }
    log::warn!("the command left processes in its group {group}: sending SIGTERM");
    let _ = killpg(group, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while killpg(group, None).is_ok() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = killpg(group, Signal::SIGKILL);
}

impl Ended {
    /// One phrase: `exited with 3`, `timed out`...
    pub fn describe(&self) -> String {
        match self {
            Ended::CouldNotStart(why) => why.clone(),
            Ended::Exited(status) => describe(*status),
            Ended::TimedOut => "ran past its time limit and was stopped".to_owned(),
            Ended::Stopped(n) => format!("was stopped with signal {n}, as unlatch was"),
        }
    }

    pub fn succeeded(&self) -> bool {
        matches!(self, Ended::Exited(status) if status.success())
    }
}

/// `exited with 3`, `was killed by SIGKILL`.
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with {code}"),
        (None, Some(n)) => {
            let name = Signal::try_from(n)
                .map(|s| s.as_str())
                .unwrap_or("a signal");
            format!("was killed by {name}")
        }
        _ => "ended".to_owned(),
    }
}

fn spawn_error(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "not found (is it installed, and on PATH?)".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied (is it executable?)".to_owned(),
        _ => e.to_string(),
    }
}

fn internal(e: io::Error) -> Failure {
    Failure::new(Code::Internal, format!("waiting for a child process: {e}"))
}

/// In the child, before exec: default dispositions, nothing blocked. The
/// real-time signals count too; glibc keeps 32 and 33 for itself and will
/// not let them be changed, so those two stay as inherited.
fn reset_signal_state() -> io::Result<()> {
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
    for sig in Signal::iterator().filter(|s| !matches!(s, Signal::SIGKILL | Signal::SIGSTOP)) {
        // SAFETY: restoring the default disposition is async-signal-safe.
        let _ = unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl) };
    }
    for n in nix::libc::SIGRTMIN()..=nix::libc::SIGRTMAX() {
        // SAFETY: as above; signal(2) with SIG_DFL on a valid number.
        unsafe { nix::libc::signal(n, nix::libc::SIG_DFL) };
    }
    Ok(())
}

/// Whether a child takes over the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terminal {
    Leave,
    /// Make the child's process group the terminal's foreground group, if
    /// stdin is one, so that Ctrl-C reaches it (`docker run -it`).
    TakeForeground,
}

/// A command whose child starts clean: default signal dispositions, an
/// empty mask, the `run_as` identity with its `HOME`, and the extra env.
/// Callers that want it in a process group of its own say so
/// (`process_group(0)`, which std applies before these steps).
pub fn clean_command(spec: Spec<'_>, terminal: Terminal) -> std::process::Command {
    let mut command = std::process::Command::new(&spec.argv[0]);
    command.args(&spec.argv[1..]);
    if let Some(identity) = spec.run_as {
        command.env("HOME", &identity.home);
    }
    command.envs(spec.env.iter().map(|(k, v)| (k, v)));
    let identity = spec.run_as.cloned();
    let closure = move || {
        if terminal == Terminal::TakeForeground {
            take_terminal_foreground()?;
        }
        reset_signal_state()?;
        match &identity {
            Some(identity) => identity.apply(),
            None => Ok(()),
        }
    };
    // SAFETY: the closure only makes async-signal-safe calls (tcsetpgrp,
    // signal, sigprocmask, setgroups, setgid, setuid); nothing allocates.
    unsafe { command.pre_exec(closure) };
    command
}

/// In the child: become the terminal's foreground group. A background group
/// that calls tcsetpgrp gets SIGTTOU, so it is ignored for the call (the
/// reset that follows restores it). No terminal is fine.
fn take_terminal_foreground() -> io::Result<()> {
    let stdin = std::io::stdin();
    if !nix::unistd::isatty(&stdin).unwrap_or(false) {
        return Ok(());
    }
    // SAFETY: setting a disposition is async-signal-safe.
    unsafe { nix::sys::signal::signal(Signal::SIGTTOU, nix::sys::signal::SigHandler::SigIgn)? };
    match nix::unistd::tcsetpgrp(&stdin, nix::unistd::getpgrp()) {
        Ok(()) | Err(nix::errno::Errno::ENOTTY | nix::errno::Errno::ENXIO) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The exit code and message for a COMMAND that could not be started:
/// 127 when it is not found, 126 when it cannot be executed.
pub fn start_failure(argv: &[String], e: &io::Error) -> Failure {
    let code = if e.kind() == io::ErrorKind::NotFound {
        Code::NotFound
    } else {
        Code::NotExecutable
    };
    Failure::new(
        code,
        format!("cannot run COMMAND {}: {}", argv[0], spawn_error(e)),
    )
}

/// Replaces unlatch with COMMAND (same PID); returns only if that fails.
pub fn exec(spec: Spec<'_>) -> Failure {
    // Exec keeps unlatch's process group and terminal: it is the same process.
    start_failure(spec.argv, &clean_command(spec, Terminal::Leave).exec())
}
