//! Exit codes, and the one error type that carries one.
//!
//! Everything that should end unlatch with a particular code returns a
//! [`Failure`]; any other error is unexpected and exits with
//! [`Code::Internal`]. Only `main` turns these into a process exit, so the
//! codes are decided in one place and documented in one table (the README's).
//! The numbers avoid 1 and 2 (what apps use), 126 and 127 (the shell's) and
//! 128+n (death by signal).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// A variable or argument is wrong; nothing was touched.
    Config,
    /// The database did not accept connections within `UNLATCH_WAIT_TIMEOUT`,
    /// or its TLS certificate failed verification (at once: waiting would
    /// not change it).
    Unreachable,
    /// The database rejected the credentials; not retried.
    Credentials,
    /// Unexpected error talking to the database, or inside unlatch.
    Internal,
    /// The migrate command exited non-zero.
    MigrationFailed,
    /// The migrate (or rollback) command ran past `UNLATCH_MIGRATE_TIMEOUT`.
    MigrationTimedOut,
    /// A hook failed, timed out, or was refused as untrusted.
    HookFailed,
    /// A live lock, or another replica's guard, outlasted `UNLATCH_LOCK_WAIT`.
    LockStillHeld,
    /// A stale lock was found and `UNLATCH_ON_STALE=fail` refused to heal it.
    StaleRefused,
    /// A dirty or failed migration, and `UNLATCH_ON_DIRTY=fail`.
    DirtyRefused,
    /// COMMAND exists but cannot be executed.
    NotExecutable,
    /// COMMAND was not found.
    NotFound,
    /// unlatch was stopped by signal n during the preflight: 128+n.
    Signal(i32),
}

impl Code {
    pub fn number(self) -> u8 {
        match self {
            Code::Config => 64,
            Code::Unreachable => 69,
            Code::Internal => 70,
            Code::MigrationFailed => 71,
            Code::MigrationTimedOut => 72,
            Code::HookFailed => 73,
            Code::LockStillHeld => 75,
            Code::StaleRefused => 76,
            Code::Credentials => 77,
            Code::DirtyRefused => 78,
            Code::NotExecutable => 126,
            Code::NotFound => 127,
            Code::Signal(n) => (128 + n).clamp(0, 255) as u8,
        }
    }
}

/// An error whose exit code is known. The message is one line for the user,
/// already free of passwords.
#[derive(Debug)]
pub struct Failure {
    pub code: Code,
    pub message: String,
}

impl Failure {
    pub fn new(code: Code, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    /// unlatch was asked to stop by signal `n`.
    pub fn signal(n: i32) -> Failure {
        let name = nix::sys::signal::Signal::try_from(n)
            .map(|s| s.as_str())
            .unwrap_or("signal");
        Failure::new(Code::Signal(n), format!("stopped by {name}"))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// The exit code for an error chain: the [`Failure`] in it, else internal.
pub fn code_of(err: &anyhow::Error) -> Code {
    err.chain()
        .find_map(|e| e.downcast_ref::<Failure>())
        .map_or(Code::Internal, |f| f.code)
}
