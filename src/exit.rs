//! Exit codes, and the one error type that carries one.
//!
//! Everything that should end unlatch with a particular code returns a
//! [`Failure`]; any other error is unexpected and exits with
//! [`Code::Internal`]. Only `main` turns these into a process exit, so the
//! codes are decided in one place. They are listed in one place too, the
//! `codes!` list below: `--help` prints it, and tests hold `--help` and the
//! README's table to it, row for row. The numbers avoid 1 and 2 (what apps
//! use) and 128+n (death by signal); 126 and 127 mean what the shell's do.

use std::fmt;

/// Defines [`Code`] and [`TABLE`] from one list of `number Name "meaning"`,
/// so that a code cannot be added without its number and its meaning.
macro_rules! codes {
    ($($number:literal $name:ident $meaning:literal,)*) => {
        /// Why unlatch ends; [`Code::number`] is its exit code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code {
            $(#[doc = $meaning] $name,)*
            /// unlatch was stopped by signal n during the preflight: 128+n.
            Signal(i32),
        }

        impl Code {
            pub fn number(self) -> u8 {
                match self {
                    $(Code::$name => $number,)*
                    Code::Signal(n) => signal_number(n),
                }
            }
        }

        /// Every exit code unlatch decides, with its meaning (Markdown, as
        /// in the README), in order: success, the [`Code`]s, 128+n.
        pub const TABLE: &[(&str, &str)] = &[
            ("0", "success (`status`: lock free)"),
            $((stringify!($number), $meaning),)*
            ("128+n", "stopped by signal n during the preflight (143 for TERM)"),
        ];
    };
}

codes! {
    64 Config "configuration error; nothing was touched",
    69 Unreachable "database unreachable within `UNLATCH_WAIT_TIMEOUT`, or its TLS certificate failed verification (at once, not retried)",
    70 Internal "unexpected error",
    71 MigrationFailed "`UNLATCH_MIGRATE_CMD` failed (its own code is logged)",
    72 MigrationTimedOut "`UNLATCH_MIGRATE_CMD` (or the rollback command) timed out and was stopped",
    73 HookFailed "a hook failed, timed out, or was refused (world-writable, or owned by another user)",
    75 LockStillHeld "a live lock, or another replica's guard, still held after `UNLATCH_LOCK_WAIT`; or a SQLite database another process keeps locked",
    76 StaleRefused "stale lock refused (`UNLATCH_ON_STALE=fail`)",
    77 Credentials "the database rejected the credentials (not retried), or a SQLite database is read-only or out of reach (a folder it may not search) to unlatch",
    78 DirtyRefused "a dirty or failed migration, refused (`UNLATCH_ON_DIRTY=fail`)",
    126 NotExecutable "COMMAND exists but is not executable",
    127 NotFound "COMMAND not found",
}

/// The shell's number for death by signal `n`: 128+n. The one place it is
/// worked out, for unlatch's own stop and for a supervised app's death.
pub fn signal_number(n: i32) -> u8 {
    (128 + n).clamp(0, 255) as u8
}

/// How every message names a signal: `SIGTERM`, or `signal 40` (real-time).
pub fn signal_name(n: i32) -> String {
    nix::sys::signal::Signal::try_from(n)
        .map_or_else(|_| format!("signal {n}"), |s| s.as_str().to_owned())
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
        Failure::new(Code::Signal(n), format!("stopped by {}", signal_name(n)))
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

#[cfg(test)]
mod tests {
    #[test]
    fn every_code_means_one_thing_and_none_is_an_apps_own() {
        let codes: Vec<&str> = super::TABLE.iter().map(|(code, _)| *code).collect();
        for (i, code) in codes.iter().enumerate() {
            assert!(!codes[..i].contains(code), "{code} twice");
            assert!(!["1", "2"].contains(code), "{code} is what apps exit with");
        }
    }
}
