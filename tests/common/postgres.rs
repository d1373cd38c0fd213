//! A PostgreSQL server of a test's own (initdb in a scratch folder, run
//! as the `postgres` user on a free port), for the tests that stop, restart
//! or reconfigure one: the shared servers are never disturbed.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use super::*;

/// A PostgreSQL server of the test's own, run as the `postgres` user from a
/// scratch folder on a free port, with password authentication.
pub struct PrivatePostgres {
    bin: PathBuf,
    pub data: PathBuf,
    pub port: u16,
    user: nix::unistd::User,
    _scratch: Scratch,
}

/// The tests' recognisable password: no output or file may show it.
pub const SERVER_PASSWORD: &str = PASSWORD;

impl PrivatePostgres {
    /// `None` (skipped, or failed under UNLATCH_TEST_REQUIRE_SERVERS=1)
    /// when this machine has no PostgreSQL server binaries or is not root.
    pub fn init(test: &str) -> Option<PrivatePostgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|versions| versions.flatten().map(|v| v.path().join("bin")).max());
        let user = nix::unistd::User::from_name("postgres").ok().flatten();
        let missing = lacks_root()
            .or_else(|| bin.is_none().then(|| "PostgreSQL server binaries".into()))
            .or_else(|| user.is_none().then(|| "a postgres user".into()));
        if !available(test, missing.as_deref()) {
            return None;
        }
        let (bin, user) = (bin.unwrap(), user.unwrap());
        let scratch = Scratch::new(test);
        let data = scratch.path().join("data");
        let pwfile = scratch.path().join("pw");
        std::fs::write(&pwfile, SERVER_PASSWORD).unwrap();
        for path in [scratch.path(), &pwfile] {
            nix::unistd::chown(path, Some(user.uid), Some(user.gid)).unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = PrivatePostgres {
            bin,
            data,
            port,
            user,
            _scratch: scratch,
        };
        server.as_postgres("initdb", |cmd| {
            cmd.arg("-D")
                .arg(&server.data)
                .args([
                    "-U",
                    "postgres",
                    "--auth=scram-sha-256",
                    "--no-sync",
                    "-E",
                    "UTF8",
                ])
                .arg(format!("--pwfile={}", pwfile.display()));
        });
        std::fs::remove_file(&pwfile).unwrap();
        Some(server)
    }

    pub fn as_postgres(&self, program: &str, args: impl FnOnce(&mut Command)) {
        let mut cmd = Command::new(self.bin.join(program));
        cmd.uid(self.user.uid.as_raw())
            .gid(self.user.gid.as_raw())
            .current_dir(self.data.parent().unwrap());
        args(&mut cmd);
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{program}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn pg_ctl(&self, action: &str, extra: &[&str]) {
        self.pg_ctl_with("", action, extra)
    }

    /// `pg_ctl action`, the server given `settings` (`-c name=value ...`).
    pub fn pg_ctl_with(&self, settings: &str, action: &str, extra: &[&str]) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off {settings}",
            self.port,
            self.data.parent().unwrap().display()
        );
        self.as_postgres("pg_ctl", |cmd| {
            cmd.arg("-D")
                .arg(&self.data)
                .args(["-w", "-t", "60", "-o", &options, "-l"])
                .arg(self.data.parent().unwrap().join("server.log"))
                .arg(action)
                .args(extra);
        });
    }

    pub fn start(&self) {
        self.pg_ctl("start", &[]);
    }

    /// The server's URL with the right password.
    pub fn url(&self) -> String {
        self.url_with(SERVER_PASSWORD)
    }

    pub fn url_with(&self, password: &str) -> String {
        format!(
            "postgres://postgres:{password}@127.0.0.1:{}/postgres",
            self.port
        )
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new(self.bin.join("pg_ctl"))
            .uid(self.user.uid.as_raw())
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}
