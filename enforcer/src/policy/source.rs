//! Where things are in a policy file, and the errors that point there.
use std::{fmt, ops::Range, path::PathBuf};

/// A 1-based line and column in a policy file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl Location {
    /// The location of byte `offset` in `text` (columns count characters, not bytes).
    pub fn of_offset(text: &str, offset: usize) -> Self {
        let offset = offset.min(text.len());
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Self { line, column }
    }
}

/// One problem in a policy file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}:{}:{}: {message}", file.display(), location.line, location.column)]
pub struct PolicyError {
    pub file: PathBuf,
    pub location: Location,
    pub message: String,
}

/// Every problem found in one policy file (parsing stops at the first syntax error; validation
/// reports them all).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}

/// Collects errors against one file's text.
pub struct Reporter<'a> {
    pub file: PathBuf,
    pub text: &'a str,
    pub errors: Vec<PolicyError>,
}

impl<'a> Reporter<'a> {
    pub fn new(file: impl Into<PathBuf>, text: &'a str) -> Self {
        Self {
            file: file.into(),
            text,
            errors: Vec::new(),
        }
    }

    pub fn location(&self, span: &Range<usize>) -> Location {
        Location::of_offset(self.text, span.start)
    }

    pub fn error(&mut self, span: &Range<usize>, message: impl Into<String>) {
        let location = self.location(span);
        self.errors.push(PolicyError {
            file: self.file.clone(),
            location,
            message: message.into(),
        });
    }

    pub fn finish<T>(self, value: T) -> Result<T, PolicyErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(PolicyErrors(self.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_one_based_lines_and_character_columns() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(
            Location::of_offset(text, 0),
            Location { line: 1, column: 1 }
        );
        assert_eq!(
            Location::of_offset(text, 6),
            Location { line: 2, column: 1 }
        );
        // 'é' is two bytes but one column.
        assert_eq!(
            Location::of_offset(text, 9),
            Location { line: 2, column: 3 }
        );
        assert_eq!(
            Location::of_offset(text, 999),
            Location { line: 3, column: 1 }
        );
    }
}
