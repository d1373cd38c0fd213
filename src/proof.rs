//! Proof: before waiting on a lock younger than `UNLATCH_LOCK_TTL`, look
//! for a proof that nobody who could hold it is alive. With one, the heal
//! frees the lock at once, under the same policy as a stale one; anything
//! short of a proof leaves today's rule (live until the TTL).
//!
//! Only three proofs count, each named in the heal's log line:
//!
//! - `sqlite-lease`: no process on this host has the database file (or its
//!   `-wal`, `-shm`, `-journal`) open. The kernel grants a write lease
//!   (`fcntl(F_SETLEASE, F_WRLCK)`) only when no other open file
//!   description of the file exists, whatever process, container or PID
//!   namespace holds it. Every SQLite connection keeps the main file open
//!   for its whole life, so that file is the one that tells; the companions
//!   are looked at too, to be sure of a holder that kept only those open.
//!   A `-journal` that nobody has open is a crashed writer's hot journal,
//!   not a holder: SQLite rolls it back on the next open. unlatch's own
//!   connection counts as a holder, so it is closed for the look, taken
//!   after the lock was observed, and opened again after. The heal's
//!   compare-and-swap stays sound: a process that opens the file after the
//!   look cannot take a lock that is still held, so the lock observed is
//!   still the dead holder's, or the swap finds it changed and writes
//!   nothing. Only on filesystems known to be local ([`local_filesystem`]):
//!   a lease sees nothing of a process on another host.
//! - `pg-sessions`: no client session other than unlatch's own is connected
//!   to the database (`pg_stat_activity`), at every look over a settle
//!   window (`UNLATCH_PROOF_SETTLE`), so that a holder between two
//!   connections of its pool is not taken for gone.
//! - `mysql-sessions`: the same from MySQL's process list, counting sessions
//!   with no database too (one may `USE` ours later); only when unlatch's
//!   user has `PROCESS`, without which it sees its own sessions alone.
//!
//! No session and no open file prove the holder gone only if a live holder
//! must still be connected: a migrator whose connection pool closes idle
//! connections (knex's `pool: {min: 0}`) has neither while it sleeps
//! between two statements. It must be connected only while it used the
//! database less than its pool's idle timeout ago, and it used it when it
//! took the lock, or after. So a proof also needs recency ([`recent`]): the
//! lock's own timestamp, or, for a lock with none, the time a start saw it
//! free ([`crate::state::saw_free`]), less than `UNLATCH_POOL_IDLE_TIMEOUT`
//! ago, at the set idle timeout of any pool that may hold the lock or
//! below it. A migration killed later than that waits for the TTL.
//!
//! May touch: the SQLite file, to take a lease and give it up at once
//! (unlatch's own connection to it is closed and opened again); nothing
//! else (it reads the session lists).

use std::fmt::Write as _;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc;
use sqlx::Row;

use crate::clock::human;
use crate::db::{Db, Kind, Role, Target};
use crate::guard;
use crate::process::Stop;
use crate::wait;

/// What the proofs read from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `UNLATCH_PROOFS`: look for proofs at all.
    pub proofs: bool,
    /// `UNLATCH_PROOF_SETTLE`: how long the session list must stay empty
    /// of other clients (PostgreSQL, MySQL).
    pub settle: Duration,
    /// `UNLATCH_POOL_IDLE_TIMEOUT`: how long a live holder's pool may keep
    /// an idle connection at the least ([`recent`]).
    pub pool_idle: Duration,
}

/// Evidence that the holder used the database lately: it did when it took
/// the lock, and a lock is taken after any moment it was seen free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recency {
    pub since: Since,
    /// How long ago, as it was at `measured`, or more.
    pub age: Duration,
    /// When `age` was measured (this host's monotonic clock): the age
    /// grows from there.
    pub measured: Instant,
}

/// What a [`Recency`] counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// The lock's own timestamp, as the heal ages it.
    Taken,
    /// A start of unlatch saw the lock free, or freed it (`unlatch_state`
    /// row `free:<tool>`, by the database's clock): it was taken after.
    SeenFree,
    /// No time at all: the tool's live holder stays connected for as long
    /// as its lock stands ([`crate::tools::Tool::holder_stays_connected`]).
    Connected,
}

impl Recency {
    /// For a tool whose live holder stays connected ([`Since::Connected`]).
    pub fn connected() -> Recency {
        Recency {
            since: Since::Connected,
            age: Duration::ZERO,
            measured: Instant::now(),
        }
    }
}

/// Whether a live holder must still be connected, so that no session and
/// no open file would prove it gone: the evidence of its last use
/// ([`Recency`]), less than `idle` (`UNLATCH_POOL_IDLE_TIMEOUT`) ago now,
/// or a tool whose holder never lets go of its session ([`Since::Connected`]).
/// `Ok`: the evidence, for the log; `Err`: why not, for [`Finding::NoProof`]
/// (the same words at every poll: the age grows and is not in them).
pub(crate) fn recent(evidence: Option<&Recency>, idle: Duration) -> Result<String, String> {
    let setting = format!("UNLATCH_POOL_IDLE_TIMEOUT={}", window(idle));
    let closed = "a live holder's pool may have closed its connections";
    let Some(evidence) = evidence else {
        return Err(format!(
            "the lock records no time, and no start of unlatch saw it free, to show that its holder used \
             the database less than {setting} ago: {closed}"
        ));
    };
    let age = evidence.age + evidence.measured.elapsed();
    let what = match evidence.since {
        Since::Taken => "taken",
        Since::SeenFree => "seen free by unlatch",
        Since::Connected => {
            return Ok(
                "the tool keeps its connection for as long as its lock stands, so a live \
                 holder would still be connected"
                    .to_owned(),
            )
        }
    };
    if age >= idle {
        return Err(format!("it was {what} more than {setting} ago: {closed}"));
    }
    Ok(format!(
        "{what} {:.1}s ago, under {setting}, so a live holder would still be connected",
        age.as_secs_f64()
    ))
}

/// What a look found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Nobody who could hold the lock is alive: the proof's name, and
    /// what it saw.
    Gone {
        proof: &'static str,
        evidence: String,
    },
    /// Why there is no proof (said once, when it first appears or changes).
    NoProof(String),
}

impl Finding {
    /// Whether the reason may pass by itself soon (a session or an open
    /// file seen now), rather than hold for as long as the setting or the
    /// place does (proofs off, a network filesystem, a missing privilege).
    pub fn may_pass(&self) -> bool {
        matches!(self, Finding::NoProof(why) if may_pass(why))
    }
}

/// Whether a reason for no proof may pass by itself soon ([`Finding::may_pass`]).
pub fn may_pass(why: &str) -> bool {
    why.starts_with(BUSY)
}

/// The reasons there was no proof, each said once: when it first appears,
/// and again only after another was said (a poll a second would otherwise
/// repeat it up to `UNLATCH_LOCK_WAIT`).
#[derive(Debug, Default)]
pub struct Reasons(Option<String>);

impl Reasons {
    /// Whether `why` is to be said now; it is then the last one said.
    pub fn fresh(&mut self, why: &str) -> bool {
        if self.0.as_deref() == Some(why) {
            return false;
        }
        self.0 = Some(why.to_owned());
        true
    }
}

/// How a reason that may pass begins ([`Finding::may_pass`]).
const BUSY: &str = "in use: ";

/// How often the session list is read during the settle window.
const SAMPLE: Duration = Duration::from_millis(10);

/// Looks for a proof that the holder of a lock, which used the database as
/// `recency` shows, is gone: [`recent`] before the look, to spare it when
/// it could prove nothing, and after it, when the age has grown by the
/// look's time; the recency is added to the evidence.
pub async fn look_for(
    db: &mut Db,
    target: &Target,
    settings: &Settings,
    recency: Option<&Recency>,
    stop: &mut Stop,
) -> anyhow::Result<Finding> {
    if !settings.proofs {
        return look(db, target, settings, stop).await;
    }
    if let Err(why) = recent(recency, settings.pool_idle) {
        return Ok(Finding::NoProof(why));
    }
    Ok(match look(db, target, settings, stop).await? {
        Finding::Gone { proof, evidence } => match recent(recency, settings.pool_idle) {
            Ok(lately) => Finding::Gone {
                proof,
                evidence: format!("{evidence}; {lately}"),
            },
            Err(why) => Finding::NoProof(why),
        },
        none => none,
    })
}

/// Looks for no session and no open file: no proof by itself that the
/// holder is gone, without recency ([`look_for`]); `db` is unlatch's
/// work connection, which a SQLite look closes and opens again.
pub async fn look(
    db: &mut Db,
    target: &Target,
    settings: &Settings,
    stop: &mut Stop,
) -> anyhow::Result<Finding> {
    if !settings.proofs {
        return Ok(Finding::NoProof(
            "UNLATCH_PROOFS=0 turns proofs off".to_owned(),
        ));
    }
    match target.kind {
        Kind::Sqlite => sqlite(db, target).await,
        Kind::Postgres => sessions(db, target, settings, stop, Postgres).await,
        Kind::MySql => match mysql_lacks_process(db).await? {
            Some(why) => Ok(Finding::NoProof(why)),
            None => sessions(db, target, settings, stop, MySql).await,
        },
    }
}

// SQLite: a lease on the file.

/// The files a SQLite database keeps beside its own, as SQLite names them.
const COMPANIONS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// The lease look, with unlatch's own connection closed for it: a
/// placeholder (a database in memory) stands in meanwhile.
async fn sqlite(db: &mut Db, target: &Target) -> anyhow::Result<Finding> {
    let Some(file) = &target.sqlite_file else {
        return Ok(Finding::NoProof(
            "an in-memory database has no file to look at".to_owned(),
        ));
    };
    // Where no lease can prove anything, the connection is left alone.
    if let Err(why) = on_local_filesystem(file) {
        return Ok(Finding::NoProof(why));
    }
    let placeholder = Target::parse("sqlite::memory:", "the proof's placeholder")?;
    let stand_in = Db::new(placeholder.connect_once(Role::Work).await?, Kind::Sqlite);
    std::mem::replace(db, stand_in).close().await;
    // A few system calls, taking microseconds: no need to leave the runtime.
    let finding = lease_look(file);
    let reopened = target.connect_once(Role::Work).await?;
    std::mem::replace(db, Db::new(reopened, Kind::Sqlite))
        .close()
        .await;
    Ok(finding)
}

/// The lease look on `file` and the companions that exist, unlatch's own
/// connection closed.
pub fn lease_look(file: &Path) -> Finding {
    let shown = file.display();
    if let Err(why) = on_local_filesystem(file) {
        return Finding::NoProof(why);
    }
    let mut looked = Vec::new();
    let mut hot_journal = false;
    for companion in std::iter::once("").chain(COMPANIONS) {
        let path = with_suffix(file, companion);
        match lease(&path) {
            Lease::Granted => {}
            Lease::Absent if !companion.is_empty() => continue,
            Lease::Absent => return Finding::NoProof(format!("{shown} is gone")),
            Lease::Refused(why) => return Finding::NoProof(why),
        }
        hot_journal |= companion == "-journal";
        looked.push(path.display().to_string());
    }
    let mut evidence = format!(
        "no process on this host has {} open (a write lease granted)",
        or_list(&looked)
    );
    if hot_journal {
        evidence.push_str("; the -journal is a crashed writer's, which SQLite rolls back");
    }
    Finding::Gone {
        proof: "sqlite-lease",
        evidence,
    }
}

/// Whether `file` is on a filesystem known to be local; if not, why.
fn on_local_filesystem(file: &Path) -> Result<(), String> {
    let shown = file.display();
    let fs = nix::sys::statfs::statfs(file)
        .map_err(|e| format!("cannot tell which filesystem {shown} is on: {e}"))?;
    local_filesystem(fs.filesystem_type().0 as u64)
        .map(drop)
        .map_err(|why| format!("{shown} is on {why}"))
}

/// `file` with `suffix` added to its name (`ghost.db` and `-wal`).
fn with_suffix(file: &Path, suffix: &str) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// `a`, `a or b`, `a, b or c`.
fn or_list(items: &[String]) -> String {
    match items.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// What one lease try said.
#[derive(Debug, PartialEq, Eq)]
enum Lease {
    /// Granted, and given up at once: nobody else had the file open.
    Granted,
    /// No such file.
    Absent,
    /// Why not, as a reason for [`Finding::NoProof`].
    Refused(String),
}

/// Takes a write lease on `path` and gives it up at once.
fn lease(path: &Path) -> Lease {
    let shown = path.display();
    // O_NONBLOCK: a file another process holds a lease on is not waited
    // for (the kernel would hold the open until that lease is broken).
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Lease::Absent,
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => {
            return Lease::Refused(format!("{BUSY}another process holds a lease on {shown}"))
        }
        Err(e) => return Lease::Refused(format!("cannot open {shown} to look: {e}")),
    };
    quiet_lease_breaks();
    match set_lease(&file, libc::F_WRLCK) {
        Ok(()) => {
            // Given up at once: an open by anyone else waits for it.
            if let Err(e) = set_lease(&file, libc::F_UNLCK) {
                log::debug!("giving up the lease on {shown}: {e} (closing the file does too)");
            }
            Lease::Granted
        }
        Err(Errno::EAGAIN) => Lease::Refused(format!("{BUSY}another process has {shown} open")),
        Err(errno @ (Errno::EACCES | Errno::EPERM)) => {
            Lease::Refused(not_allowed(&file, &shown.to_string(), errno))
        }
        Err(Errno::EINVAL) => Lease::Refused(format!(
            "the kernel refuses leases on {shown} (EINVAL: turned off in /proc/sys/fs/leases-enable, \
             or not supported there)"
        )),
        Err(errno) => Lease::Refused(format!("a lease on {shown} failed: {}", errno.desc())),
    }
}

fn set_lease(file: &File, kind: libc::c_int) -> nix::Result<()> {
    // nix 0.31 has no F_SETLEASE.
    // SAFETY: fcntl on a descriptor `file` owns, with an integer argument.
    let done = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLEASE, kind) };
    Errno::result(done).map(drop)
}

/// Why a lease was not allowed: it takes the file's owner, or CAP_LEASE.
fn not_allowed(file: &File, shown: &str, errno: Errno) -> String {
    let owner = file
        .metadata()
        .map(|m| format!("uid {}", m.uid()))
        .unwrap_or_else(|_| "another user".to_owned());
    format!(
        "unlatch (uid {}) may not take a lease on {shown} ({errno}): a lease takes the file's owner \
         ({owner}) or CAP_LEASE",
        nix::unistd::geteuid()
    )
}

/// A lease break sends SIGIO to the lease's holder, and SIGIO's default
/// action ends a process: a process opening the file in the microseconds
/// the lease is held must not end unlatch. A handler (not SIG_IGN) is put
/// in once: unlike an ignored signal, a caught one goes back to its default
/// in COMMAND after the exec.
fn quiet_lease_breaks() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGIO, seen) {
            log::debug!("cannot catch SIGIO ({e}); a lease break during a look would end unlatch");
        }
    });
}

/// The filesystems whose leases see every process that has a file open
/// (`statfs`'s `f_type`): local ones, where every opener is on this kernel.
const LOCAL: &[(u64, &str)] = &[
    (0xEF53, "ext2/ext3/ext4"),
    (0x5846_5342, "xfs"),
    (0x9123_683E, "btrfs"),
    (0x0102_1994, "tmpfs"),
    (0x8584_58F6, "ramfs"),
    (0x794C_7630, "overlayfs"),
    (0xF2F5_2010, "f2fs"),
    (0x2FC1_2FC1, "zfs"),
    (0xCA45_1A4E, "bcachefs"),
    (0x3153_464A, "jfs"),
    (0x5265_4973, "reiserfs"),
    (0x3434, "nilfs2"),
];

/// Filesystems a lease cannot prove anything on, named for the message: a
/// file on them may be open on another host (or, through FUSE, behind a
/// daemon the kernel cannot see past).
const REMOTE: &[(u64, &str)] = &[
    (0x6969, "NFS"),
    (0xFF53_4D42, "CIFS"),
    (0xFE53_4D42, "SMB2"),
    (0x517B, "SMB"),
    (
        0x6573_5546,
        "FUSE (virtiofs, Docker Desktop and sshfs shares among them)",
    ),
    (0x0102_1997, "9p"),
    (0x00C3_6400, "CephFS"),
    (0x5346_414F, "AFS"),
    (0x6B41_4653, "AFS"),
    (0x0116_1970, "GFS2, a cluster filesystem"),
    (0x7461_636F, "OCFS2, a cluster filesystem"),
    (0x0BD0_0BD0, "Lustre"),
    (0x786F_4256, "vboxsf"),
];

/// The name of a local filesystem, or why one is not (its name when known).
fn local_filesystem(fs_type: u64) -> Result<&'static str, String> {
    if let Some((_, name)) = LOCAL.iter().find(|(magic, _)| *magic == fs_type) {
        return Ok(name);
    }
    let why = "where a lease cannot see a process on another host";
    Err(match REMOTE.iter().find(|(magic, _)| *magic == fs_type) {
        Some((_, name)) => format!("{name}, {why}"),
        None => format!("a filesystem unlatch does not know as local (f_type {fs_type:#x}), {why}"),
    })
}

// PostgreSQL and MySQL: nobody else connected, over a settle window.

/// The server's session list, as each server shows it.
trait SessionList {
    /// The proof's name.
    const PROOF: &'static str;
    /// A statement of one row per other client session that could hold the
    /// lock: id, user, where from, what. Sessions of unlatch's guard
    /// ([`guard`]) are left out.
    fn statement(&self) -> String;
}

struct Postgres;

impl SessionList for Postgres {
    const PROOF: &'static str = "pg-sessions";

    fn statement(&self) -> String {
        let (high, low) = ((guard::PG_KEY >> 32) as u32, guard::PG_KEY as u32);
        // Another unlatch replica waiting for the guard this one holds is
        // not a holder: it has run nothing yet, and runs its migrate
        // command only once it has the guard (after this heal). Its
        // session is known by its ungranted request for the guard's key.
        format!(
            "SELECT CAST(a.pid AS TEXT), CAST(COALESCE(a.usename, '') AS TEXT), \
             CAST(COALESCE(host(a.client_addr), 'local socket') AS TEXT), \
             CAST(COALESCE(a.application_name, '') AS TEXT) \
             FROM pg_stat_activity a \
             WHERE a.backend_type = 'client backend' AND a.datname = current_database() \
             AND a.pid <> pg_backend_pid() \
             AND NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'advisory' \
             AND NOT l.granted AND l.classid = {high} AND l.objid = {low} AND l.objsubid = 1) \
             ORDER BY a.pid"
        )
    }
}

struct MySql;

impl SessionList for MySql {
    const PROOF: &'static str = "mysql-sessions";

    fn statement(&self) -> String {
        let prefix = guard::MYSQL_KEY_PREFIX;
        // Left out: this connection; every unlatch guard's own connection,
        // which opens no database and takes the guard and nothing else
        // (IS_USED_LOCK names the session holding each database's guard:
        // this unlatch's, and those of unlatch instances for other
        // databases on the server); replicas blocked in GET_LOCK on a guard,
        // which have run nothing yet (see Postgres); the server's own
        // threads. Counted: sessions on this database, and those on none,
        // which may USE it later.
        format!(
            "SELECT CAST(ID AS CHAR(20)), CAST(USER AS CHAR(255)), CAST(COALESCE(HOST, '') AS CHAR(255)), \
             CAST(CONCAT(COMMAND, IF(DB IS NULL, ', no database', '')) AS CHAR(255)) \
             FROM information_schema.processlist \
             WHERE ID <> CONNECTION_ID() \
             AND ID NOT IN (SELECT COALESCE(IS_USED_LOCK(LEFT(CONCAT('{prefix}', SCHEMA_NAME), 64)), 0) \
             FROM information_schema.SCHEMATA) \
             AND (DB = DATABASE() OR DB IS NULL) \
             AND COMMAND NOT IN ('Daemon', 'Binlog Dump', 'Binlog Dump GTID', 'Slave_IO', 'Slave_SQL', 'Slave_worker') \
             AND USER NOT IN ('system user', 'event_scheduler') \
             AND NOT (COALESCE(STATE, '') = 'User lock' AND LOCATE('GET_LOCK(''{prefix}', COALESCE(INFO, '')) > 0) \
             ORDER BY ID"
        )
    }
}

/// A session seen: id, user, where from, what.
type Session = (String, String, String, String);

/// Reads the session list every [`SAMPLE`] until it has been empty for
/// `UNLATCH_PROOF_SETTLE`; any session seen ends the look without a proof.
async fn sessions<L: SessionList>(
    db: &mut Db,
    target: &Target,
    settings: &Settings,
    stop: &mut Stop,
    list: L,
) -> anyhow::Result<Finding> {
    let sql = list.statement();
    let started = Instant::now();
    let mut looks = 0;
    loop {
        let rows = wait::or_stop(db.simple_rows(&sql), stop).await??;
        looks += 1;
        let seen: Vec<Session> = rows
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
            .collect::<Result<_, sqlx::Error>>()?;
        if !seen.is_empty() {
            return Ok(Finding::NoProof(others(&seen, &target.name)));
        }
        if started.elapsed() >= settings.settle {
            return Ok(Finding::Gone {
                proof: L::PROOF,
                evidence: settled(&target.name, settings.settle, looks),
            });
        }
        wait::or_stop(tokio::time::sleep(SAMPLE), stop).await?;
    }
}

/// The reason for no proof: the other sessions, by what does not change
/// from one look to the next (so that it is said again only when they do).
fn others(seen: &[Session], database: &str) -> String {
    let count = match seen.len() {
        1 => "1 other client session".to_owned(),
        n => format!("{n} other client sessions"),
    };
    let mut shown = String::new();
    for (i, (id, user, from, what)) in seen.iter().take(3).enumerate() {
        let sep = if i == 0 { "" } else { "; " };
        let what = if what.is_empty() {
            String::new()
        } else {
            format!(", {what}")
        };
        let _ = write!(shown, "{sep}session {id}, user {user}, from {from}{what}");
    }
    if seen.len() > 3 {
        let _ = write!(shown, "; and {} more", seen.len() - 3);
    }
    format!("{BUSY}{count} on database {database} ({shown})")
}

/// The evidence of an empty session list.
fn settled(database: &str, settle: Duration, looks: u32) -> String {
    format!(
        "no client session but unlatch's own on database {database} at any of {looks} looks over \
         UNLATCH_PROOF_SETTLE={}",
        window(settle)
    )
}

/// A settle window as it is set: in ms when not whole seconds
/// ([`human`] shows whole seconds only).
fn window(settle: Duration) -> String {
    match settle.subsec_millis() {
        0 => human(settle),
        _ => format!("{}ms", settle.as_millis()),
    }
}

/// Without `PROCESS`, MySQL shows a user its own sessions alone: why there
/// can be no proof then, and the grant that would make one possible.
async fn mysql_lacks_process(db: &mut Db) -> anyhow::Result<Option<String>> {
    // CURRENT_USER() is `user@host`; user_privileges' grantee `'user'@'host'`.
    let sql = "SELECT CAST(CURRENT_USER() AS CHAR(255)), \
         (SELECT COUNT(*) FROM information_schema.user_privileges WHERE PRIVILEGE_TYPE = 'PROCESS' \
         AND GRANTEE = CONCAT('''', LEFT(CURRENT_USER(), LENGTH(CURRENT_USER()) - LENGTH(SUBSTRING_INDEX(CURRENT_USER(), '@', -1)) - 1), \
         '''@''', SUBSTRING_INDEX(CURRENT_USER(), '@', -1), ''''))";
    let row = db.row(sql, &[]).await?;
    let row = row.ok_or_else(|| anyhow::anyhow!("no row from {sql}"))?;
    let (user, granted): (String, i64) = (row.try_get(0)?, row.try_get(1)?);
    Ok((granted == 0).then(|| lacks_process(&user)))
}

/// The reason for no proof when `user` (`name@host`) lacks PROCESS.
fn lacks_process(user: &str) -> String {
    let (name, host) = user.rsplit_once('@').unwrap_or((user, "%"));
    format!(
        "the user {user} lacks the PROCESS privilege, so it sees its own sessions alone; \
         GRANT PROCESS ON *.* TO '{name}'@'{host}' would make the proof possible"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(10);

    fn lately(since: Since, secs: f64) -> Recency {
        Recency {
            since,
            age: Duration::from_secs_f64(secs),
            measured: Instant::now(),
        }
    }

    #[test]
    fn a_lock_taken_lately_is_recent_one_taken_earlier_is_no_proof() {
        let young = recent(Some(&lately(Since::Taken, 3.0)), IDLE).unwrap();
        assert!(
            young.starts_with("taken 3.0s ago, under UNLATCH_POOL_IDLE_TIMEOUT=10s"),
            "{young}"
        );
        let old = recent(Some(&lately(Since::Taken, 10.0)), IDLE).unwrap_err();
        assert_eq!(
            old,
            "it was taken more than UNLATCH_POOL_IDLE_TIMEOUT=10s ago: a live holder's pool may have \
             closed its connections"
        );
        // The same words at every poll, whatever the age.
        assert_eq!(
            recent(Some(&lately(Since::Taken, 3600.0)), IDLE).unwrap_err(),
            old
        );
        assert!(!Finding::NoProof(old).may_pass());
    }

    #[test]
    fn a_lock_seen_free_lately_is_recent_and_no_evidence_is_no_proof() {
        let fresh = recent(Some(&lately(Since::SeenFree, 0.2)), IDLE).unwrap();
        assert!(
            fresh.starts_with("seen free by unlatch 0.2s ago"),
            "{fresh}"
        );
        let stale = recent(Some(&lately(Since::SeenFree, 12.0)), IDLE).unwrap_err();
        assert!(
            stale.starts_with(
                "it was seen free by unlatch more than UNLATCH_POOL_IDLE_TIMEOUT=10s ago"
            ),
            "{stale}"
        );
        let none = recent(None, Duration::from_millis(400)).unwrap_err();
        assert!(
            none.contains("less than UNLATCH_POOL_IDLE_TIMEOUT=400ms ago"),
            "{none}"
        );
    }

    #[test]
    fn a_holder_that_stays_connected_needs_no_recency() {
        let then = Recency {
            measured: Instant::now() - Duration::from_secs(3600),
            ..Recency::connected()
        };
        let why = recent(Some(&then), IDLE).unwrap();
        assert!(why.contains("keeps its connection"), "{why}");
    }

    #[test]
    fn the_age_grows_from_when_it_was_measured() {
        let then = Recency {
            since: Since::SeenFree,
            age: Duration::from_millis(300),
            measured: Instant::now() - Duration::from_millis(250),
        };
        assert!(recent(Some(&then), Duration::from_millis(600)).is_ok());
        assert!(recent(Some(&then), Duration::from_millis(500)).is_err());
    }

    #[test]
    fn local_filesystems_are_named_and_network_ones_refused_by_name() {
        assert_eq!(local_filesystem(0xEF53), Ok("ext2/ext3/ext4"));
        assert_eq!(local_filesystem(0x0102_1994), Ok("tmpfs"));
        assert_eq!(local_filesystem(0x794C_7630), Ok("overlayfs"));
        let nfs = local_filesystem(0x6969).unwrap_err();
        assert!(nfs.starts_with("NFS, "), "{nfs}");
        let fuse = local_filesystem(0x6573_5546).unwrap_err();
        assert!(fuse.contains("virtiofs"), "{fuse}");
        let unknown = local_filesystem(0x1234_5678).unwrap_err();
        assert!(unknown.contains("f_type 0x12345678"), "{unknown}");
        // No magic number is both.
        for (magic, name) in LOCAL {
            assert!(REMOTE.iter().all(|(m, _)| m != magic), "{name}");
        }
    }

    #[test]
    fn the_reason_lists_sessions_by_what_does_not_change() {
        let s = |id: &str| {
            (
                id.to_owned(),
                "ghost".to_owned(),
                "10.0.0.7".to_owned(),
                "Sleep".to_owned(),
            )
        };
        let one = others(&[s("12")], "blog");
        assert_eq!(
            one,
            "in use: 1 other client session on database blog (session 12, user ghost, from 10.0.0.7, Sleep)"
        );
        assert!(Finding::NoProof(one).may_pass());
        let five = others(&[s("1"), s("2"), s("3"), s("4"), s("5")], "blog");
        assert!(
            five.starts_with("in use: 5 other client sessions"),
            "{five}"
        );
        assert!(five.ends_with("; and 2 more)"), "{five}");
    }

    #[test]
    fn a_reason_is_said_when_it_appears_or_changes() {
        let mut said = Reasons::default();
        let busy = others(&[("7".into(), "u".into(), "h".into(), "Sleep".into())], "d");
        assert!(said.fresh(&busy));
        assert!(!said.fresh(&busy), "the same reason at the next poll");
        assert!(said.fresh("UNLATCH_PROOFS=0 turns proofs off"));
        assert!(said.fresh(&busy), "back to an earlier one: said again");
    }

    #[test]
    fn the_missing_grant_is_named_and_does_not_pass_by_itself() {
        let why = lacks_process("app@10.0.%");
        assert!(
            why.ends_with("GRANT PROCESS ON *.* TO 'app'@'10.0.%' would make the proof possible"),
            "{why}"
        );
        assert!(!Finding::NoProof(why).may_pass());
    }

    #[test]
    fn evidence_names_the_window_and_files() {
        assert_eq!(
            settled("test", Duration::from_millis(250), 24),
            "no client session but unlatch's own on database test at any of 24 looks over \
             UNLATCH_PROOF_SETTLE=250ms"
        );
        assert_eq!(window(Duration::from_secs(2)), "2s");
        assert_eq!(window(Duration::from_millis(1500)), "1500ms");
        assert_eq!(or_list(&["a".into(), "b".into(), "c".into()]), "a, b or c");
        assert_eq!(or_list(&["a".into()]), "a");
        assert_eq!(
            with_suffix(Path::new("/data/ghost.db"), "-wal"),
            PathBuf::from("/data/ghost.db-wal")
        );
    }

    #[test]
    fn a_lease_on_a_file_nobody_else_has_open_is_granted_then_refused_while_one_does() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("app.db");
        std::fs::write(&file, b"").unwrap();
        match lease_look(&file) {
            Finding::Gone { proof, evidence } => {
                assert_eq!(proof, "sqlite-lease");
                assert!(evidence.contains("app.db open"), "{evidence}");
            }
            // A filesystem unlatch does not count as local (the test runs
            // where TMPDIR points): then the reason names it.
            Finding::NoProof(why) => assert!(why.contains(" is on "), "{why}"),
        }
        let wal = with_suffix(&file, "-wal");
        std::fs::write(&wal, b"").unwrap();
        let _held = File::open(&wal).unwrap();
        if let Finding::NoProof(why) = lease_look(&file) {
            if !why.contains(" is on ") {
                assert_eq!(
                    why,
                    format!("in use: another process has {} open", wal.display())
                );
            }
        } else {
            panic!("granted while the -wal was open");
        }
    }
}
