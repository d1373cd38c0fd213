//! Run-as: the identity a command is started with (`UNLATCH_RUN_AS`,
//! `UNLATCH_MIGRATE_RUN_AS`), resolved once, up front.
//!
//! `user[:group]`, names or numbers, as Docker's `--user` reads it: the
//! user's primary group unless a group is given, its supplementary groups
//! from the group database, and `HOME` from its passwd entry. A number with
//! no passwd entry runs with group 0 and `HOME=/`, as Docker does. Names are
//! looked up here, before any fork, because the lookup is not safe in a
//! forked child; the child only calls `setgroups`, `setgid`, `setuid`.
//!
//! Not root (`docker run --user`, Kubernetes `runAsUser`), unlatch cannot
//! switch users. Asked for the user it already runs as, it runs commands as
//! it is, with the groups the runtime gave it (`--group-add`, `fsGroup`),
//! as Ghost's own entrypoint does; asked for another, it says so up front.
//!
//! May touch: nothing (reads the user and group databases).

use std::ffi::CString;

use nix::unistd::{Gid, Group, Uid, User};

use crate::exit::{Code, Failure};

/// A resolved identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub uid: Uid,
    pub gid: Gid,
    pub groups: Vec<Gid>,
    pub home: String,
    /// As written, for messages.
    pub spec: String,
    /// False when unlatch already runs as this user without root: the
    /// commands keep its identity and groups, nothing is switched.
    pub switch: bool,
}

impl RunAs {
    /// Resolves `spec` (from `variable`) against the user and group databases.
    pub fn resolve(variable: &str, spec: &str) -> Result<RunAs, Failure> {
        let bad = |why: String| {
            Failure::new(
                Code::Config,
                format!("{variable}={spec}: {why}; expected user[:group], names or numbers"),
            )
        };
        let (user_part, group_part) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        if user_part.is_empty() || group_part == Some("") {
            return Err(bad("empty user or group".into()));
        }
        let entry = match user_part.parse::<u32>() {
            Ok(n) => User::from_uid(Uid::from_raw(n)).map_err(|e| bad(e.to_string()))?,
            Err(_) => Some(
                User::from_name(user_part)
                    .map_err(|e| bad(e.to_string()))?
                    .ok_or_else(|| bad(format!("no user named {user_part}")))?,
            ),
        };
        let uid = match &entry {
            Some(user) => user.uid,
            None => Uid::from_raw(user_part.parse().expect("checked above")),
        };
        let gid = match group_part {
            Some(g) => match g.parse::<u32>() {
                Ok(n) => Gid::from_raw(n),
                Err(_) => {
                    Group::from_name(g)
                        .map_err(|e| bad(e.to_string()))?
                        .ok_or_else(|| bad(format!("no group named {g}")))?
                        .gid
                }
            },
            None => entry.as_ref().map_or(Gid::from_raw(0), |u| u.gid),
        };
        let groups = match &entry {
            Some(user) => {
                let name = CString::new(user.name.as_str()).map_err(|e| bad(e.to_string()))?;
                nix::unistd::getgrouplist(&name, gid)
                    .map_err(|e| bad(format!("reading its groups: {e}")))?
            }
            None => vec![gid],
        };
        let home = entry.map_or_else(|| "/".to_owned(), |u| u.dir.display().to_string());
        let me = nix::unistd::geteuid();
        if me.is_root() {
            return Ok(RunAs {
                uid,
                gid,
                groups,
                home,
                spec: spec.to_owned(),
                switch: true,
            });
        }
        if uid != me {
            return Err(bad(format!(
                "that is uid {uid}, but unlatch runs as uid {me}, not root, and cannot switch \
                 users; leave {variable} unset, or start the container as root or as that user"
            )));
        }
        Ok(RunAs {
            uid,
            gid: nix::unistd::getegid(),
            groups: nix::unistd::getgroups()
                .map_err(|e| bad(format!("reading its groups: {e}")))?,
            home,
            spec: spec.to_owned(),
            switch: false,
        })
    }

    /// In a forked child, before exec: drop to this identity. Groups first,
    /// then the gid, then the uid (after which the others cannot change).
    pub fn apply(&self) -> std::io::Result<()> {
        if !self.switch {
            return Ok(());
        }
        nix::unistd::setgroups(&self.groups)?;
        nix::unistd::setgid(self.gid)?;
        nix::unistd::setuid(self.uid)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_resolves_to_its_ids_and_home() {
        let root = RunAs::resolve("X", "root").unwrap();
        assert_eq!(
            (root.uid.as_raw(), root.gid.as_raw(), root.home.as_str()),
            (0, 0, "/root")
        );
    }

    #[test]
    fn a_number_with_an_entry_is_that_user() {
        let nobody = RunAs::resolve("X", "nobody").unwrap();
        let mut by_number = RunAs::resolve("X", &nobody.uid.to_string()).unwrap();
        by_number.spec = nobody.spec.clone();
        assert_eq!(nobody, by_number);
    }

    #[test]
    fn a_group_given_is_the_primary_one_and_among_the_groups() {
        let with_group = RunAs::resolve("X", "nobody:0").unwrap();
        assert_eq!(with_group.gid.as_raw(), 0);
        assert!(with_group.groups.contains(&Gid::from_raw(0)));
    }

    #[test]
    fn a_number_without_an_entry_is_taken_as_docker_does() {
        let r = RunAs::resolve("X", "4242").unwrap();
        assert_eq!(
            (r.uid.as_raw(), r.gid.as_raw(), r.home.as_str()),
            (4242, 0, "/")
        );
        assert_eq!(r.groups, [Gid::from_raw(0)]);
        let r = RunAs::resolve("X", "4242:4343").unwrap();
        assert_eq!(r.gid.as_raw(), 4343);
    }

    #[test]
    fn unknown_names_are_configuration_errors() {
        let e = RunAs::resolve("UNLATCH_RUN_AS", "no-such-user-here").unwrap_err();
        assert_eq!(e.code, Code::Config);
        let start = "UNLATCH_RUN_AS=no-such-user-here: no user named";
        assert!(e.message.starts_with(start), "{}", e.message);
        let e = RunAs::resolve("UNLATCH_RUN_AS", "root:no-such-group").unwrap_err();
        let part = "no group named no-such-group";
        assert!(e.message.contains(part), "{}", e.message);
        assert!(RunAs::resolve("UNLATCH_RUN_AS", "root:").is_err());
        assert!(RunAs::resolve("UNLATCH_RUN_AS", ":0").is_err());
    }
}
