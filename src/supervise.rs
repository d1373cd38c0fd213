//! Supervise: unlatch stays as PID 1 (or as a child subreaper) and runs
//! COMMAND as its child, the way tini does.
//!
//! It starts after the preflight, with the database connections closed and
//! the async runtime gone: a plain loop on one thread, a few hundred KiB.
//! Every catchable signal gets a handler (signal-hook), because a PID 1 only
//! receives the signals it handles; each is forwarded to the child (or its
//! process group, `UNLATCH_SIGNAL_TARGET=group`). SIGCHLD triggers a
//! `waitpid(-1)` pass: this loop is the one owner of every PID, so no exit
//! status is lost to a second waiter. When the child exits, what is left of
//! its descendants gets TERM, then KILL after `UNLATCH_KILL_GRACE`, and
//! unlatch exits with the child's code, or 128+n if signal n killed it
//! ([`process::exit_code`]: the child starts and ends as `process` says).
//!
//! Not forwarded: SIGCHLD (ours), the fault signals (ILL, FPE, SEGV, BUS,
//! ABRT, TRAP, SYS: they concern this process only), SIGPIPE (a write of
//! our own to a closed stderr must not reach the app), and TTIN/TTOU, which
//! unlatch ignores so a terminal cannot stop it.
//!
//! It runs in a fresh image of unlatch ([`exec_fresh_image`]): the same
//! PID, but without what the preflight paged in (sqlx, tokio, the time zone
//! database), which would otherwise stay resident for as long as the app
//! runs. Signals stay blocked across that exec, so none is lost or meets its
//! default action in between; [`run`] unblocks them once its handlers are in.
//!
//! May touch: its children and their descendants; its signal handlers and
//! mask; this process's image.

use std::collections::{HashMap, HashSet};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, sigprocmask, SigHandler, SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;
use signal_hook::iterator::backend::SignalDelivery;
use signal_hook::iterator::exfiltrator::SignalOnly;

use crate::exit::Failure;
use crate::process::{self, Spec, Terminal};

/// How often the loop wakes with no signal, to reap what it may have missed.
const TICK: Duration = Duration::from_secs(1);

type Signals = SignalDelivery<UnixStream, SignalOnly>;

/// Where a supervisor sends the signals it forwards (`UNLATCH_SIGNAL_TARGET`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignalTarget {
    Child,
    Group,
}

/// Settings for [`run`].
pub struct Supervision {
    pub target: SignalTarget,
    pub grace: Duration,
}

/// The hidden option that starts the fresh image: the settings and COMMAND
/// follow it (see [`fresh_image_args`]).
pub const FRESH_IMAGE: &str = "--supervise-in-fresh-image";

/// Replaces this process with a fresh image of unlatch that supervises
/// `spec`'s COMMAND. Returns only if the exec failed, with signals as they
/// were; the caller may then supervise from this image.
pub fn exec_fresh_image(spec: &Spec<'_>, settings: &Supervision) -> Errno {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let text = |s: &str| CString::new(s).unwrap_or_default();
    let target = match settings.target {
        SignalTarget::Child => "child",
        SignalTarget::Group => "group",
    };
    let run_as = spec.run_as.map_or("", |r| r.spec.as_str());
    let mut argv = vec![text("unlatch"), text(FRESH_IMAGE), text(target)];
    argv.push(text(&settings.grace.as_millis().to_string()));
    argv.extend([text(run_as), text("--")]);
    argv.extend(spec.argv.iter().map(|a| text(a)));
    // What the hooks handed on goes into the environment, for the app.
    let mut env: HashMap<Vec<u8>, Vec<u8>> = std::env::vars_os()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
    env.extend(
        spec.env
            .iter()
            .map(|(k, v)| (k.clone().into_bytes(), v.clone().into_bytes())),
    );
    let envp: Vec<CString> = env
        .into_iter()
        .filter_map(|(k, v)| CString::new([k, b"=".to_vec(), v].concat()).ok())
        .collect();
    // std's exec would empty the signal mask first; execve keeps it.
    let mut old = SigSet::empty();
    let _ = sigprocmask(
        SigmaskHow::SIG_SETMASK,
        Some(&SigSet::all()),
        Some(&mut old),
    );
    let Err(e) = nix::unistd::execve(c"/proc/self/exe", &argv, &envp);
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    e
}

/// The settings, run-as spec and COMMAND after [`FRESH_IMAGE`], as
/// [`exec_fresh_image`] wrote them; `None` if they are not that.
pub fn fresh_image_args(args: &[String]) -> Option<(Supervision, Option<&str>, &[String])> {
    let [target, grace, run_as, dashes, command @ ..] = args else {
        return None;
    };
    let target = match target.as_str() {
        "child" => SignalTarget::Child,
        "group" => SignalTarget::Group,
        _ => return None,
    };
    let grace = Duration::from_millis(grace.parse().ok()?);
    if dashes != "--" || command.is_empty() {
        return None;
    }
    let run_as = Some(run_as.as_str()).filter(|r| !r.is_empty());
    Some((Supervision { target, grace }, run_as, command))
}

/// The signals passed on to the child.
fn forwarded() -> Vec<i32> {
    use Signal::*;
    let skip = [
        SIGKILL, SIGSTOP, SIGCHLD, SIGILL, SIGFPE, SIGSEGV, SIGBUS, SIGABRT, SIGTRAP, SIGSYS,
        SIGPIPE, SIGTTIN, SIGTTOU,
    ];
    Signal::iterator()
        .filter(|s| !skip.contains(s))
        .map(|s| s as i32)
        .chain(nix::libc::SIGRTMIN()..=nix::libc::SIGRTMAX())
        .collect()
}

/// Runs `argv` as a supervised child; returns the exit code to leave with.
pub fn run(spec: Spec<'_>, settings: &Supervision) -> Result<u8, Failure> {
    let argv = spec.argv;
    let me = nix::unistd::getpid();
    if me.as_raw() != 1 {
        // Orphans reparent to the nearest subreaper: make that us.
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            log::warn!(
                "cannot become a child subreaper ({e}); orphans will not be reaped by unlatch"
            );
        }
    }
    for sig in [Signal::SIGTTIN, Signal::SIGTTOU] {
        // SAFETY: ignoring a signal installs no handler code.
        let _ = unsafe { nix::sys::signal::signal(sig, SigHandler::SigIgn) };
    }
    // Handlers go in before the child starts, so no early signal is lost;
    // then what was blocked across the exec into this image arrives.
    let mut signals = install_handlers()?;
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);

    let mut command = process::clean_command(spec, Terminal::TakeForeground);
    command.process_group(0);
    let child = command
        .spawn()
        .map_err(|e| process::start_failure(argv, &e))?;
    let child = Pid::from_raw(child.id() as i32);
    log::debug!("supervising {} (pid {child}) as pid {me}", argv[0]);

    let status = loop {
        for sig in wait_for_signals(&mut signals, TICK) {
            if sig != Signal::SIGCHLD as i32 {
                forward(sig, child, settings.target);
            }
        }
        if let Some(status) = reap(child) {
            break status;
        }
    };
    let code = process::exit_code(status);
    end_descendants(me, settings.grace, &mut signals);
    log::debug!(
        "{} {}; exiting with {code}",
        argv[0],
        process::describe(status)
    );
    Ok(code)
}

fn install_handlers() -> Result<Signals, Failure> {
    let internal = |e: std::io::Error| {
        Failure::new(
            crate::exit::Code::Internal,
            format!("installing signal handlers: {e}"),
        )
    };
    let (read, write) = UnixStream::pair().map_err(internal)?;
    let mut wanted = forwarded();
    wanted.push(Signal::SIGCHLD as i32);
    SignalDelivery::with_pipe(read, write, SignalOnly, wanted).map_err(internal)
}

/// The signals that arrived, waiting at most `timeout` for the first.
fn wait_for_signals(signals: &mut Signals, timeout: Duration) -> Vec<i32> {
    let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
    let mut ready = |read: &mut UnixStream| -> Result<bool, std::io::Error> {
        let mut fds = [PollFd::new(read.as_fd(), PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, timeout) {
            Ok(n) => Ok(n > 0),
            Err(Errno::EINTR) => Ok(true),
            Err(e) => Err(e.into()),
        }
    };
    match signals.poll_pending(&mut ready) {
        Ok(Some(pending)) => pending.collect(),
        Ok(None) => Vec::new(),
        Err(e) => {
            log::warn!("waiting for signals: {e}");
            std::thread::sleep(Duration::from_millis(10));
            Vec::new()
        }
    }
}

fn forward(sig: i32, child: Pid, target: SignalTarget) {
    let pid = match target {
        SignalTarget::Child => child.as_raw(),
        SignalTarget::Group => -child.as_raw(),
    };
    // Not nix's kill: its Signal has no real-time signals.
    // SAFETY: kill(2) takes no pointers; any number is safe to ask for.
    let sent = Errno::result(unsafe { nix::libc::kill(pid, sig) });
    let signal = crate::exit::signal_name(sig);
    match sent {
        Ok(_) => log::debug!("forwarded {signal} to {child}"),
        // The child just exited; its status is on the way.
        Err(Errno::ESRCH) => {}
        Err(e) => log::warn!("forwarding {signal} to {child}: {e}"),
    }
}

/// Reaps every zombie; returns the main child's end if it was among them.
fn reap(child: Pid) -> Option<ExitStatus> {
    let mut found = None;
    loop {
        let mut raw = 0;
        // SAFETY: waitpid(2) writes to a local. Not nix's waitpid: its
        // WaitStatus is a second way to tell how a process ended, and
        // `process` tells it from std's ExitStatus, the status as it is.
        let reaped = unsafe { nix::libc::waitpid(-1, &mut raw, nix::libc::WNOHANG) };
        let status = ExitStatus::from_raw(raw);
        match Errno::result(reaped) {
            Ok(0) | Err(Errno::ECHILD) => return found,
            Ok(pid) if pid == child.as_raw() => found = Some(status),
            Ok(pid) => log::debug!("reaped {pid}, which {}", process::describe(status)),
            Err(Errno::EINTR) => {}
            Err(e) => {
                log::warn!("waitpid: {e}");
                return found;
            }
        }
    }
}

/// Every live process below `root`, from `/proc` (orphans that reparented to
/// us included; as PID 1 that is everything else in the namespace).
fn descendants(root: Pid) -> Vec<Pid> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for entry in entries.flatten() {
        let pid = entry.file_name().to_str().and_then(|n| n.parse().ok());
        if let Some((pid, ppid)) = pid.and_then(|pid| Some((pid, live_parent(pid)?))) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut found = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = vec![root.as_raw()];
    while let Some(parent) = stack.pop() {
        for &pid in children.get(&parent).into_iter().flatten() {
            if seen.insert(pid) {
                found.push(Pid::from_raw(pid));
                stack.push(pid);
            }
        }
    }
    found
}

/// The parent of process `pid`, unless it is a zombie: from
/// `/proc/<pid>/stat`, "pid (comm) state ppid ...", where comm may hold
/// spaces and parentheses.
fn live_parent(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    (state != "Z").then_some(ppid)
}

/// TERM (and CONT, so a stopped one sees it) to what the child left behind,
/// `grace` to go, then KILL; reaping all along.
fn end_descendants(me: Pid, grace: Duration, signals: &mut Signals) {
    let left = descendants(me);
    if left.is_empty() {
        return;
    }
    log::info!(
        "the app left {} process(es) behind: sending SIGTERM",
        left.len()
    );
    for pid in &left {
        let _ = kill(*pid, Signal::SIGTERM);
        let _ = kill(*pid, Signal::SIGCONT);
    }
    let left = reap_until_gone(me, grace, signals);
    if left.is_empty() {
        return;
    }
    log::warn!(
        "{} process(es) still running {} after SIGTERM: sending SIGKILL",
        left.len(),
        crate::clock::human(grace)
    );
    for pid in &left {
        let _ = kill(*pid, Signal::SIGKILL);
    }
    // KILL cannot be refused; collect the zombies.
    reap_until_gone(me, Duration::from_secs(2), signals);
}

/// Reaps, waking on signals, until nothing is left below `me` or `limit`
/// has passed; returns what is left.
fn reap_until_gone(me: Pid, limit: Duration, signals: &mut Signals) -> Vec<Pid> {
    let deadline = Instant::now() + limit;
    loop {
        reap(Pid::from_raw(0));
        let left = descendants(me);
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        wait_for_signals(signals, Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_signals_leave_out_ours_and_the_faults() {
        use Signal::*;
        let set = forwarded();
        for sig in [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH] {
            assert!(set.contains(&(sig as i32)), "{sig}");
        }
        for sig in [SIGCHLD, SIGKILL, SIGSEGV, SIGPIPE, SIGTTOU] {
            assert!(!set.contains(&(sig as i32)), "{sig}");
        }
        assert!(set.contains(&nix::libc::SIGRTMIN()));
    }
}
