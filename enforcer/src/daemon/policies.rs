//! The daemon's policy directory as one set: read whole, validated whole, and swapped whole.
//! A bad file keeps the last good set in force; each changed policy gets a new generation.
use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
};

use crate::policy::{self, Vars};

/// One policy of the set, as text (each task parses it again with its own variables).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyFile {
    pub name: String,
    pub file: PathBuf,
    pub text: String,
    pub sha256: String,
    /// The set generation at which this text came into force.
    pub generation: u32,
}

/// Policies parsed with a task's variables. Parsing is a pure function of the text and the
/// variables (no file, clock or environment is read), and a third of a task's planning time
/// through the daemon: each (file, generation, text, variables) is parsed once. Bounded: when
/// full it starts over.
#[derive(Debug, Default)]
pub struct Parsed {
    by_key: HashMap<(PathBuf, u32, String, Vars), policy::Policy>,
}

impl Parsed {
    const MAX: usize = 64;

    /// `pf` parsed with `vars`: a copy of the one parsed before, or parsed now.
    pub fn get(
        &mut self,
        pf: &PolicyFile,
        vars: &Vars,
    ) -> Result<policy::Policy, policy::PolicyErrors> {
        let key = (
            pf.file.clone(),
            pf.generation,
            pf.sha256.clone(),
            vars.clone(),
        );
        if let Some(p) = self.by_key.get(&key) {
            return Ok(p.clone());
        }
        let p = policy::parse(&pf.file, &pf.text, vars)?;
        if self.by_key.len() >= Self::MAX {
            self.by_key.clear();
        }
        self.by_key.insert(key, p.clone());
        Ok(p)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicySet {
    pub by_name: BTreeMap<String, PolicyFile>,
    /// The newest generation handed out.
    pub generation: u32,
}

/// What a reload changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Change {
    pub changed: Vec<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

impl Change {
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.added.is_empty() && self.removed.is_empty()
    }
}

/// Files that are not policies: dotfiles (editors' temp and swap files start with one), editor
/// backups, and anything not `*.toml`.
pub fn ignored(name: &str) -> bool {
    name.starts_with('.')
        || name.starts_with('#')
        || name.ends_with('~')
        || !name.ends_with(".toml")
        || name.len() == ".toml".len()
}

/// Every policy variable named in `text`, bound to a placeholder path, so a policy written
/// for `--var` values can be validated before any task supplies them.
fn placeholder_vars(text: &str) -> Vars {
    let mut vars = Vars::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let name = &after[..end];
        vars.insert(name.to_owned(), format!("/validated-var-{name}"));
        rest = &after[end + 1..];
    }
    vars
}

/// Reads and validates the directory. `Err` lists every problem, file:line:column.
pub fn read(dir: &Path) -> Result<Vec<PolicyFile>, Vec<String>> {
    let entries = std::fs::read_dir(dir).map_err(|e| vec![format!("{}: {e}", dir.display())])?;
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| !ignored(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    paths.sort();
    let mut errors = Vec::new();
    let mut out: Vec<PolicyFile> = Vec::new();
    for path in paths {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        match policy::parse(&path, &text, &placeholder_vars(&text)) {
            Ok(p) => {
                if let Some(other) = out.iter().find(|o| o.name == p.name) {
                    errors.push(format!(
                        "{}: policy name \"{}\" is also used by {}",
                        path.display(),
                        p.name,
                        other.file.display()
                    ));
                    continue;
                }
                out.push(PolicyFile {
                    name: p.name,
                    file: path,
                    text,
                    sha256: p.sha256,
                    generation: 0,
                });
            }
            Err(e) => errors.extend(e.0.iter().map(ToString::to_string)),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

impl PolicySet {
    /// The set after `files` replace the current one: unchanged policies keep their
    /// generation; changed and new ones get the next.
    pub fn replace(&self, files: Vec<PolicyFile>) -> (Self, Change) {
        let next = self.generation + 1;
        let mut change = Change::default();
        let mut by_name = BTreeMap::new();
        for mut f in files {
            match self.by_name.get(&f.name) {
                Some(old) if old.sha256 == f.sha256 => f.generation = old.generation,
                Some(_) => {
                    f.generation = next;
                    change.changed.push(f.name.clone());
                }
                None => {
                    f.generation = next;
                    change.added.push(f.name.clone());
                }
            }
            by_name.insert(f.name.clone(), f);
        }
        change.removed = self
            .by_name
            .keys()
            .filter(|n| !by_name.contains_key(*n))
            .cloned()
            .collect();
        let generation = if change.changed.is_empty() && change.added.is_empty() {
            self.generation
        } else {
            next
        };
        (
            Self {
                by_name,
                generation,
            },
            change,
        )
    }
}

impl PolicySet {
    /// The policies a previous daemon of this boot knew (name, sha256, generation), so that a
    /// restart does not renumber unchanged ones; their files are read again by the next scan.
    pub fn remembered(state: &super::state::DaemonState) -> Self {
        Self {
            by_name: state
                .policies
                .iter()
                .map(|(name, (sha, generation))| {
                    let pf = PolicyFile {
                        name: name.clone(),
                        file: PathBuf::new(),
                        text: String::new(),
                        sha256: sha.clone(),
                        generation: *generation,
                    };
                    (name.clone(), pf)
                })
                .collect(),
            generation: state.generation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "[policy]\nname = \"p\"\nversion = 1\n[files]\nread = [\"${workspace}/\"]\n";

    fn dir(files: &[(&str, &str)]) -> tempdir::Dir {
        let d = tempdir::Dir::new();
        for (name, text) in files {
            std::fs::write(d.0.join(name), text).unwrap();
        }
        d
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "enforcer-policies-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Self(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn editor_files_and_dotfiles_are_not_policies() {
        for name in [
            ".p.toml.swp",
            ".#p.toml",
            "p.toml~",
            "#p.toml#",
            "4913",
            "p.toml.tmp",
            ".toml",
        ] {
            assert!(ignored(name), "{name}");
        }
        assert!(!ignored("coding-agent.toml"));
    }

    #[test]
    fn a_set_with_variables_validates_and_a_bad_file_fails_the_whole_set() {
        let d = dir(&[("p.toml", P), (".p.toml.swp", "garbage")]);
        let files = read(&d.0).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].name, "p");
        std::fs::write(d.0.join("q.toml"), "[policy]\nname = \"q\"\nversoin = 1\n").unwrap();
        let errors = read(&d.0).unwrap_err();
        assert!(errors[0].contains("q.toml:3:1"), "{errors:?}");
        std::fs::write(d.0.join("q.toml"), P).unwrap();
        let errors = read(&d.0).unwrap_err();
        assert!(errors[0].contains("also used by"), "{errors:?}");
    }

    #[test]
    fn only_changed_policies_get_a_new_generation() {
        let d = dir(&[("p.toml", P), ("r.toml", &P.replace("\"p\"", "\"r\""))]);
        let (set, change) = PolicySet::default().replace(read(&d.0).unwrap());
        assert_eq!(set.generation, 1);
        assert_eq!(change.added, vec!["p", "r"]);
        let (same, change) = set.replace(read(&d.0).unwrap());
        assert!(change.is_empty());
        assert_eq!(same.generation, 1);
        std::fs::write(d.0.join("p.toml"), P.replace("version = 1", "version = 2")).unwrap();
        let (next, change) = same.replace(read(&d.0).unwrap());
        assert_eq!(change.changed, vec!["p"]);
        assert_eq!(next.by_name["p"].generation, 2);
        assert_eq!(next.by_name["r"].generation, 1);
        std::fs::remove_file(d.0.join("r.toml")).unwrap();
        let (last, change) = next.replace(read(&d.0).unwrap());
        assert_eq!(change.removed, vec!["r"]);
        assert_eq!(last.generation, 2);
    }

    #[test]
    fn a_policy_is_parsed_once_per_variables_and_a_bad_one_never_kept() {
        let pf = |text: &str, generation| PolicyFile {
            name: "p".into(),
            file: PathBuf::from("/etc/enforcer/policies/p.toml"),
            text: text.into(),
            sha256: format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(text)),
            generation,
        };
        let vars = |ws: &str| Vars::from([("workspace".to_owned(), ws.to_owned())]);
        let mut parsed = Parsed::default();
        let a = parsed.get(&pf(P, 1), &vars("/a")).expect("parses");
        let file = Path::new("/etc/enforcer/policies/p.toml");
        assert_eq!(a, policy::parse(file, P, &vars("/a")).expect("parses"));
        assert_eq!(parsed.get(&pf(P, 1), &vars("/a")).expect("kept"), a);
        assert_eq!(parsed.by_key.len(), 1);
        // Other variables, another generation: parsed for themselves.
        let b = parsed.get(&pf(P, 1), &vars("/b")).expect("parses");
        assert_ne!(a, b);
        parsed.get(&pf(P, 2), &vars("/a")).expect("parses");
        assert_eq!(parsed.by_key.len(), 3);
        // An empty variable is an error each time, and nothing is kept of it.
        assert!(parsed.get(&pf(P, 1), &vars(" ")).is_err());
        assert!(parsed.get(&pf(P, 1), &vars(" ")).is_err());
        assert_eq!(parsed.by_key.len(), 3);
        // Full: it starts over.
        for i in 0..Parsed::MAX {
            parsed
                .get(&pf(P, 1), &vars(&format!("/w{i}")))
                .expect("parses");
        }
        assert!(parsed.by_key.len() <= Parsed::MAX);
    }
}
