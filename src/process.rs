//! Process control: the signals unlatch answers during the preflight, the
//! commands it runs (migrate, rollback, hooks) and the final exec of
//! COMMAND. The one other module that touches signals or child processes
//! is `supervise` (the PID 1 loop), and it starts and ends its child with
//! what is here: [`clean_command`], [`start_failure`], and how a process
//! ended, in words ([`describe`]) and as a number ([`exit_code`]).
//!
//! Every command runs in a process group of its own, so stopping it stops
//! whatever it started (`npm` and `sh -c` wrappers included): TERM to the
//! group, a grace period, then KILL. Children start with default signal
//! dispositions and an empty signal mask, whatever unlatch itself ignores
//! or blocks (Rust ignores SIGPIPE, and an ignored signal stays ignored
//! across exec).
//!
//! A command's end is its process exiting, not its output ending: a helper
//! it started in a session of its own may keep its stdout open for hours.
//! Prefixed output is read as bytes while the command runs, and once it has
//! exited, what is already in the pipes is read and the pipes are closed.
//!
//! May touch: child processes and their groups; this process's signal
//! handlers and, at the end, its image (exec).

use std::io::{self, Write};
use std::ops::RangeInclusive;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::ExitStatus;
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

    /// A TERM or INT that came while nothing waited for one, if any: work
    /// that cannot be interrupted (a compare-and-swap, a rename) asks after
    /// it, so that no stop is ever lost.
    pub async fn pending(&mut self) -> Option<i32> {
        // The runtime takes in a signal when it next polls its drivers,
        // which a yield makes it do.
        tokio::task::yield_now().await;
        tokio::select! {
            biased;
            n = self.signalled() => Some(n),
            () = std::future::ready(()) => None,
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
    /// A descriptor the command inherits, at the same number (the hooks'
    /// env file); every other one of unlatch's is closed on exec.
    pub pass_fd: Option<BorrowedFd<'a>>,
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
    let mut pipes = match output {
        Output::Prefixed(name) => Some(attach(&mut command, name).map_err(|e| {
            Failure::new(
                Code::Internal,
                format!("cannot make the pipes for the output of {what}: {e}"),
            )
        })?),
        Output::Inherit => None,
    };
    // The command, and with it this side's copy of the pipes' write ends,
    // is gone after this statement: the command's end closes them.
    let mut child = match tokio::process::Command::from(command).spawn() {
        Ok(child) => child,
        Err(e) => return Ok(Ended::CouldNotStart(cannot_run(&spec.argv[0], &e))),
    };
    let group = Pid::from_raw(child.id().expect("a child just spawned has a pid") as i32);
    log::info!(
        "running {what}: {} (pid {group}, timeout {})",
        shell_words::join(spec.argv),
        human(limits.timeout)
    );

    let started = Instant::now();
    let mut ended = {
        let copying = async {
            if let Some([out, err]) = pipes.as_mut() {
                tokio::join!(out.copy(), err.copy());
            }
            // Both pipes closed early: nothing more to copy; the process
            // is still what ends the command.
            std::future::pending::<()>().await
        };
        tokio::select! {
            status = child.wait() => Ended::Exited(status.map_err(internal)?),
            () = copying => unreachable!("copying output never ends by itself"),
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
        }
    };
    if let Ended::Exited(status) = &ended {
        log::info!(
            "{what} {} after {}",
            describe(*status),
            human(started.elapsed())
        );
        if let Some(n) = end_leftovers(group, limits.grace, stop).await {
            ended = Ended::Stopped(n);
        }
    }
    // Whatever still holds the pipes (a helper in a session of its own)
    // does not hold the start.
    pipes.iter_mut().flatten().for_each(Lines::drain);
    Ok(ended)
}

/// One of the command's stdout and stderr, copied to ours line by line
/// with `name: ` first. Output is bytes; it is printed lossily, so a line
/// that is not UTF-8 is shown with U+FFFD where it is not, never dropped.
struct Lines {
    from: tokio::net::unix::pipe::Receiver,
    prefix: String,
    to_stderr: bool,
    /// The start of a line whose end has not come yet.
    partial: Vec<u8>,
}

/// A line longer than this is printed in pieces.
const LONGEST_LINE: usize = 64 * 1024;
/// At most this much is read from a pipe after the command's end: what a
/// pipe holds, with room to spare, but not a stream that never ends.
const DRAIN_AT_MOST: usize = 1024 * 1024;

/// New pipes as `command`'s stdout and stderr; this side reads them.
fn attach(command: &mut std::process::Command, name: &str) -> io::Result<[Lines; 2]> {
    let lines = |to_stderr| -> io::Result<(Lines, io::PipeWriter)> {
        let (read, write) = io::pipe()?;
        let lines = Lines {
            from: tokio::net::unix::pipe::Receiver::from_owned_fd(read.into())?,
            prefix: format!("{name}: "),
            to_stderr,
            partial: Vec::new(),
        };
        Ok((lines, write))
    };
    let (out, out_write) = lines(false)?;
    let (err, err_write) = lines(true)?;
    command.stdout(out_write).stderr(err_write);
    Ok([out, err])
}

impl Lines {
    async fn copy(&mut self) {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 8192];
        loop {
            match self.from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => self.take(&buf[..n]),
            }
        }
        self.flush_partial();
    }

    fn drain(&mut self) {
        let mut buf = [0u8; 8192];
        let mut read = 0;
        while read < DRAIN_AT_MOST {
            match self.from.try_read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    self.take(&buf[..n]);
                    read += n;
                }
            }
        }
        self.flush_partial();
    }

    /// Prints the complete lines in `bytes`, keeping the rest for later.
    fn take(&mut self, bytes: &[u8]) {
        self.partial.extend_from_slice(bytes);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            self.print(&line[..end]);
        }
        if self.partial.len() >= LONGEST_LINE {
            self.flush_partial();
        }
    }

    fn flush_partial(&mut self) {
        if !self.partial.is_empty() {
            let rest = std::mem::take(&mut self.partial);
            self.print(&rest);
        }
    }

    fn print(&self, line: &[u8]) {
        let text = format!("{}{}\n", self.prefix, String::from_utf8_lossy(line));
        // Nowhere to report a failed write to our own output: it is lost.
        let _ = if self.to_stderr {
            io::stderr().lock().write_all(text.as_bytes())
        } else {
            io::stdout().lock().write_all(text.as_bytes())
        };
    }
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
/// KILL. They are not our children, so we watch the group, not a pid. A
/// TERM or INT meanwhile KILLs them at once and is returned.
async fn end_leftovers(group: Pid, grace: Duration, stop: &mut Stop) -> Option<i32> {
    if killpg(group, None).is_err() {
        return None;
    }
    log::warn!("the command left processes in its group {group}: sending SIGTERM");
    let _ = killpg(group, Signal::SIGTERM);
    let gone = async {
        while killpg(group, None).is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let signalled = tokio::select! {
        _ = tokio::time::timeout(grace, gone) => None,
        n = stop.signalled() => {
            log::warn!("got signal {n} while ending what the command left in its group {group}: sending SIGKILL");
            Some(n)
        }
    };
    let _ = killpg(group, Signal::SIGKILL);
    signalled
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

/// How a process ended, in words: `exited with 3`, `was killed by SIGKILL`.
/// Said the same way for every command, supervised or not.
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with {code}"),
        (None, Some(n)) => format!("was killed by {}", crate::exit::signal_name(n)),
        _ => "ended".to_owned(),
    }
}

/// How a process ended, as a shell's exit code: its own, or 128+n if
/// signal n killed it.
pub fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(n)) => crate::exit::signal_number(n),
        _ => 1,
    }
}

/// The message for a command that could not be started.
fn cannot_run(program: &str, e: &io::Error) -> String {
    let why = match e.kind() {
        io::ErrorKind::NotFound => "not found (is it installed, and on PATH?)".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied (is it executable?)".to_owned(),
        _ => e.to_string(),
    };
    format!("cannot run {program}: {why}")
}

fn internal(e: io::Error) -> Failure {
    Failure::new(Code::Internal, format!("waiting for a child process: {e}"))
}

/// In the child, before exec: default dispositions, nothing blocked. The
/// real-time signals count too (`realtime`, asked of glibc before the fork);
/// glibc keeps 32 and 33 for itself and will not let them be changed, so
/// those two stay as inherited.
fn reset_signal_state(realtime: RangeInclusive<i32>) -> io::Result<()> {
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
    let standard = Signal::iterator().filter(|s| !matches!(s, Signal::SIGKILL | Signal::SIGSTOP));
    for n in standard.map(|s| s as i32).chain(realtime) {
        // SAFETY: SIG_DFL installs no handler, and signal() is
        // async-signal-safe. (nix's signal() takes no real-time signal.)
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
    crate::tls::restore_for_child(&mut command);
    // Everything the child needs is made here, before the fork: after it, in
    // a copy of a process that may have had other threads, only
    // async-signal-safe calls are sound (another thread may have held the
    // allocator's lock, say).
    let identity = spec.run_as.cloned();
    let pass_fd = spec.pass_fd.map(|fd| fd.as_raw_fd());
    let realtime = nix::libc::SIGRTMIN()..=nix::libc::SIGRTMAX();
    let closure = move || {
        if terminal == Terminal::TakeForeground {
            take_terminal_foreground()?;
        }
        if let Some(fd) = pass_fd {
            keep_open_across_exec(fd)?;
        }
        reset_signal_state(realtime.clone())?;
        match &identity {
            Some(identity) => identity.apply(),
            None => Ok(()),
        }
    };
    // SAFETY: the closure allocates nothing and takes no lock. It reads
    // what was made before the fork, and calls only what POSIX lists as
    // async-signal-safe (tcsetpgrp, getpgrp, fcntl, signal, sigprocmask,
    // setgid, setuid) or what glibc makes one system call (isatty, and
    // setgroups in RunAs::apply). Its errors are OS error numbers, which
    // io::Error holds without allocating.
    unsafe { command.pre_exec(closure) };
    command
}

/// In the child, before exec: clear `fd`'s close-on-exec flag.
fn keep_open_across_exec(fd: std::os::fd::RawFd) -> io::Result<()> {
    // SAFETY: fcntl(2) on a descriptor this process holds.
    if unsafe { nix::libc::fcntl(fd, nix::libc::F_SETFD, 0) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// In the child: become the terminal's foreground group. A background group
/// that calls tcsetpgrp gets SIGTTOU, so it is ignored for the call (the
/// reset that follows restores it). No terminal is fine.
fn take_terminal_foreground() -> io::Result<()> {
    // Not std::io::stdin(): its first use allocates a buffer.
    // SAFETY: fd 0 is not -1, and std's own Stdin::as_fd borrows it the same
    // way; if it is closed, isatty says so (EBADF) and it goes no further.
    let stdin = unsafe { BorrowedFd::borrow_raw(0) };
    if !nix::unistd::isatty(stdin).unwrap_or(false) {
        return Ok(());
    }
    // SAFETY: SIG_IGN installs no handler; signal() is async-signal-safe.
    unsafe { nix::sys::signal::signal(Signal::SIGTTOU, nix::sys::signal::SigHandler::SigIgn)? };
    match nix::unistd::tcsetpgrp(stdin, nix::unistd::getpgrp()) {
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
    Failure::new(code, cannot_run(&format!("COMMAND {}", argv[0]), e))
}

/// Replaces unlatch with COMMAND (same PID); returns only if that fails.
pub fn exec(spec: Spec<'_>) -> Failure {
    // Exec keeps unlatch's process group and terminal: it is the same process.
    start_failure(spec.argv, &clean_command(spec, Terminal::Leave).exec())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wait status as waitpid(2) gives it: code << 8, or the signal (with
    /// 0x80 when it dumped core).
    fn ended(raw: i32) -> ExitStatus {
        ExitStatus::from_raw(raw)
    }

    #[test]
    fn an_end_is_numbered_as_the_shell_numbers_it() {
        assert_eq!(exit_code(ended(3 << 8)), 3);
        assert_eq!(exit_code(ended(Signal::SIGKILL as i32)), 137);
        assert_eq!(exit_code(ended(Signal::SIGTERM as i32 | 0x80)), 143);
    }

    #[test]
    fn an_end_is_told_in_words_with_the_signals_name() {
        assert_eq!(describe(ended(3 << 8)), "exited with 3");
        assert_eq!(describe(ended(9)), "was killed by SIGKILL");
        assert_eq!(describe(ended(40)), "was killed by signal 40");
    }
}
