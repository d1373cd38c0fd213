//! Launch: the last step. With no COMMAND the preflight was the whole job
//! (Kubernetes initContainer, Fly `release_command`): exit 0. Otherwise
//! COMMAND replaces unlatch in place, keeping its PID, so COMMAND's exit
//! code is the container's.
//!
//! Exec is the right default where another init is PID 1 (Fly's, Docker's
//! `--init`). Being PID 1 itself, supervising COMMAND, is a second mode
//! that slots in here, after the preflight and its runtime are gone.
//!
//! May touch: this process's image.

use crate::process;

/// Runs after the preflight; returns only on failure, or 0 with no COMMAND.
pub fn start(command: &[String]) -> anyhow::Result<u8> {
    if command.is_empty() {
        log::info!("preflight done; no COMMAND given, exiting 0");
        return Ok(0);
    }
    log::info!("starting {}", shell_words::join(command));
    Err(process::exec(command).into())
}
