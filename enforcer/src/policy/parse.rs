//! TOML -> [`Policy`]: syntax, unknown keys, `${var}` substitution and every value checked,
//! each error with file:line:column.
use std::{
    collections::BTreeMap,
    ops::Range,
    path::{Path, PathBuf},
};

use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use toml::Spanned;

use super::{
    DEFAULT_LIBRARIES, Limits, Mode, PathPattern, Policy, Rule, Section, Target, guard,
    source::{Location, PolicyError, PolicyErrors, Reporter},
    values::{parse_duration, parse_endpoint, parse_local_endpoint, parse_path},
};

/// `--var name=value` pairs.
pub type Vars = BTreeMap<String, String>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    policy: Spanned<RawMeta>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    exec: RawExec,
    #[serde(default)]
    files: RawFiles,
    #[serde(default)]
    network: RawNetwork,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeta {
    name: Spanned<String>,
    version: Spanned<i64>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    mode: Option<Spanned<String>>,
    #[serde(default)]
    allow_io_uring: bool,
    #[serde(default)]
    allow_user_namespaces: bool,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    ttl: Option<Spanned<String>>,
    max_execs: Option<Spanned<i64>>,
    max_connects: Option<Spanned<i64>>,
    max_denials: Option<Spanned<i64>>,
    on_exceed: Option<Spanned<String>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExec {
    #[serde(default)]
    allow: Vec<Spanned<String>>,
    /// Absent: [`DEFAULT_LIBRARIES`].
    libraries: Option<Vec<Spanned<String>>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFiles {
    #[serde(default)]
    read: Vec<Spanned<String>>,
    #[serde(default)]
    write: Vec<Spanned<String>>,
    #[serde(default)]
    deny: Vec<Spanned<String>>,
    #[serde(default)]
    protect: Vec<Spanned<String>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    #[serde(default)]
    connect: Vec<Spanned<String>>,
    #[serde(default)]
    unix: Vec<Spanned<String>>,
    #[serde(default)]
    listen: Vec<Spanned<String>>,
}

/// Why a policy file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}: cannot read policy: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(PolicyErrors),
}

/// Reads and parses a policy file.
pub fn load(path: &Path, vars: &Vars) -> Result<Policy, LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
        LoadError::Invalid(PolicyErrors(vec![PolicyError {
            file: path.to_owned(),
            location: Location::of_offset(&text, offset),
            message: "the file is not valid UTF-8".into(),
        }]))
    })?;
    parse(path, &text, vars).map_err(LoadError::Invalid)
}

/// Parses policy `text` (from `file`, for error messages) with `vars` substituted.
pub fn parse(file: &Path, text: &str, vars: &Vars) -> Result<Policy, PolicyErrors> {
    let raw: RawPolicy = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        PolicyErrors(vec![PolicyError {
            file: file.to_owned(),
            location: Location::of_offset(text, span.start),
            message: e.message().trim().to_owned(),
        }])
    })?;
    let mut r = Reporter::new(file, text);

    let meta = raw.policy.get_ref();
    let name = meta.name.get_ref().trim().to_owned();
    if name.is_empty() {
        r.error(&meta.name.span(), "empty policy name");
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        r.error(
            &meta.name.span(),
            format!("policy name \"{name}\" may only use letters, digits, '-', '_' and '.'"),
        );
    }
    let version = non_negative(&mut r, &meta.version, "version");
    let mode = match meta.mode.as_ref().map(|m| (m.get_ref().as_str(), m.span())) {
        None | Some(("enforce", _)) => Mode::Enforce,
        Some(("audit", _)) => Mode::Audit,
        Some((other, span)) => {
            r.error(
                &span,
                format!("unknown mode \"{other}\"; expected \"enforce\" or \"audit\""),
            );
            Mode::Enforce
        }
    };

    let limits = parse_limits(&mut r, &raw.limits);

    let mut rules = Vec::new();
    let default_libraries: Vec<Spanned<String>>;
    let libraries: &[Spanned<String>] = match &raw.exec.libraries {
        Some(list) => list,
        None => {
            // Spanned at the [exec] table's absence: point errors (there are none for these
            // constants) at the start of the file.
            default_libraries = DEFAULT_LIBRARIES
                .iter()
                .map(|p| Spanned::new(0..0, (*p).to_owned()))
                .collect();
            &default_libraries
        }
    };
    let lists: [(Section, &[Spanned<String>]); 9] = [
        (Section::ExecAllow, &raw.exec.allow),
        (Section::FilesRead, &raw.files.read),
        (Section::FilesWrite, &raw.files.write),
        (Section::FilesDeny, &raw.files.deny),
        (Section::FilesProtect, &raw.files.protect),
        (Section::NetworkConnect, &raw.network.connect),
        (Section::NetworkUnix, &raw.network.unix),
        (Section::NetworkListen, &raw.network.listen),
        // Last, so that the ids of the rules written do not depend on the defaults.
        (Section::ExecLibraries, libraries),
    ];
    for (section, entries) in lists {
        for (index, entry) in entries.iter().enumerate() {
            let span = entry.span();
            let Some(text) = substitute(&mut r, entry.get_ref(), &span, vars) else {
                continue;
            };
            let target = match section {
                Section::NetworkConnect => parse_endpoint(&text).map(Target::Endpoint),
                Section::NetworkListen => parse_local_endpoint(&text).map(Target::Endpoint),
                _ => parse_path(&text).and_then(|path| {
                    guard_path(section, mode, entry.get_ref(), path).map(Target::Path)
                }),
            };
            match target {
                Ok(target) => rules.push(Rule {
                    section,
                    index,
                    location: r.location(&span),
                    text,
                    target,
                }),
                Err(message) => r.error(&span, format!("{}[{index}]: {message}", section.key())),
            }
        }
    }

    let policy = Policy {
        file: file.to_owned(),
        sha256: hex(&Sha256::digest(text.as_bytes())),
        name,
        version,
        description: meta.description.clone(),
        mode,
        allow_io_uring: meta.allow_io_uring,
        allow_user_namespaces: meta.allow_user_namespaces,
        limits,
        rules,
    };
    r.finish(policy)
}

/// What no rule may grant (see [`super::guard`]): a variable that widens a rule to a system
/// tree, and an enforcing write rule over the cgroup, bpf or enforcer trees.
fn guard_path(
    section: Section,
    mode: Mode,
    written: &str,
    path: PathPattern,
) -> Result<PathPattern, String> {
    if !matches!(section, Section::FilesDeny | Section::FilesProtect)
        && written.contains("${")
        && let Some(tree) = guard::system_tree(&path)
    {
        return Err(format!(
            "\"{written}\" becomes \"{tree}\" with the variables given: a rule written for \
             one directory would cover the whole of {tree}; pass a narrower --var value"
        ));
    }
    if section == Section::ExecAllow && guard::is_elf_interpreter(&path) {
        return Err(format!(
            "\"{}\" is the ELF interpreter: allowing it would let the task run any readable \
             file through it (`ld.so FILE`); list the programs instead (the loader is allowed \
             as the loader of every allowed program)",
            path.path
        ));
    }
    if section == Section::FilesWrite
        && mode == Mode::Enforce
        && let Some(tree) = guard::protected_overlap(&path)
    {
        return Err(format!(
            "\"{}\" would let the task write under {tree}: no rule may (a process could move \
             itself out of its cgroup, or touch the enforcer's programs, state or events); \
             grant narrower trees",
            path.path
        ));
    }
    Ok(path)
}

fn parse_limits(r: &mut Reporter<'_>, raw: &RawLimits) -> Limits {
    let ttl = raw
        .ttl
        .as_ref()
        .and_then(|t| match parse_duration(t.get_ref()) {
            Ok(d) => Some(d),
            Err(message) => {
                r.error(&t.span(), format!("limits.ttl: {message}"));
                None
            }
        });
    if let Some(on_exceed) = &raw.on_exceed
        && on_exceed.get_ref() != "kill"
    {
        r.error(
            &on_exceed.span(),
            format!(
                "limits.on_exceed: unknown action \"{}\"; expected \"kill\"",
                on_exceed.get_ref()
            ),
        );
    }
    let mut count = |v: &Option<Spanned<i64>>, name: &str| {
        v.as_ref()
            .map(|v| non_negative(r, v, &format!("limits.{name}")))
    };
    Limits {
        ttl,
        max_execs: count(&raw.max_execs, "max_execs"),
        max_connects: count(&raw.max_connects, "max_connects"),
        max_denials: count(&raw.max_denials, "max_denials"),
    }
}

fn non_negative(r: &mut Reporter<'_>, value: &Spanned<i64>, what: &str) -> u64 {
    match u64::try_from(*value.get_ref()) {
        Ok(v) => v,
        Err(_) => {
            r.error(
                &value.span(),
                format!(
                    "{what}: {} is negative; expected 0 or more",
                    value.get_ref()
                ),
            );
            0
        }
    }
}

/// Replaces every `${name}` in `text` with its value; an unknown or malformed reference is an
/// error at the entry's location.
fn substitute(
    r: &mut Reporter<'_>,
    text: &str,
    span: &Range<usize>,
    vars: &Vars,
) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut ok = true;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            r.error(span, format!("unterminated \"${{\" in \"{text}\""));
            return None;
        };
        let name = &after[..end];
        let valid = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            r.error(span, format!("bad variable name \"${{{name}}}\""));
            ok = false;
        } else if let Some(value) = vars.get(name) {
            if value.trim().is_empty() {
                r.error(
                    span,
                    format!(
                        "variable ${{{name}}} is empty: an unset variable in a wrapper would \
                         widen \"{text}\"; pass --var {name}=VALUE with a real value"
                    ),
                );
                ok = false;
            }
            out.push_str(value);
        } else {
            r.error(
                span,
                format!("variable ${{{name}}} is not defined; pass --var {name}=VALUE"),
            );
            ok = false;
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    ok.then_some(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[policy]
name = "coding-agent"
version = 3
mode = "enforce"

[limits]
ttl = "15m"
max_execs = 500
max_connects = 200
max_denials = 20
on_exceed = "kill"

[exec]
allow = ["/usr/bin/git", "/usr/lib/git-core/"]

[files]
read  = ["${workspace}/", "/usr/"]
write = ["${workspace}/", "/tmp/"]
deny  = ["${workspace}/.env"]

[network]
connect = ["127.0.0.1:8080", "10.0.0.0/8:443", "[::1]:*", "api.github.com:443"]
"#;

    fn vars() -> Vars {
        [("workspace".to_owned(), "/srv/repo".to_owned())].into()
    }

    fn errors(text: &str) -> Vec<String> {
        parse(Path::new("p.toml"), text, &vars())
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn parses_every_field_of_the_design_example() {
        let p = parse(Path::new("p.toml"), GOOD, &vars()).unwrap();
        assert_eq!(p.name, "coding-agent");
        assert_eq!(p.version, 3);
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.limits.ttl, Some(std::time::Duration::from_secs(900)));
        assert_eq!(p.limits.max_execs, Some(500));
        assert_eq!(p.limits.max_connects, Some(200));
        assert_eq!(p.limits.max_denials, Some(20));
        // 11 written, and the 4 default exec.libraries after them.
        assert_eq!(p.rules.len(), 15);
        assert_eq!(p.rules[11].label(), "exec.libraries[0]");
        let deny = p.rules_in(Section::FilesDeny).next().unwrap().1;
        assert_eq!(deny.text, "/srv/repo/.env");
        assert_eq!(deny.label(), "files.deny[0]");
        assert_eq!(deny.location.line, 20);
        assert_eq!(p.sha256.len(), 64);
    }

    #[test]
    fn unknown_keys_name_their_location() {
        let text = "[policy]\nname = \"a\"\nversion = 1\ncolour = \"red\"\n";
        let e = errors(text);
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("p.toml:4:1: "), "{e:?}");
        assert!(e[0].contains("unknown field `colour`"), "{e:?}");
        let e = errors("[policy]\nname = \"a\"\nversion = 1\n[filez]\nread = []\n");
        assert!(e[0].starts_with("p.toml:4:"), "{e:?}");
    }

    #[test]
    fn syntax_errors_name_their_location() {
        let e = errors("[policy]\nname = \"a\nversion = 1\n");
        assert!(e[0].starts_with("p.toml:2:"), "{e:?}");
    }

    #[test]
    fn every_bad_value_is_reported_with_its_location() {
        let text = r#"[policy]
name = ""
version = -1
mode = "permissive"
[limits]
ttl = "soon"
on_exceed = "warn"
[files]
read = ["relative/path", "/ok/", "${nope}/x"]
[network]
connect = ["10.0.0.1/8:443", "host:http"]
"#;
        let e = errors(text);
        let expect = [
            "p.toml:2:8: empty policy name",
            "p.toml:3:11: version: -1 is negative",
            "p.toml:4:8: unknown mode \"permissive\"",
            "p.toml:6:7: limits.ttl: bad duration",
            "p.toml:7:13: limits.on_exceed: unknown action \"warn\"",
            "p.toml:9:9: files.read[0]: relative path",
            "p.toml:9:34: variable ${nope} is not defined; pass --var nope=VALUE",
            "p.toml:11:12: network.connect[0]: \"10.0.0.1/8:443\": address has bits set",
            "p.toml:11:30: network.connect[1]: \"host:http\": bad port",
        ];
        assert_eq!(e.len(), expect.len(), "{e:#?}");
        for (got, want) in e.iter().zip(expect) {
            assert!(got.starts_with(want), "got {got:?}, want prefix {want:?}");
        }
    }

    #[test]
    fn variables_substitute_and_a_relative_value_is_caught() {
        let text = "[policy]\nname = \"a\"\nversion = 1\n[files]\nread = [\"${w}/\"]\n";
        let vars: Vars = [("w".to_owned(), "rel".to_owned())].into();
        let e = parse(Path::new("p.toml"), text, &vars).unwrap_err();
        assert!(e.0[0].message.contains("relative path \"rel/\""));
    }

    #[test]
    fn mode_audit_and_io_uring() {
        let text = "[policy]\nname = \"a\"\nversion = 1\nmode = \"audit\"\nallow_io_uring = true\n";
        let p = parse(Path::new("p.toml"), text, &Vars::new()).unwrap();
        assert_eq!(p.mode, Mode::Audit);
        assert!(p.allow_io_uring);
        let sections: Vec<Section> = p.rules.iter().map(|r| r.section).collect();
        assert_eq!(
            sections,
            vec![Section::ExecLibraries; DEFAULT_LIBRARIES.len()]
        );
    }

    #[test]
    fn libraries_replace_the_defaults_and_unix_sockets_are_paths() {
        let text = "[policy]\nname = \"a\"\nversion = 1\n[exec]\nlibraries = [\"/opt/lib/\"]\n\
                    [network]\nunix = [\"/run/app.sock\", \"relative.sock\"]\n";
        let errors = parse(Path::new("p.toml"), text, &Vars::new()).unwrap_err();
        assert_eq!(errors.0.len(), 1, "{errors}");
        assert!(
            errors.0[0].to_string().contains("network.unix[1]"),
            "{errors}"
        );
        let ok = text.replace(", \"relative.sock\"", "");
        let p = parse(Path::new("p.toml"), &ok, &Vars::new()).unwrap();
        let libs: Vec<&str> = p
            .rules_in(Section::ExecLibraries)
            .map(|(_, r)| r.text.as_str())
            .collect();
        assert_eq!(libs, ["/opt/lib/"]);
        assert_eq!(p.rules_in(Section::NetworkUnix).count(), 1);
    }
}
