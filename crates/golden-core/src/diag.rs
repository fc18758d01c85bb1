//! Diagnostics: problems found in the desired state, each pinned to a file, line and column.
//!
//! Validation collects every problem of a run before reporting, so an admin fixing a pull
//! request sees all of them at once. A diagnostic never contains the value of a credential:
//! the rules that find credentials point at the key and say what to do instead.

use std::fmt;
use std::io::{self, Write};
use std::ops::Range;

/// A position in a file, 1-based, with the column counted in characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    /// The position of byte `offset` in `text`.
    pub fn at(text: &str, offset: usize) -> Position {
        let offset = offset.min(text.len());
        // Round down to a character boundary so slicing cannot panic on odd spans.
        let offset = (0..=offset).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Position { line, column }
    }
}

/// One problem: where it is, what is wrong, and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as the user should see it, e.g. `images/win11-ent.toml` or `HEAD~1:golden.toml`.
    pub file: String,
    pub position: Option<Position>,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A problem at byte range `span` of `text`.
    pub fn at(file: &str, text: &str, span: Range<usize>, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_owned(),
            position: Some(Position::at(text, span.start)),
            message: message.into(),
            hint: None,
        }
    }

    /// A problem with a whole file (missing, unreadable).
    pub fn file(file: &str, message: impl Into<String>) -> Self {
        Diagnostic { file: file.to_owned(), position: None, message: message.into(), hint: None }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// `file:line:column`, or just the file when the problem has no position.
    pub fn location(&self) -> String {
        match self.position {
            Some(p) => format!("{}:{}:{}", self.file, p.line, p.column),
            None => self.file.clone(),
        }
    }
}

/// All problems of one validation run, sorted by file and position.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics(Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }

    /// Sorts for stable output; called once before the diagnostics leave validation.
    pub fn sort(&mut self) {
        self.0.sort_by(|a, b| (&a.file, a.position, &a.message).cmp(&(&b.file, b.position, &b.message)));
        self.0.dedup();
    }

    /// Writes every diagnostic, styled when `out` supports colour.
    pub fn render(&self, out: &mut dyn Write) -> io::Result<()> {
        let error = anstyle::Style::new().bold().fg_color(Some(anstyle::AnsiColor::Red.into()));
        let hint = anstyle::Style::new().fg_color(Some(anstyle::AnsiColor::Cyan.into()));
        let loc = anstyle::Style::new().bold();
        for d in &self.0 {
            writeln!(out, "{error}error{error:#}: {loc}{}{loc:#}: {}", d.location(), d.message)?;
            if let Some(h) = &d.hint {
                writeln!(out, "  {hint}hint{hint:#}: {h}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.len() {
            1 => write!(f, "the desired state has 1 problem"),
            n => write!(f, "the desired state has {n} problems"),
        }
    }
}

impl std::error::Error for Diagnostics {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(Position::at(text, 0), Position { line: 1, column: 1 });
        let x = text.find("\"x").expect("fixture has a string");
        assert_eq!(Position::at(text, x), Position { line: 2, column: 6 });
        assert_eq!(Position::at(text, 10_000).line, 3);
    }
}
