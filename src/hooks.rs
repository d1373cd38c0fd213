//! Hooks: the executable files of an `entrypoint.d` folder, run once the
//! lock is healed and before the migrations (so a hook can take a backup of
//! a database that is consistent and about to change).
//!
//! Like the official images' entrypoints, with their rough edges filed off:
//! only regular files directly in the folder, in natural order (`9-a` before
//! `10-b`); a file without an execute bit is skipped with a warning; a file
//! anyone may write to, or one owned by a user other than root or the user
//! it would run as, is refused, since it could run someone else's code. Each
//! hook runs as the migrate user, under `UNLATCH_HOOK_TIMEOUT`, its output
//! prefixed with its name. A failure stops the start unless
//! `UNLATCH_HOOK_FAILURE=warn`.
//!
//! A hook cannot change unlatch's environment (nginx's sourced `.envsh`
//! hooks lose theirs in a subshell); instead it appends `KEY=VALUE` lines
//! to the file named in `$UNLATCH_ENV_FILE`, and those variables reach the
//! later hooks, the migrate command and the app.
//!
//! That file is in memory (`memfd_create`), not on disk: each hook inherits
//! its descriptor and names it `/dev/fd/<n>`. So hooks work on a read-only
//! root file system, a hook running as another user can write to it (the
//! descriptor is its own), and nothing is left behind when unlatch is
//! killed, to be in the way of the next start (as PID 1 in a container,
//! every start has the same PID).
//!
//! May touch: the hooks it runs; its in-memory env file.

use std::ffi::CStr;
use std::fs::{File, Metadata};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use crate::exit::{Code, Failure};
use crate::process::{self, Ended, Limits, Output, Spec, Stop};
use crate::user::RunAs;

/// What running hooks reads from the configuration.
#[derive(Debug)]
pub struct Settings {
    /// `UNLATCH_HOOKS_DIR`, else `/entrypoint.d` when it exists.
    pub hooks_dir: Option<PathBuf>,
    pub hook_timeout: Duration,
    pub hook_failure: HookFailure,
    /// Hooks run as the migrate command does.
    pub migrate_run_as: Option<RunAs>,
    pub kill_grace: Duration,
}

/// What a failed hook does to the start (`UNLATCH_HOOK_FAILURE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HookFailure {
    Stop,
    Warn,
}

/// Variables the hooks handed on, in the order they were written.
pub type HandedEnv = Vec<(String, String)>;

/// Runs every hook in `config.hooks_dir`; returns the variables they handed on.
pub async fn run_all(config: &Settings, stop: &mut Stop) -> anyhow::Result<HandedEnv> {
    let Some(dir) = &config.hooks_dir else {
        return Ok(Vec::new());
    };
    let hooks = list(dir)?;
    if hooks.is_empty() {
        log::debug!("no hooks in {}", dir.display());
        return Ok(Vec::new());
    }
    let env_file = EnvFile::create()?;
    let mut handed = HandedEnv::new();
    for hook in hooks {
        let name = hook
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let meta = hook
            .metadata()
            .with_context(|| format!("cannot read the hook {}", hook.display()))?;
        if meta.permissions().mode() & 0o111 == 0 {
            log::warn!(
                "skipping hook {name}: not executable (chmod +x {} to run it)",
                hook.display()
            );
            continue;
        }
        check_trusted(&hook, &name, &meta, config)?;
        let argv = [hook.display().to_string()];
        let mut env = handed.clone();
        env.push(("UNLATCH_ENV_FILE".to_owned(), env_file.path()));
        let spec = Spec {
            argv: &argv,
            run_as: config.migrate_run_as.as_ref(),
            env: &env,
            pass_fd: Some(env_file.file.as_fd()),
        };
        let limits = Limits {
            timeout: config.hook_timeout,
            grace: config.kill_grace,
        };
        let ended = process::run(
            &format!("hook {name}"),
            spec,
            limits,
            Output::Prefixed(&name),
            stop,
        )
        .await?;
        let failed = format!("hook {name} {}", ended.describe());
        match ended {
            _ if ended.succeeded() => {}
            Ended::Stopped(n) => return Err(Failure::signal(n).into()),
            _ if config.hook_failure == HookFailure::Warn => {
                log::warn!("{failed}; going on, as UNLATCH_HOOK_FAILURE=warn says");
            }
            _ => {
                let why = format!(
                    "{failed}; not starting the app (UNLATCH_HOOK_FAILURE=warn would go on)"
                );
                return Err(Failure::new(Code::HookFailed, why).into());
            }
        }
        handed = env_file.read(&name)?;
    }
    Ok(handed)
}

/// The regular files directly in `dir`, in natural order.
fn list(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Failure::new(
            Code::HookFailed,
            format!("UNLATCH_HOOKS_DIR={}: cannot read it: {e}", dir.display()),
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|entry| entry.path())
        // metadata() follows symlinks, so a link to a file counts as one.
        .filter(|path| path.metadata().is_ok_and(|m| m.is_file()))
        .collect();
    files.sort_by(|a, b| alphanumeric_sort::compare_path(a, b));
    Ok(files)
}

/// Refuses a hook that someone other than root or its runner could change.
fn check_trusted(
    hook: &Path,
    name: &str,
    meta: &Metadata,
    config: &Settings,
) -> anyhow::Result<()> {
    let refuse = |why: String| {
        Failure::new(
            Code::HookFailed,
            format!("refusing hook {name} ({}): {why}", hook.display()),
        )
    };
    if meta.permissions().mode() & 0o002 != 0 {
        return Err(refuse(
            "it is world-writable, so anyone could change what runs; chmod o-w it".into(),
        )
        .into());
    }
    let runner = config
        .migrate_run_as
        .as_ref()
        .map_or_else(|| nix::unistd::geteuid().as_raw(), |r| r.uid.as_raw());
    if meta.uid() != 0 && meta.uid() != runner {
        return Err(refuse(format!(
            "it is owned by uid {}, neither root nor the user it runs as (uid {runner})",
            meta.uid()
        ))
        .into());
    }
    Ok(())
}

/// The in-memory file hooks append `KEY=VALUE` lines to; it goes with its
/// descriptor, whatever way unlatch ends.
struct EnvFile {
    file: File,
}

impl EnvFile {
    fn create() -> anyhow::Result<EnvFile> {
        const NAME: &CStr = c"unlatch-env";
        // Close-on-exec: only the hooks get it, each as it starts.
        let fd = nix::sys::memfd::memfd_create(NAME, nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot make the in-memory file for $UNLATCH_ENV_FILE (memfd_create): {e}; \
                     Linux 3.17 or later is needed to run hooks"
                )
            })?;
        Ok(EnvFile { file: fd.into() })
    }

    /// The name a hook opens it by: its own copy of the descriptor.
    fn path(&self) -> String {
        use std::os::fd::AsRawFd;
        format!("/dev/fd/{}", self.file.as_raw_fd())
    }

    /// Everything written so far, read from the start. Blank lines and `#`
    /// comments are allowed; a line that is not `KEY=VALUE` is reported and
    /// skipped.
    fn read(&self, hook: &str) -> anyhow::Result<HandedEnv> {
        let bytes = self.contents().with_context(|| {
            format!(
                "cannot read $UNLATCH_ENV_FILE ({}) after hook {hook}",
                self.path()
            )
        })?;
        let mut vars = HandedEnv::new();
        for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
            let Ok(line) = std::str::from_utf8(line) else {
                log::warn!(
                    "ignoring line {} of $UNLATCH_ENV_FILE after hook {hook}: not UTF-8",
                    n + 1
                );
                continue;
            };
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            match parse_assignment(line) {
                Some((key, value)) => {
                    vars.retain(|(k, _)| k != key);
                    vars.push((key.to_owned(), value.to_owned()));
                }
                None => log::warn!(
                    "ignoring line {} of $UNLATCH_ENV_FILE after hook {hook}: expected KEY=VALUE, KEY made of letters, digits and _",
                    n + 1
                ),
            }
        }
        Ok(vars)
    }

    /// Reads at offsets, from 0: the hooks' appends move no offset of ours.
    fn contents(&self) -> std::io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match self.file.read_at(&mut buf, bytes.len() as u64)? {
                0 => return Ok(bytes),
                n => bytes.extend_from_slice(&buf[..n]),
            }
        }
    }
}

/// `KEY=VALUE`, the value taken literally to the end of the line.
fn parse_assignment(line: &str) -> Option<(&str, &str)> {
    let (key, value) = line.split_once('=')?;
    crate::env::is_name(key).then_some((key, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assignment_takes_the_value_literally_to_the_end_of_the_line() {
        assert_eq!(parse_assignment("A=1"), Some(("A", "1")));
        assert_eq!(parse_assignment("_x9=a=b c"), Some(("_x9", "a=b c")));
        assert_eq!(parse_assignment("EMPTY="), Some(("EMPTY", "")));
    }

    #[test]
    fn a_line_that_is_not_key_value_is_no_assignment() {
        assert_eq!(parse_assignment("9A=1"), None);
        assert_eq!(parse_assignment("A B=1"), None);
        assert_eq!(parse_assignment("export A=1"), None);
        assert_eq!(parse_assignment("novalue"), None);
    }

    #[test]
    fn hooks_are_the_files_directly_in_the_folder_in_natural_order() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        std::fs::create_dir_all(dir.join("5-a-folder")).unwrap();
        for name in ["10-b", "9-a", "1-z", "100-c"] {
            std::fs::write(dir.join(name), "").unwrap();
        }
        std::fs::write(dir.join("5-a-folder/2-inner"), "").unwrap();
        let names: Vec<String> = list(dir)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["1-z", "9-a", "10-b", "100-c"]);
    }
}
