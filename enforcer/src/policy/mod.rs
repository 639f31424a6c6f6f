//! Task policies: TOML in, validated rules out, compiled into exact kernel map entries.
//!
//! parse (file:line:column errors) -> [`Policy`] -> [`compile`] (map entries, Landlock grants)
//! and [`decide`] (the same decision in userspace, for attributing events to rules). All pure.
pub mod compile;
pub mod decide;
pub mod explain;
pub mod guard;
mod parse;
pub mod source;
pub mod values;

use std::{path::PathBuf, time::Duration};

pub use parse::{LoadError, Vars, load, parse};
pub use source::{Location, PolicyError, PolicyErrors};
pub use values::{Endpoint, Host, PathPattern};

/// What the envelope does with an operation the policy does not allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Deny it.
    Enforce,
    /// Allow it and report it with decision `audit`.
    Audit,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enforce => "enforce",
            Self::Audit => "audit",
        }
    }
}

/// The budget of a task.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub ttl: Option<Duration>,
    pub max_execs: Option<u64>,
    pub max_connects: Option<u64>,
    pub max_denials: Option<u64>,
}

impl Limits {
    /// The kernel's copy of these limits for a task started at `now_ns` (`CLOCK_BOOTTIME`),
    /// with `ttl` (the request's, else the policy's) turned into a deadline. Zero is "none".
    pub fn kernel(&self, ttl: Option<Duration>, now_ns: u64) -> enforcer_common::TaskLimits {
        let ttl = ttl.or(self.ttl);
        enforcer_common::TaskLimits {
            deadline_ns: ttl.map_or(0, |t| {
                now_ns.saturating_add(u64::try_from(t.as_nanos()).unwrap_or(u64::MAX))
            }),
            max_execs: self.max_execs.unwrap_or(0),
            max_connects: self.max_connects.unwrap_or(0),
            max_denials: self.max_denials.unwrap_or(0),
            ..Default::default()
        }
    }
}

/// Which list of the policy a rule comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    ExecAllow,
    /// Files that may be mapped executable (shared libraries, the ELF interpreter).
    ExecLibraries,
    FilesRead,
    FilesWrite,
    FilesDeny,
    /// Paths inside writable trees that stay read-only: what a person or a tool runs later,
    /// outside the envelope (`.git/hooks/`, `.git/config`, editor tasks, shell rc files).
    FilesProtect,
    NetworkConnect,
    /// Unix-domain socket paths that may be connected to.
    NetworkUnix,
    /// Local addresses and ports a task may bind and listen on (inbound).
    NetworkListen,
}

/// `exec.libraries` when a policy does not set it: where Debian and most distributions keep
/// shared libraries and the ELF interpreter.
pub const DEFAULT_LIBRARIES: &[&str] = &["/usr/lib/", "/usr/lib64/", "/lib/", "/lib64/"];

impl Section {
    pub fn key(self) -> &'static str {
        match self {
            Self::ExecAllow => "exec.allow",
            Self::ExecLibraries => "exec.libraries",
            Self::FilesRead => "files.read",
            Self::FilesWrite => "files.write",
            Self::FilesDeny => "files.deny",
            Self::FilesProtect => "files.protect",
            Self::NetworkConnect => "network.connect",
            Self::NetworkUnix => "network.unix",
            Self::NetworkListen => "network.listen",
        }
    }

    /// The access this section grants (deny grants none).
    pub fn access(self) -> u32 {
        use enforcer_common::access;
        match self {
            // What may be executed may also be read and mapped executable (by its loader), as
            // Landlock's execute right implies reading.
            Self::ExecAllow => access::EXEC | access::MAP_EXEC | access::READ,
            Self::ExecLibraries => access::MAP_EXEC,
            Self::FilesRead => access::READ,
            Self::FilesWrite => access::WRITE,
            Self::FilesDeny | Self::FilesProtect => 0,
            Self::NetworkConnect | Self::NetworkUnix => access::CONNECT,
            Self::NetworkListen => access::LISTEN,
        }
    }
}

/// What a rule names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Path(PathPattern),
    Endpoint(Endpoint),
}

/// One entry of one list in the policy. Its id is its index in [`Policy::rules`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub section: Section,
    /// Index within its list.
    pub index: usize,
    /// The entry as written, after `${var}` substitution.
    pub text: String,
    pub location: Location,
    pub target: Target,
}

impl Rule {
    /// `files.deny[0]`: how events and explanations name the rule.
    pub fn label(&self) -> String {
        format!("{}[{}]", self.section.key(), self.index)
    }

    pub fn path(&self) -> Option<&PathPattern> {
        match &self.target {
            Target::Path(p) => Some(p),
            Target::Endpoint(_) => None,
        }
    }
}

/// A validated policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub file: PathBuf,
    /// Hex SHA-256 of the file's bytes, so an auditor can match events to a file.
    pub sha256: String,
    pub name: String,
    pub version: u64,
    pub description: Option<String>,
    pub mode: Mode,
    /// io_uring is refused to the task (seccomp) unless this is set.
    pub allow_io_uring: bool,
    /// Unprivileged user namespaces are refused to the task (seccomp) unless this is set.
    pub allow_user_namespaces: bool,
    pub limits: Limits,
    pub rules: Vec<Rule>,
}

impl Policy {
    /// A policy with no rules: names events of processes that belong to no task.
    pub fn empty() -> Self {
        Self {
            file: PathBuf::new(),
            sha256: String::new(),
            name: String::new(),
            version: 0,
            description: None,
            mode: Mode::Enforce,
            allow_io_uring: false,
            allow_user_namespaces: false,
            limits: Limits::default(),
            rules: Vec::new(),
        }
    }

    /// Adds, for every path rule whose path resolves elsewhere (a symlink such as `/bin/sh`,
    /// or a directory under one such as `/lib/`), the same rule on the resolved path: the BPF
    /// LSM hooks see resolved paths, as Landlock resolves its rules when they are added. The
    /// copy keeps the rule's section, index and text, so events name the rule as written.
    pub fn add_resolved_paths(&mut self, resolve: impl Fn(&str) -> Option<String>) {
        let mut extra = Vec::new();
        for rule in &self.rules {
            let Target::Path(p) = &rule.target else {
                continue;
            };
            let bare = p.path.trim_end_matches('/');
            let Some(real) = resolve(if bare.is_empty() { "/" } else { bare }) else {
                continue;
            };
            let real = if p.dir && !real.ends_with('/') {
                format!("{real}/")
            } else {
                real
            };
            if real != p.path
                && !self.rules.iter().any(|r| {
                    r.path()
                        .is_some_and(|q| q.path == real && r.section == rule.section)
                })
            {
                let mut copy = rule.clone();
                copy.target = Target::Path(PathPattern {
                    path: real,
                    dir: p.dir,
                });
                extra.push(copy);
            }
        }
        self.rules.extend(extra);
    }

    pub fn rules_in(&self, section: Section) -> impl Iterator<Item = (u32, &Rule)> {
        self.rules
            .iter()
            .enumerate()
            .filter(move |(_, r)| r.section == section)
            .map(|(i, r)| (i as u32, r))
    }
}
