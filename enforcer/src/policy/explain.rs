//! For each rule: how it is enforced on this kernel, or why it cannot be. Pure: the kernel's
//! abilities come in as [`Support`].
use super::{Host, Mode, Policy, Section, Target, compile::deny_plans};
use crate::vocab::EnforcementMode;

/// What the running kernel offers, as probed at start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Support {
    /// BPF LSM programs load and attach (the `lsm` mode).
    pub bpf_lsm: bool,
    /// Landlock ABI version; 0 when Landlock is unavailable.
    pub landlock_abi: u32,
    /// Kernel structure offsets were resolved from BTF: identity checks work.
    pub identity_checks: bool,
    /// The cgroup2 mount has `nsdelegate`.
    pub cgroup_nsdelegate: bool,
}

impl Support {
    /// The enforcement mode for files and exec.
    pub fn mode(&self) -> EnforcementMode {
        EnforcementMode::of(self.bpf_lsm)
    }
}

/// How one rule is enforced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleExplanation {
    pub rule_id: u32,
    pub label: String,
    pub text: String,
    /// `lsm`, `landlock`, `cgroup`, `kill` (kill-on-violation), or `audit`.
    pub enforced_by: Vec<&'static str>,
    pub how: String,
    /// Set when the rule cannot be enforced as written on this kernel.
    pub problem: Option<String>,
}

/// The whole explanation of a policy on a kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    pub mode: EnforcementMode,
    pub rules: Vec<RuleExplanation>,
    pub limits: Vec<String>,
    pub notes: Vec<String>,
}

impl Explanation {
    /// Rules that cannot be enforced as written: `label text: reason`.
    pub fn problems(&self) -> Vec<String> {
        self.rules
            .iter()
            .filter_map(|r| {
                r.problem
                    .as_ref()
                    .map(|p| format!("{} \"{}\": {p}", r.label, r.text))
            })
            .collect()
    }
}

/// How `network.listen` is enforced in one mode (also said when the list is empty).
pub fn listen_how(lsm: bool) -> String {
    let listen = if lsm {
        "the socket_listen hook refuses a listen on any other local address and port, one the \
         kernel picks included (EPERM)"
    } else {
        "a listen on any other local address and port, one the kernel picks (no bind, or a \
         bind to port 0) included, kills the task: fallback mode has no hook that can refuse \
         it (inet_sock_set_state), and an accept that still returns in that task kills its \
         caller"
    };
    format!(
        "inbound (TCP and UDP, IPv4 and IPv6): the cgroup bind4/bind6 programs refuse a bind to \
         a port no network.listen rule allows (EPERM; a bind to port 0 passes, as clients do); \
         {listen}; unix-socket servers are not restricted by it"
    )
}

pub fn explain(policy: &Policy, support: &Support) -> Explanation {
    let audit = policy.mode == Mode::Audit;
    let plans = deny_plans(policy);
    let no_landlock = (support.landlock_abi == 0 && !support.bpf_lsm)
        .then(|| "Landlock is not available on this kernel and BPF LSM is not active".to_owned());
    let mut rules = Vec::new();
    for (id, rule) in policy.rules.iter().enumerate() {
        let id = id as u32;
        let (enforced_by, how, problem): (Vec<&'static str>, String, Option<String>) =
            match (rule.section, support.bpf_lsm) {
                (Section::NetworkConnect, _) => {
                    let mut how = "cgroup connect4/connect6/sendmsg4/sendmsg6 programs on the \
                                   task's cgroup: anything not allowed gets EPERM"
                        .to_owned();
                    if let Target::Endpoint(e) = &rule.target
                        && let Host::Name(name) = &e.host
                    {
                        how.push_str(&format!(
                            "; \"{name}\" is resolved when the envelope starts and the addresses \
                             pinned (later DNS changes are not followed)"
                        ));
                    }
                    (vec!["cgroup"], how, None)
                }
                (Section::NetworkListen, lsm) => (
                    if lsm {
                        vec!["cgroup", "lsm"]
                    } else {
                        vec!["cgroup", "kill"]
                    },
                    listen_how(lsm),
                    None,
                ),
                (Section::FilesDeny, true) => (
                    vec!["lsm"],
                    "the BPF LSM hooks refuse it in the kernel (EPERM), by its resolved path \
                     (symlinks, relative paths, directory fds, /proc/self/root) and by its \
                     identity (device, inode; hard links made elsewhere)"
                        .to_owned(),
                    None,
                ),
                (Section::ExecAllow | Section::FilesRead | Section::FilesWrite, true) => {
                    let what = match rule.section {
                        Section::ExecAllow => "execve (bprm_check_security)",
                        Section::FilesRead => "opens for reading (file_open)",
                        _ => {
                            "opens for writing (file_open) and changes of names and attributes \
                             (unlink, mkdir, rmdir, mknod/create, rename, link, symlink, \
                             truncate, chmod, chown: the path_* hooks)"
                        }
                    };
                    (
                        vec!["lsm"],
                        format!(
                            "BPF LSM hooks allow {what} beneath this path, checked on the \
                             resolved path in the kernel; anything else gets EPERM"
                        ),
                        None,
                    )
                }
                (Section::ExecLibraries, true) => (
                    vec!["lsm"],
                    "may be mapped executable (mmap_file/file_mprotect with PROT_EXEC: shared \
                     libraries, the ELF interpreter); mapping any other file executable gets \
                     EPERM, so `ld.so /other/binary` cannot run it"
                        .to_owned(),
                    None,
                ),
                (Section::ExecLibraries, false) => (
                    vec!["none"],
                    "fallback mode does not check executable mappings; running the ELF \
                     interpreter directly is caught by identity (kill)"
                        .to_owned(),
                    None,
                ),
                (Section::NetworkUnix, true) => (
                    vec!["lsm"],
                    "socket_connect hook: a connect to a unix socket path that is not listed \
                     gets EPERM (the path as given to connect); an abstract socket made \
                     by a process outside the task gets EPERM (unix_stream_connect, \
                     unix_may_send)"
                        .to_owned(),
                    None,
                ),
                (Section::NetworkUnix, false) => (
                    vec!["none"],
                    "fallback mode does not restrict unix-socket connects by path".to_owned(),
                    None,
                ),
                (Section::FilesProtect, true) => (
                    vec!["lsm"],
                    "read-only inside its writable tree: the BPF LSM hooks refuse writes, \
                     creates, removes, renames and links beneath this path (EPERM, with an \
                     event), by path and by identity (hard links made elsewhere)"
                        .to_owned(),
                    None,
                ),
                (Section::FilesProtect, false) => (
                    vec!["kill"],
                    "read-only inside its writable tree, which Landlock cannot carve out: its \
                     identity (device, inode, and every directory beneath) is checked when an \
                     open for writing returns, and a match kills the task before it writes a \
                     byte (an open with O_TRUNC has emptied the file by then); it must exist \
                     when the task starts, and removing and recreating it is not seen (lsm \
                     mode refuses all of these)"
                        .to_owned(),
                    (!support.identity_checks).then(|| {
                        "the kernel structure offsets needed for identity checks could not be \
                         resolved from BTF"
                            .to_owned()
                    }),
                ),
                (Section::FilesDeny, false) => {
                    let plan = plans.iter().find(|p| p.rule_id == id);
                    let inside = plan.map(|p| p.inside.clone()).unwrap_or_default();
                    if inside.is_empty() {
                        (
                            vec!["landlock", "kill"],
                            "no allow rule grants it, so Landlock refuses it (EACCES); its \
                             identity (device, inode) is also checked at every open, so a hard \
                             link to it inside an allowed tree kills the task"
                                .to_owned(),
                            no_landlock.clone(),
                        )
                    } else {
                        let within: Vec<String> = inside
                            .iter()
                            .map(|i| policy.rules[*i as usize].label())
                            .collect();
                        let problem = no_landlock.clone().or_else(|| {
                            (!support.identity_checks).then(|| {
                                "inside an allowed tree, and the kernel structure offsets needed \
                                 for identity checks could not be resolved from BTF"
                                    .to_owned()
                            })
                        });
                        (
                            vec!["kill"],
                            format!(
                                "inside {} which Landlock allows, and Landlock cannot carve out \
                                 an exception: the identity (device, inode) of every file the \
                                 task opens or executes is checked when the syscall returns, and \
                                 a match kills the task before it runs another instruction \
                                 (symlinks, hard links, renames, relative paths and directory fds \
                                 all reach the same identity)",
                                within.join(", ")
                            ),
                            problem,
                        )
                    }
                }
                (section, false) => {
                    let what = match section {
                        Section::ExecAllow => "execute (and read, which exec needs)",
                        Section::FilesRead => "read",
                        _ => "write, create, remove, rename within",
                    };
                    (
                        vec!["landlock"],
                        format!(
                            "Landlock grants {what} beneath this path; anything else is refused \
                             (EACCES), and the syscall tracepoints report each refusal"
                        ),
                        no_landlock.clone(),
                    )
                }
            };
        let (enforced_by, how) = if audit {
            (
                vec!["audit"],
                format!("audit mode: nothing is denied; would-be denials are reported ({how})"),
            )
        } else {
            (enforced_by, how)
        };
        rules.push(RuleExplanation {
            rule_id: id,
            label: rule.label(),
            text: rule.text.clone(),
            enforced_by,
            how,
            problem,
        });
    }

    let mut limits = Vec::new();
    let l = &policy.limits;
    if let Some(ttl) = l.ttl {
        limits.push(format!(
            "ttl {}s: in-kernel deadline (operations after it are refused) and cgroup.kill of \
             the whole task",
            ttl.as_secs_f64()
        ));
    }
    for (name, v) in [
        ("max_execs", l.max_execs),
        ("max_connects", l.max_connects),
        ("max_denials", l.max_denials),
    ] {
        if let Some(v) = v {
            limits.push(format!(
                "{name} {v}: counted in the kernel per task; on excess the task is killed \
                 (cgroup.kill)"
            ));
        }
    }

    let mut notes = Vec::new();
    if !support.bpf_lsm {
        notes.push(
            "no usable BPF LSM: files and exec use the fallback mode (Landlock applied by the \
             launcher, syscall tracepoints observe and report)"
                .to_owned(),
        );
        if policy.allow_io_uring {
            notes.push(
                "io_uring is allowed by the policy: Landlock refuses its opens outside the \
                 rules (EACCES), but the tracepoints do not see them, so they are not reported \
                 in fallback mode; lsm mode checks and reports them in file_open"
                    .to_owned(),
            );
        } else {
            notes.push(
                "io_uring is refused to the task (seccomp, EPERM): the syscall tracepoints \
                 cannot see its operations"
                    .to_owned(),
            );
        }
    }
    if support.bpf_lsm {
        notes.push(
            "lsm mode: the BPF LSM hooks decide every open, exec, executable mapping \
             (mmap and mprotect), change of a name or of attributes, and unix-socket connect in \
             the kernel from the task's maps (EPERM, with an event); no task process may \
             mount, pivot_root or chroot; abstract unix sockets of processes outside the task \
             are refused (unix_stream_connect, unix_may_send); Landlock only scopes signals \
             (ABI 6)"
                .to_owned(),
        );
    }
    notes.push(format!(
        "the task runs with no capabilities (bounding and ambient sets cleared) and \
         no_new_privs, so it cannot unload the programs; clone3 answers ENOSYS (its \
         CLONE_INTO_CGROUP would start a child outside the envelope; C libraries fall back \
         to clone, which cannot choose a cgroup), and no write rule may cover the cgroup, \
         bpf or enforcer trees, so no process of the task can move itself out of its cgroup; \
         the task has a cgroup namespace rooted at its cgroup{}; the enforcer (launcher or \
         daemon) runs with real and saved uid 4294967294, which no task may have, so no task \
         can signal, trace or read it on any kernel",
        if support.cgroup_nsdelegate {
            ", and the cgroup2 mount has nsdelegate, so the kernel refuses any move out of it"
        } else {
            " (the cgroup2 mount lacks nsdelegate, so the namespace hides the other cgroups but \
             is no boundary by itself)"
        }
    ));
    for (tree, place) in
        super::guard::run_later_unprotected(policy, |p| std::path::Path::new(p).exists())
    {
        notes.push(format!(
            "WARNING: the writable tree {tree} contains {place}, which a person or a tool runs \
             later outside the envelope; a task could plant code there: add it to files.protect"
        ));
    }
    notes.push(format!(
        "every task makes native syscalls only (32-bit and x32 calls answer ENOSYS); gets no \
         ICMP ping socket and no address family but unix, inet, inet6 and netlink; no kernel \
         keyring; no write of extended attributes (ACLs included){} (seccomp; each refusal is \
         an event); and a private System V IPC namespace (none of an outside process's \
         segments, queues or semaphores is reachable)",
        if policy.allow_user_namespaces {
            "; user namespaces are allowed by the policy (allow_user_namespaces)"
        } else {
            ", and no user namespace (policy.allow_user_namespaces)"
        }
    ));
    if policy.rules_in(Section::NetworkListen).next().is_none() {
        notes.push(format!(
            "network.listen is empty: the task may not bind a port or listen; {}",
            listen_how(support.bpf_lsm)
        ));
    }
    Explanation {
        mode: support.mode(),
        rules,
        limits,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::policy::{Vars, parse};

    fn policy(body: &str) -> Policy {
        let text = format!("[policy]\nname = \"t\"\nversion = 1\n{body}");
        parse(Path::new("t.toml"), &text, &Vars::new()).unwrap()
    }

    const FALLBACK: Support = Support {
        bpf_lsm: false,
        landlock_abi: 7,
        identity_checks: true,
        cgroup_nsdelegate: true,
    };

    #[test]
    fn fallback_names_the_mechanism_of_every_rule() {
        let p = policy(
            "[files]\nread = [\"/w/\"]\ndeny = [\"/w/.env\", \"/root/.ssh/\"]\n[network]\nconnect = [\"h.example:443\"]\n",
        );
        let e = explain(&p, &FALLBACK);
        assert_eq!(e.mode, EnforcementMode::Fallback);
        assert_eq!(e.rules[0].enforced_by, vec!["landlock"]);
        assert_eq!(e.rules[1].enforced_by, vec!["kill"]);
        assert!(e.rules[1].how.contains("files.read[0]"));
        assert_eq!(e.rules[2].enforced_by, vec!["landlock", "kill"]);
        assert_eq!(e.rules[3].enforced_by, vec!["cgroup"]);
        assert!(e.rules[3].how.contains("resolved when the envelope starts"));
        assert!(e.problems().is_empty());
    }

    #[test]
    fn missing_kernel_features_are_problems_not_silence() {
        let p = policy("[files]\nread = [\"/w/\"]\ndeny = [\"/w/.env\"]\n");
        let e = explain(
            &p,
            &Support {
                identity_checks: false,
                ..FALLBACK
            },
        );
        assert_eq!(e.problems().len(), 1);
        assert!(e.problems()[0].starts_with("files.deny[0] \"/w/.env\""));
        let e = explain(&p, &Support::default());
        assert_eq!(e.problems().len(), 2);
    }

    #[test]
    fn audit_mode_says_so() {
        let p = parse(
            Path::new("t.toml"),
            "[policy]\nname = \"t\"\nversion = 1\nmode = \"audit\"\n[files]\nread = [\"/w/\"]\n",
            &Vars::new(),
        )
        .unwrap();
        let e = explain(&p, &FALLBACK);
        assert_eq!(e.rules[0].enforced_by, vec!["audit"]);
    }
}
