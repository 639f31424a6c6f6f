//! The daemon's configuration (`/etc/enforcer/enforcer.toml`). Every setting has a default, so
//! an empty file (or none at all) works; unknown keys are errors with file:line:column.
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{
    events::Format,
    kernel::probe::ModeRequest,
    policy::{Location, PolicyError},
    sinks::config::{RawSink, SinkConfig},
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
    /// More event destinations (`[[sink]]`), each with its format and filter.
    pub sinks: Vec<SinkConfig>,
    /// Where network sinks spool events (default `<state_dir>/spool`).
    pub spool_dir: PathBuf,
    pub mode: ModeRequest,
    /// Prometheus metrics: `host:port`, or `unix:PATH`; `None`: off.
    pub metrics: Option<String>,
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
    #[serde(default)]
    sink: Vec<RawSink>,
    #[serde(default)]
    metrics: RawMetrics,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<String>,
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
    spool_dir: Option<PathBuf>,
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
        let mut sinks: Vec<SinkConfig> = Vec::new();
        let mut from = 0;
        for raw in raw.sink {
            // Each `[[sink]]` table in turn, for the error's place.
            let here = text[from..].find("[[sink]]").map_or(from, |i| from + i);
            from = here + 1;
            let sink = raw.build().map_err(|m| at(here, m))?;
            if sink.name == "events" || sinks.iter().any(|s| s.name == sink.name) {
                return Err(at(
                    here,
                    format!(
                        "sink \"{}\": the name is taken (\"events\" is [daemon] events)",
                        sink.name
                    ),
                ));
            }
            sinks.push(sink);
        }
        if let Some(l) = &raw.metrics.listen
            && !l.starts_with("unix:/")
            && l.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(at(
                text.find("listen").unwrap_or(0),
                format!("metrics listen \"{l}\": expected host:port (an IP address) or unix:/path"),
            ));
        }
        Ok(Self {
            metrics: raw.metrics.listen,
            spool_dir: d.spool_dir.unwrap_or_else(|| state_dir.join("spool")),
            sinks,
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

    #[test]
    fn the_shipped_config_parses_with_and_without_its_example_sink() {
        let text = include_str!("../../../packaging/enforcer.toml");
        let c = Config::parse(Path::new("enforcer.toml"), text).unwrap();
        assert!(c.sinks.is_empty());
        // The commented-out examples after the defaults, uncommented.
        let example: String = text
            .lines()
            .skip_while(|l| !l.starts_with("# [[sink]]"))
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| l.starts_with('[') || l.contains(" = "))
            .collect::<Vec<_>>()
            .join("\n");
        let c = Config::parse(Path::new("enforcer.toml"), &example).unwrap();
        assert_eq!(c.sinks.len(), 1);
        assert_eq!(c.metrics.as_deref(), Some("127.0.0.1:9464"));
        assert_eq!(c.sinks[0].filter.decision, vec!["deny", "kill"]);
    }

    #[test]
    fn sinks_are_checked_and_their_errors_placed() {
        let c = Config::parse(
            Path::new("e.toml"),
            "[[sink]]\nname = \"siem\"\ntype = \"syslog\"\naddress = \"127.0.0.1:514\"\n\
             [sink.filter]\ndecision = [\"deny\"]\n",
        )
        .unwrap();
        assert_eq!(c.sinks.len(), 1);
        assert_eq!(c.spool_dir, PathBuf::from("/run/enforcer/spool"));
        let e = Config::parse(
            Path::new("e.toml"),
            "[daemon]\n\n[[sink]]\nname = \"a\"\ntype = \"stdout\"\n\n[[sink]]\nname = \
             \"b\"\ntype = \"file\"\n",
        )
        .unwrap_err();
        assert_eq!(e.location.line, 7, "{}", e.message);
        assert!(e.message.contains("needs `path`"), "{}", e.message);
        let e = Config::parse(
            Path::new("e.toml"),
            "[[sink]]\nname = \"a\"\ntype = \"stdout\"\nurl = 3\n",
        )
        .unwrap_err();
        assert_eq!(e.location.line, 4, "{}", e.message);
    }
}
