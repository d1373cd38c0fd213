//! Launch: the last step. With no COMMAND the preflight was the whole job
//! (Kubernetes initContainer, Fly `release_command`): exit 0. Otherwise
//! COMMAND starts in one of two ways (`UNLATCH_MODE`):
//!
//! - exec: COMMAND replaces unlatch in place, keeping its PID, so its exit
//!   code is the container's. Right where another init is PID 1 (Fly's,
//!   Docker's `--init`, Kubernetes with a shared process namespace).
//! - supervise: unlatch stays, as PID 1, forwarding signals and reaping
//!   zombies (see `supervise`). `auto` picks it when unlatch is PID 1,
//!   because a PID-1 app that does neither makes the container misbehave.
//!
//! Either way this runs after the preflight's runtime and connections are
//! gone, and COMMAND runs as `UNLATCH_RUN_AS` when set.
//!
//! May touch: this process's image, or its children.

use std::time::Duration;

use crate::process::{self, Spec};
use crate::supervise::{self, SignalTarget, Supervision};
use crate::user::RunAs;
use crate::Prepared;

/// What launching reads from the configuration.
#[derive(Debug)]
pub struct Settings {
    pub mode: Mode,
    pub signal_target: SignalTarget,
    /// `UNLATCH_RUN_AS`: whom COMMAND runs as.
    pub run_as: Option<RunAs>,
    pub kill_grace: Duration,
}

/// How COMMAND is started after the preflight (`UNLATCH_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Supervise when PID 1, exec otherwise.
    Auto,
    Supervise,
    Exec,
}

/// Runs after the preflight; returns the exit code, or an error when
/// COMMAND could not be started.
pub fn start(command: &[String], config: &Settings, prepared: &Prepared) -> anyhow::Result<u8> {
    if command.is_empty() {
        log::info!("preflight done; no COMMAND given, exiting 0");
        return Ok(0);
    }
    let as_pid_1 = nix::unistd::getpid().as_raw() == 1;
    let supervising = match config.mode {
        Mode::Auto => as_pid_1,
        Mode::Supervise => true,
        Mode::Exec => false,
    };
    let who = match &config.run_as {
        Some(identity) => format!(" as {}", identity.spec),
        None => String::new(),
    };
    let spec = Spec {
        argv: command,
        run_as: config.run_as.as_ref(),
        env: &prepared.env,
        pass_fd: None,
    };
    if !supervising {
        log::info!("starting {}{who}", shell_words::join(command));
        return Err(process::exec(spec).into());
    }
    log::info!(
        "starting {}{who}, supervised (unlatch is {})",
        shell_words::join(command),
        if as_pid_1 { "PID 1" } else { "its subreaper" }
    );
    let settings = Supervision {
        target: config.signal_target,
        grace: config.kill_grace,
    };
    let e = supervise::exec_fresh_image(&spec, &settings);
    log::debug!("cannot exec a fresh image of unlatch ({e}); supervising from this one");
    Ok(supervise::run(spec, &settings)?)
}

/// The fresh image's whole job (see [`supervise`]): the settings come from
/// its arguments, already checked by the image before it.
pub fn supervise_in_fresh_image(args: &[String]) -> anyhow::Result<u8> {
    let Some((settings, run_as, command)) = supervise::fresh_image_args(args) else {
        anyhow::bail!(
            "unexpected arguments after {}: {args:?}",
            supervise::FRESH_IMAGE
        );
    };
    let run_as = run_as
        .map(|spec| crate::user::RunAs::resolve("UNLATCH_RUN_AS", spec))
        .transpose()?;
    let spec = Spec {
        argv: command,
        run_as: run_as.as_ref(),
        env: &[],
        pass_fd: None,
    };
    Ok(supervise::run(spec, &settings)?)
}
