//! Who may do what, decided from the peer's kernel-checked credentials (SO_PEERCRED and
//! SO_PEERGROUPS) against the config. Pure except for resolving names to ids.
use super::config::{Config, Grant, Principals};

/// The process at the other end of the socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl Peer {
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }
}

/// The cgroup v2 path of a process, from the text of `/proc/<pid>/cgroup` (its `0::` line).
pub fn cgroup_path(proc_cgroup: &str) -> Option<&str> {
    proc_cgroup
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(str::trim)
}

/// Whether a process whose cgroup is `path` (as `/proc/<pid>/cgroup` gives it) is inside an
/// envelope: at or under one of `roots` (relative to the cgroup2 mount, such as `enforcer`).
/// Such a peer gets nothing from the control socket, whatever its uid: a task running as root
/// would otherwise be an admin.
pub fn inside_envelope(path: &str, roots: &[&str]) -> bool {
    let path = path.trim_start_matches('/');
    roots.iter().any(|root| {
        let root = root.trim_matches('/');
        path == root
            || path
                .strip_prefix(root)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// Names and numbers to ids (the system's user and group databases).
pub trait Ids {
    fn uid(&self, name: &str) -> Option<u32>;
    fn gid(&self, name: &str) -> Option<u32>;
}

fn matches(ids: &impl Ids, peer: &Peer, users: &[String], groups: &[String]) -> bool {
    let id_of =
        |s: &str, lookup: &dyn Fn(&str) -> Option<u32>| s.parse().ok().or_else(|| lookup(s));
    users
        .iter()
        .any(|u| id_of(u, &|n| ids.uid(n)) == Some(peer.uid))
        || groups.iter().any(|g| {
            id_of(g, &|n| ids.gid(n))
                .is_some_and(|gid| gid == peer.gid || peer.groups.contains(&gid))
        })
}

/// Root and the configured admins: every task, kill, reload, status.
pub fn is_admin(config: &Config, ids: &impl Ids, peer: &Peer) -> bool {
    let Principals { users, groups } = &config.admins;
    peer.is_root() || matches(ids, peer, users, groups)
}

/// Whether `peer` may start a task under `policy`.
pub fn may_start(config: &Config, ids: &impl Ids, peer: &Peer, policy: &str) -> bool {
    peer.is_root()
        || config.grants.iter().any(
            |Grant {
                 users,
                 groups,
                 policies,
             }| {
                matches(ids, peer, users, groups)
                    && policies.iter().any(|p| p == "*" || p == policy)
            },
        )
}

/// The system's databases (getpwnam_r / getgrnam_r).
pub struct SystemIds;

impl Ids for SystemIds {
    fn uid(&self, name: &str) -> Option<u32> {
        crate::kernel::confine::lookup_user(name)
            .ok()
            .map(|u| u.uid)
    }

    fn gid(&self, name: &str) -> Option<u32> {
        let c = std::ffi::CString::new(name).ok()?;
        let mut buf = vec![0u8; 16 * 1024];
        // SAFETY: zeroed group is a valid out-parameter; the buffer outlives the call.
        unsafe {
            let mut grp: libc::group = std::mem::zeroed();
            let mut result = std::ptr::null_mut();
            let rc = libc::getgrnam_r(
                c.as_ptr(),
                &mut grp,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            );
            (rc == 0 && !result.is_null()).then_some(grp.gr_gid)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    struct Fixed;
    impl Ids for Fixed {
        fn uid(&self, name: &str) -> Option<u32> {
            (name == "alice").then_some(1000)
        }
        fn gid(&self, name: &str) -> Option<u32> {
            (name == "agents").then_some(2000)
        }
    }

    fn peer(uid: u32, gid: u32, groups: &[u32]) -> Peer {
        Peer {
            pid: 1,
            uid,
            gid,
            groups: groups.to_vec(),
        }
    }

    #[test]
    fn grants_name_users_groups_and_policies() {
        let c = Config::parse(
            Path::new("c.toml"),
            "[[grant]]\nusers = [\"alice\"]\npolicies = [\"coding-agent\"]\n\
             [[grant]]\ngroups = [\"agents\", \"3000\"]\npolicies = [\"*\"]\n\
             [admin]\nusers = [\"1500\"]\n",
        )
        .unwrap();
        let alice = peer(1000, 1000, &[]);
        assert!(may_start(&c, &Fixed, &alice, "coding-agent"));
        assert!(!may_start(&c, &Fixed, &alice, "data-analysis"));
        assert!(!is_admin(&c, &Fixed, &alice));
        // Supplementary and primary groups both count; numbers work as names.
        assert!(may_start(
            &c,
            &Fixed,
            &peer(1001, 1001, &[2000]),
            "anything"
        ));
        assert!(may_start(&c, &Fixed, &peer(1002, 3000, &[]), "anything"));
        assert!(!may_start(
            &c,
            &Fixed,
            &peer(1003, 1003, &[4000]),
            "coding-agent"
        ));
        assert!(is_admin(&c, &Fixed, &peer(1500, 1500, &[])));
        assert!(is_admin(&c, &Fixed, &peer(0, 0, &[])));
        assert!(may_start(&c, &Fixed, &peer(0, 0, &[]), "anything"));
        // No grants: only root.
        let empty = Config::parse(Path::new("c.toml"), "").unwrap();
        assert!(!may_start(&empty, &Fixed, &alice, "coding-agent"));
    }
}

#[cfg(test)]
mod envelope_peer_tests {
    use super::*;

    #[test]
    fn the_unified_line_is_the_path() {
        let text = "12:pids:/x\n0::/enforcer/daemon/t-3\n";
        assert_eq!(cgroup_path(text), Some("/enforcer/daemon/t-3"));
        assert_eq!(cgroup_path("1:name=systemd:/a\n"), None);
    }

    #[test]
    fn peers_under_the_enforcer_roots_are_inside() {
        let roots = ["enforcer", "enforcer/daemon"];
        for p in ["/enforcer", "/enforcer/t-1", "/enforcer/daemon/t-2/sub"] {
            assert!(inside_envelope(p, &roots), "{p}");
        }
        for p in [
            "/",
            "/user.slice/user-0.slice",
            "/enforcerx/t",
            "/system.slice/enforcer.service",
        ] {
            assert!(!inside_envelope(p, &roots), "{p}");
        }
        assert!(inside_envelope("/agents/t-1", &["agents"]));
    }
}
