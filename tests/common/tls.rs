//! TLS-only servers of the tests' own: a PostgreSQL (`hostssl` lines only)
//! and a MariaDB (`--require-secure-transport`), each with certificates
//! from a CA the tests make with the openssl CLI. Started once per test
//! binary, shared by its tests, stopped when the binary exits.
//!
//! The servers' certificate names `localhost` only: reached as
//! `localhost` it passes host-name checks, reached as `127.0.0.1` it fails
//! them. A second CA, unrelated, is the "wrong CA".

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::postgres::PrivatePostgres;
use super::*;

/// The certificates, in the servers' scratch folder.
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
    pub fn other_ca(&self) -> PathBuf {
        self.dir.join("other.crt")
    }
    pub fn client_cert(&self) -> PathBuf {
        self.dir.join("client.crt")
    }
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client.key")
    }
    pub fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    fn make(dir: &Path) -> Pki {
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("openssl runs");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let self_signed = |name: &str, cn: &str| {
            openssl(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.crt"),
                "-subj",
                &format!("/CN={cn}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ])
        };
        self_signed("ca", "unlatch test CA");
        self_signed("other", "some other CA");
        let signed = |name: &str, cn: &str, ext: &str| {
            openssl(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={cn}"),
            ]);
            std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
            openssl(&[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &format!("{name}.crt"),
                "-extfile",
                &format!("{name}.ext"),
            ]);
        };
        signed(
            "server",
            "localhost",
            "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n",
        );
        signed("client", "unlatch", "extendedKeyUsage=clientAuth\n");
        Pki {
            dir: dir.to_owned(),
        }
    }
}

/// The shared servers; `None` fields were skipped (see [`available`]).
pub struct TlsServers {
    pub pki: Pki,
    pub postgres: Option<PrivatePostgres>,
    pub postgres_port: u16,
    pub mariadb_port: u16,
    mariadb: Option<Child>,
    scratch: PathBuf,
}

static SERVERS: OnceLock<Option<TlsServers>> = OnceLock::new();
static STARTED: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// The user every TLS test connects as, on both servers; its password is
/// [`PASSWORD`], which no output may show.
pub const USER: &str = "unlatch";

impl TlsServers {
    /// The servers, started on first use; `None` when this machine cannot
    /// run them (skipped, or failed under UNLATCH_TEST_REQUIRE_SERVERS=1).
    pub fn get(test: &str) -> Option<&'static TlsServers> {
        SERVERS.get_or_init(|| TlsServers::start(test)).as_ref()
    }

    fn start(test: &str) -> Option<TlsServers> {
        let missing = lacks_root()
            .or_else(|| lacks("openssl", "the openssl CLI"))
            .or_else(|| {
                (!Path::new("/usr/sbin/mariadbd").exists())
                    .then(|| "mariadbd (mariadb-server)".into())
            });
        if !available(test, missing.as_deref()) {
            return None;
        }
        let postgres = PrivatePostgres::init(test)?;
        let scratch = std::env::temp_dir().join(unique("tls-servers"));
        std::fs::create_dir_all(&scratch).unwrap();
        let pki = Pki::make(&scratch);
        // SAFETY: registers a plain function, called once at exit.
        unsafe { nix::libc::atexit(stop_all) };
        let mut servers = TlsServers {
            pki,
            postgres_port: postgres.port,
            postgres: Some(postgres),
            mariadb_port: 0,
            mariadb: None,
            scratch,
        };
        servers.start_postgres();
        servers.start_mariadb();
        Some(servers)
    }

    fn start_postgres(&mut self) {
        let pg = self.postgres.as_ref().unwrap();
        let dir = pg.data.parent().unwrap().to_owned();
        for name in ["server.crt", "server.key", "ca.crt"] {
            std::fs::copy(self.pki.dir.join(name), dir.join(name)).unwrap();
            let path = dir.join(name);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            let owner = std::fs::metadata(&pg.data).unwrap();
            use std::os::unix::fs::MetadataExt;
            nix::unistd::chown(&path, Some(owner.uid().into()), Some(owner.gid().into())).unwrap();
        }
        // TLS only; the `certs` database also asks for a client certificate.
        std::fs::write(
            pg.data.join("pg_hba.conf"),
            "local all all trust\n\
             hostssl certs all 127.0.0.1/32 scram-sha-256 clientcert=verify-ca\n\
             hostssl certs all ::1/128 scram-sha-256 clientcert=verify-ca\n\
             hostssl all all 127.0.0.1/32 scram-sha-256\n\
             hostssl all all ::1/128 scram-sha-256\n",
        )
        .unwrap();
        let settings = format!(
            "-c ssl=on -c ssl_cert_file={0}/server.crt -c ssl_key_file={0}/server.key -c ssl_ca_file={0}/ca.crt",
            dir.display()
        );
        pg.pg_ctl_with(&settings, "start", &[]);
        STARTED.lock().unwrap().push(0);
        let psql = |sql: &str| {
            let out = Command::new("psql")
                .args(["-h", &dir.display().to_string(), "-p", &pg.port.to_string()])
                .args([
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-c",
                    sql,
                ])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{sql}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        psql(&format!(
            "CREATE USER {USER} SUPERUSER PASSWORD '{PASSWORD}'"
        ));
        psql("CREATE DATABASE test");
        psql("CREATE DATABASE certs");
    }

    fn start_mariadb(&mut self) {
        let dir = self.scratch.join("mariadb");
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("mariadb-install-db")
            .args(["--no-defaults", "--user=root", "--skip-test-db"])
            .arg(format!("--datadir={}", dir.join("data").display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let socket = dir.join("mysqld.sock");
        let pki = &self.pki.dir;
        let child = Command::new("/usr/sbin/mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
            .args(["--user=root", "--bind-address=127.0.0.1", "--skip-log-bin"])
            .arg(format!("--port={port}"))
            .arg("--require-secure-transport=ON")
            .arg(format!("--ssl-ca={}", pki.join("ca.crt").display()))
            .arg(format!("--ssl-cert={}", pki.join("server.crt").display()))
            .arg(format!("--ssl-key={}", pki.join("server.key").display()))
            .arg(format!("--log-error={}", dir.join("error.log").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        STARTED.lock().unwrap().push(child.id());
        self.mariadb = Some(child);
        self.mariadb_port = port;
        let started = Instant::now();
        let client = |sql: &str| {
            Command::new("mariadb")
                .args(["--no-defaults", "-u", "root"])
                .arg(format!("--socket={}", socket.display()))
                .args(["-e", sql])
                .output()
                .unwrap()
        };
        while !client("SELECT 1").status.success() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "MariaDB did not start: {}",
                std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let out = client(&format!(
            "CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'; GRANT ALL ON *.* TO '{USER}'@'%'; \
             CREATE USER 'certified'@'%' IDENTIFIED BY '{PASSWORD}' REQUIRE X509; \
             GRANT ALL ON *.* TO 'certified'@'%'; CREATE DATABASE test;"
        ));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs `sql` as the server's superuser over its local socket (no TLS,
    /// no password: set-up and checks only); the last statement's rows,
    /// one per line, columns tab-separated.
    pub fn postgres_sql(&self, db: &str, sql: &[&str]) -> String {
        let pg = self.postgres.as_ref().unwrap();
        let mut cmd = Command::new("psql");
        cmd.arg("-h")
            .arg(pg.data.parent().unwrap())
            .args(["-p", &pg.port.to_string(), "-U", "postgres", "-d", db])
            .args(["-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1"]);
        for statement in sql {
            cmd.args(["-c", statement]);
        }
        admin_output(cmd)
    }

    /// [`postgres_sql`](Self::postgres_sql) for the MariaDB server, as root.
    pub fn mariadb_sql(&self, sql: &[&str]) -> String {
        let socket = self.scratch.join("mariadb").join("mysqld.sock");
        let mut cmd = Command::new("mariadb");
        cmd.args(["--no-defaults", "-u", "root", "-N", "-B"])
            .arg(format!("--socket={}", socket.display()))
            .args(["-e", &sql.join(";\n")]);
        admin_output(cmd)
    }

    /// `postgres://unlatch:…@host:port/db?query`.
    pub fn postgres_url(&self, host: &str, db: &str, query: &str) -> String {
        url_for("postgres", host, self.postgres_port, USER, db, query)
    }

    /// `mysql://unlatch:…@host:port/test?query`.
    pub fn mysql_url(&self, host: &str, user: &str, query: &str) -> String {
        url_for("mysql", host, self.mariadb_port, user, "test", query)
    }
}

fn url_for(scheme: &str, host: &str, port: u16, user: &str, db: &str, query: &str) -> String {
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    format!("{scheme}://{user}:{PASSWORD}@{host}:{port}/{db}{query}")
}

/// Query text for a parameter's value (a path or a PEM).
pub fn enc(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

extern "C" fn stop_all() {
    let Some(Some(servers)) = SERVERS.get() else {
        return;
    };
    if let Some(pg) = &servers.postgres {
        pg.pg_ctl("stop", &["-m", "immediate"]);
        // Its scratch folder goes with it (a static is never dropped).
        let _ = std::fs::remove_dir_all(pg.data.parent().unwrap());
    }
    if let Some(child) = &servers.mariadb {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = std::fs::remove_dir_all(&servers.scratch);
}

fn admin_output(mut cmd: Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
