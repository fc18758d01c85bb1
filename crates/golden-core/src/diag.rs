//! Diagnostics: problems found in the desired state, each pinned to a file, line and column.
//!
//! Validation collects every problem of a run before reporting, so an admin fixing a pull
//! request sees all of them at once. A diagnostic never contains the value of a credential:
//! the rules that find credentials point at the key and say what to do instead.

use std::fmt;
use std::io::{self, Write};
use std::ops::Range;

use schemars::JsonSchema;
use serde::Serialize;

/// A position in a file, 1-based, with the column counted in characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
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

/// What `golden validate --format json` prints (`schema/validate.schema.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Report {
    /// True when the desired state has no problem.
    pub valid: bool,
    /// What the valid desired state holds, e.g. `3 sites, 2 images, 9 pools`; `None` when invalid.
    pub summary: Option<String>,
    /// Every problem, sorted by file and position; empty when valid.
    pub diagnostics: Vec<Diagnostic>,
}

impl Report {
    pub fn json(&self) -> String {
        // A report holds only strings, numbers and booleans, which always serialize.
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// The diagnostics as GitHub Actions workflow commands, one `::error ...::message` line each,
/// so that a workflow shows them as annotations on the pull request's files and lines.
/// `path` turns a diagnostic's file into a path from the repository root, which is how GitHub
/// names files.
pub fn github(diagnostics: &Diagnostics, path: &dyn Fn(&str) -> String) -> String {
    let mut out = String::new();
    for d in diagnostics.iter() {
        let mut properties = vec![format!("file={}", escape_property(&path(&d.file)))];
        if let Some(p) = d.position {
            properties.push(format!("line={}", p.line));
            properties.push(format!("col={}", p.column));
        }
        properties.push(format!("title={}", escape_property("golden validate")));
        let message = match &d.hint {
            Some(hint) => format!("{}\nhint: {hint}", d.message),
            None => d.message.clone(),
        };
        out.push_str(&format!("::error {}::{}\n", properties.join(","), escape_data(&message)));
    }
    out
}

/// A workflow command's message: `%`, CR and LF percent-encoded, as GitHub's toolkit does.
fn escape_data(text: &str) -> String {
    text.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// A workflow command's property value: as a message, and `:` and `,` too.
fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
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
    fn github_annotations_escape_messages_and_properties() {
        let mut diags = Diagnostics::default();
        let text = "a = 1\nb = 2\n";
        diags.push(Diagnostic::at("pools/eu,1.toml", text, 6..7, "100% wrong:\r\nsee a, b").hint("fix: it"));
        diags.push(Diagnostic::file("golden.toml", "missing"));
        let out = github(&diags, &|f| format!("repo/{f}"));
        assert_eq!(
            out,
            "::error file=repo/pools/eu%2C1.toml,line=2,col=1,title=golden validate::100%25 wrong:%0D%0Asee a, b%0Ahint: fix: it\n\
             ::error file=repo/golden.toml,title=golden validate::missing\n"
        );
    }

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(Position::at(text, 0), Position { line: 1, column: 1 });
        let x = text.find("\"x").expect("fixture has a string");
        assert_eq!(Position::at(text, x), Position { line: 2, column: 6 });
        assert_eq!(Position::at(text, 10_000).line, 3);
    }
}
