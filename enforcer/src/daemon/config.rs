//! The daemon's configuration (`/etc/enforcer/enforcer.toml`). Every setting has a default, so
//! an empty file (or none at all) works; unknown keys are errors with file:line:column.
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{
    events::Format,
    kernel::probe::ModeRequest,
    policy::{Location, PolicyError},
};

pub const DEFAULT_PATH: &str = "/etc/enforcer/enforcer.toml";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The control socket.
    pub socket: PathBuf,
    /// Where task state is kept for a restarted daemon (tmpfs: it is per boot, like the pins).
    pub state_dir: PathBuf,
    /// The policy directory (`*.toml`), watched for changes.
    pub policies: PathBuf,
    /// The bpffs directory of the pinned maps and links.
    pub pin_dir: PathBuf,
    /// The daemon's cgroup subtree, relative to the cgroup2 mount.
    pub cgroup: String,
    /// Where events go: a file, `-` (stdout) or `stderr`.
    pub events: String,
    pub format: Format,
    pub mode: ModeRequest,
    /// Who may start tasks, and with which policies.
    pub grants: Vec<Grant>,
    /// Who may see every task, kill any task, reload, and read the status.
    pub admins: Principals,
}

/// Users and groups, by name or number.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Principals {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// Policy names, or `"*"` for all.
    pub policies: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    daemon: RawDaemon,
    #[serde(default)]
    grant: Vec<Grant>,
    #[serde(default)]
    admin: Principals,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    socket: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    policies: Option<PathBuf>,
    pin_dir: Option<PathBuf>,
    cgroup: Option<String>,
    events: Option<String>,
    format: Option<String>,
    mode: Option<String>,
}

impl Config {
    /// Reads `path`; a missing file is the defaults (said on stderr by the caller).
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                return Err(PolicyError {
                    file: path.to_owned(),
                    location: Location::default(),
                    message: e.to_string(),
                });
            }
        };
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, PolicyError> {
        let at = |offset: usize, message: String| PolicyError {
            file: path.to_owned(),
            location: Location::of_offset(text, offset),
            message,
        };
        let raw: Raw = toml::from_str(text).map_err(|e| {
            at(
                e.span().map_or(0, |s| s.start),
                e.message().trim().to_owned(),
            )
        })?;
        let d = raw.daemon;
        let state_dir = d.state_dir.unwrap_or_else(|| "/run/enforcer".into());
        let format = Format::parse(d.format.as_deref().unwrap_or("native"))
            .map_err(|m| at(text.find("format").unwrap_or(0), m))?;
        let mode = ModeRequest::parse(d.mode.as_deref().unwrap_or("auto"))
            .map_err(|m| at(text.find("mode").unwrap_or(0), m))?;
        let cgroup = d.cgroup.unwrap_or_else(|| "enforcer/daemon".into());
        if cgroup.is_empty()
            || cgroup.starts_with('/')
            || cgroup
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(at(
                text.find("cgroup").unwrap_or(0),
                format!(
                    "cgroup \"{cgroup}\": expected a relative path such as \"enforcer/daemon\""
                ),
            ));
        }
        for g in &raw.grant {
            if g.policies.is_empty() {
                return Err(at(
                    text.find("[[grant]]").unwrap_or(0),
                    "a grant needs at least one policy (or \"*\")".into(),
                ));
            }
        }
        Ok(Self {
            socket: d.socket.unwrap_or_else(|| state_dir.join("enforcer.sock")),
            state_dir,
            policies: d
                .policies
                .unwrap_or_else(|| "/etc/enforcer/policies".into()),
            pin_dir: d.pin_dir.unwrap_or_else(|| "/sys/fs/bpf/enforcer".into()),
            cgroup,
            events: d.events.unwrap_or_else(|| "stderr".into()),
            format,
            mode,
            grants: raw.grant,
            admins: raw.admin,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_config_is_all_defaults() {
        let c = Config::parse(Path::new("e.toml"), "").unwrap();
        assert_eq!(c.socket, PathBuf::from("/run/enforcer/enforcer.sock"));
        assert_eq!(c.policies, PathBuf::from("/etc/enforcer/policies"));
        assert_eq!(c.pin_dir, PathBuf::from("/sys/fs/bpf/enforcer"));
        assert_eq!(c.cgroup, "enforcer/daemon");
        assert!(c.grants.is_empty());
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_place() {
        let e = Config::parse(Path::new("e.toml"), "[daemon]\nsokcet = \"/x\"\n").unwrap_err();
        assert_eq!((e.location.line, e.location.column), (2, 1));
        assert!(e.message.contains("sokcet"), "{}", e.message);
        let e = Config::parse(Path::new("e.toml"), "[daemon]\ncgroup = \"/abs\"\n").unwrap_err();
        assert_eq!(e.location.line, 2);
        let e = Config::parse(Path::new("e.toml"), "[[grant]]\nusers = [\"a\"]\n").unwrap_err();
        assert!(
            e.message.contains("missing field `policies`"),
            "{}",
            e.message
        );
        let c = Config::parse(
            Path::new("e.toml"),
            "[daemon]\nstate_dir = \"/tmp/s\"\n[[grant]]\ngroups = [\"agents\"]\npolicies = \
             [\"*\"]\n[admin]\nusers = [\"ops\"]\n",
        )
        .unwrap();
        assert_eq!(c.socket, PathBuf::from("/tmp/s/enforcer.sock"));
        assert_eq!(c.grants[0].groups, vec!["agents".to_owned()]);
        assert_eq!(c.admins.users, vec!["ops".to_owned()]);
    }
}
