//! Domain names as a task may ask for them: letters, digits and hyphens (LDH), labels of 1 to 63
//! bytes, at most 253 bytes written out. Anything else is malformed and refused, never
//! forwarded: a query name is the data of a DNS exfiltration channel, so only names a policy
//! can name get through.
use std::fmt;

/// The longest name written out with dots (RFC 1035: 255 bytes on the wire).
pub const MAX_NAME: usize = 253;
/// The longest label.
pub const MAX_LABEL: usize = 63;

/// A valid name, lowercase, without the trailing dot.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

/// Why a name is malformed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("an empty name")]
    Empty,
    #[error("an empty label")]
    EmptyLabel,
    #[error("a label of {0} bytes (at most {MAX_LABEL})")]
    LongLabel(usize),
    #[error("{0} bytes written out (at most {MAX_NAME})")]
    Long(usize),
    #[error("byte {0:#04x} is not a letter, digit or hyphen")]
    NotLdh(u8),
    #[error("a label starts or ends with a hyphen")]
    Hyphen,
}

impl Name {
    /// A name from its labels (as read from the wire, without lengths).
    pub fn from_labels<'a>(labels: impl IntoIterator<Item = &'a [u8]>) -> Result<Self, NameError> {
        let mut text = String::new();
        for label in labels {
            check_label(label)?;
            if !text.is_empty() {
                text.push('.');
            }
            text.extend(label.iter().map(|b| char::from(b.to_ascii_lowercase())));
            if text.len() > MAX_NAME {
                return Err(NameError::Long(text.len()));
            }
        }
        if text.is_empty() {
            return Err(NameError::Empty);
        }
        Ok(Self(text))
    }

    /// A name written with dots (one trailing dot allowed), as in a policy.
    pub fn parse(text: &str) -> Result<Self, NameError> {
        let text = text.strip_suffix('.').unwrap_or(text);
        if text.is_empty() {
            return Err(NameError::Empty);
        }
        Self::from_labels(text.split('.').map(str::as_bytes))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The labels, first to last.
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.0.split('.')
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn check_label(label: &[u8]) -> Result<(), NameError> {
    match label.len() {
        0 => return Err(NameError::EmptyLabel),
        n if n > MAX_LABEL => return Err(NameError::LongLabel(n)),
        _ => {}
    }
    if let Some(&b) = label
        .iter()
        .find(|b| !(b.is_ascii_alphanumeric() || **b == b'-'))
    {
        return Err(NameError::NotLdh(b));
    }
    if label.first() == Some(&b'-') || label.last() == Some(&b'-') {
        return Err(NameError::Hyphen);
    }
    Ok(())
}

/// A name a policy allows: exact (`pypi.org`) or every name under a domain (`*.example.com`:
/// `a.example.com` and `a.b.example.com`, not `example.com` itself).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Pattern {
    Exact(Name),
    Under(Name),
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Self, NameError> {
        match text.strip_prefix("*.") {
            Some(rest) => Name::parse(rest).map(Self::Under),
            None => Name::parse(text).map(Self::Exact),
        }
    }

    pub fn matches(&self, name: &Name) -> bool {
        match self {
            Self::Exact(n) => n == name,
            Self::Under(domain) => name
                .as_str()
                .strip_suffix(domain.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_ldh_labels_of_bounded_length_lowercased() {
        assert_eq!(Name::parse("PyPI.org.").unwrap().as_str(), "pypi.org");
        assert_eq!(Name::parse("a-1.b2.example").unwrap().labels().count(), 3);
        assert_eq!(Name::parse(""), Err(NameError::Empty));
        assert_eq!(Name::parse("."), Err(NameError::Empty));
        assert_eq!(Name::parse("a..b"), Err(NameError::EmptyLabel));
        assert_eq!(Name::parse("a\0b.test"), Err(NameError::NotLdh(0)));
        assert_eq!(Name::parse("a_b.test"), Err(NameError::NotLdh(b'_')));
        assert_eq!(Name::parse("a b.test"), Err(NameError::NotLdh(b' ')));
        assert_eq!(Name::parse("-a.test"), Err(NameError::Hyphen));
        assert_eq!(Name::parse("a-.test"), Err(NameError::Hyphen));
        let label = "x".repeat(64);
        assert_eq!(
            Name::parse(&format!("{label}.test")),
            Err(NameError::LongLabel(64))
        );
        assert!(Name::parse(&format!("{}.test", "x".repeat(63))).is_ok());
        // 4 labels of 63 and dots: 255 bytes written out.
        let long = [&"a".repeat(63)[..]; 4].join(".");
        assert_eq!(Name::parse(&long), Err(NameError::Long(191 + 64)));
        let fits = format!("{}.{}", [&"a".repeat(63)[..]; 3].join("."), "b".repeat(61));
        assert_eq!(fits.len(), MAX_NAME);
        assert!(Name::parse(&fits).is_ok());
    }

    #[test]
    fn a_wildcard_is_every_name_strictly_under_its_domain() {
        let p = Pattern::parse("*.example.com").unwrap();
        let yes = |n: &str| p.matches(&Name::parse(n).unwrap());
        assert!(yes("a.example.com"));
        assert!(yes("a.b.example.com"));
        assert!(!yes("example.com"));
        assert!(!yes("badexample.com"));
        assert!(!yes("example.com.evil.test"));
        let exact = Pattern::parse("pypi.org").unwrap();
        assert!(exact.matches(&Name::parse("PYPI.org").unwrap()));
        assert!(!exact.matches(&Name::parse("x.pypi.org").unwrap()));
        assert!(Pattern::parse("*.").is_err());
        assert!(Pattern::parse("a.*.com").is_err());
    }
}
