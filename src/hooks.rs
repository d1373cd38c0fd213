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
//! May touch: the hooks it runs; a temporary env file.

use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::config::{Config, HookFailure};
use crate::exit::{Code, Failure};
use crate::process::{self, Ended, Limits, Output, Spec, Stop};

/// Variables the hooks handed on, in the order they were written.
pub type HandedEnv = Vec<(String, String)>;

/// Runs every hook in `config.hooks_dir`; returns the variables they handed on.
pub async fn run_all(config: &Config, stop: &mut Stop) -> anyhow::Result<HandedEnv> {
    let Some(dir) = &config.hooks_dir else {
        return Ok(Vec::new());
    };
    let hooks = list(dir)?;
    if hooks.is_empty() {
        log::debug!("no hooks in {}", dir.display());
        return Ok(Vec::new());
    }
    let env_file = EnvFile::create(config)?;
    let mut handed = HandedEnv::new();
    for hook in hooks {
        let name = hook
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !is_executable(&hook)? {
            log::warn!(
                "skipping hook {name}: not executable (chmod +x {} to run it)",
                hook.display()
            );
            continue;
        }
        check_trusted(&hook, &name, config)?;
        let argv = [hook.display().to_string()];
        let mut env = handed.clone();
        env.push((
            "UNLATCH_ENV_FILE".to_owned(),
            env_file.path.display().to_string(),
        ));
        let spec = Spec {
            argv: &argv,
            run_as: config.migrate_run_as.as_ref(),
            env: &env,
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
        match ended {
            _ if ended.succeeded() => {}
            Ended::Stopped(n) => return Err(Failure::signal(n).into()),
            _ => failed(&name, &ended, config)?,
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

fn is_executable(hook: &Path) -> anyhow::Result<bool> {
    Ok(hook.metadata()?.permissions().mode() & 0o111 != 0)
}

/// Refuses a hook that someone other than root or its runner could change.
fn check_trusted(hook: &Path, name: &str, config: &Config) -> anyhow::Result<()> {
    let meta = hook.metadata()?;
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

fn failed(name: &str, ended: &Ended, config: &Config) -> anyhow::Result<()> {
    let message = format!("hook {name} {}", ended.describe());
    match config.hook_failure {
        HookFailure::Warn => {
            log::warn!("{message}; going on, as UNLATCH_HOOK_FAILURE=warn says");
            Ok(())
        }
        HookFailure::Stop => Err(Failure::new(
            Code::HookFailed,
            format!("{message}; not starting the app (UNLATCH_HOOK_FAILURE=warn would go on)"),
        )
        .into()),
    }
}

/// The file hooks append `KEY=VALUE` lines to; removed when dropped.
struct EnvFile {
    path: PathBuf,
}

impl EnvFile {
    fn create(config: &Config) -> anyhow::Result<EnvFile> {
        let path = std::env::temp_dir().join(format!("unlatch-env-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        if let Some(identity) = &config.migrate_run_as {
            // The hooks run as this user and must be able to append.
            std::os::unix::fs::fchown(
                &file,
                Some(identity.uid.as_raw()),
                Some(identity.gid.as_raw()),
            )?;
        }
        Ok(EnvFile { path })
    }

    /// Everything written so far. Blank lines and `#` comments are allowed;
    /// a line that is not `KEY=VALUE` is reported and skipped.
    fn read(&self, hook: &str) -> anyhow::Result<HandedEnv> {
        let text = std::fs::read_to_string(&self.path)?;
        let mut vars = HandedEnv::new();
        for (n, line) in text.lines().enumerate() {
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
}

impl Drop for EnvFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `KEY=VALUE`, the value taken literally to the end of the line.
fn parse_assignment(line: &str) -> Option<(&str, &str)> {
    let (key, value) = line.split_once('=')?;
    let mut chars = key.chars();
    let first = chars.next()?;
    let valid = (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then_some((key, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments() {
        assert_eq!(parse_assignment("A=1"), Some(("A", "1")));
        assert_eq!(parse_assignment("_x9=a=b c"), Some(("_x9", "a=b c")));
        assert_eq!(parse_assignment("EMPTY="), Some(("EMPTY", "")));
        assert_eq!(parse_assignment("9A=1"), None);
        assert_eq!(parse_assignment("A B=1"), None);
        assert_eq!(parse_assignment("export A=1"), None);
        assert_eq!(parse_assignment("novalue"), None);
    }

    #[test]
    fn natural_order_and_files_only() {
        let dir = std::env::temp_dir().join(format!("unlatch-hooks-order-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("5-a-folder")).unwrap();
        for name in ["10-b", "9-a", "1-z", "100-c"] {
            std::fs::write(dir.join(name), "").unwrap();
        }
        std::fs::write(dir.join("5-a-folder/2-inner"), "").unwrap();
        let names: Vec<String> = list(&dir)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["1-z", "9-a", "10-b", "100-c"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
