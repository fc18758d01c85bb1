//! Parsing: a file's TOML into its typed form, with the spans that pin every problem to
//! `file:line:column`, unknown keys found while deserializing, and "did you mean" hints from
//! the JSON Schema of the same types.

use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::Validator;
use crate::desired::layout::SourceText;
use crate::diag::Diagnostic;

/// One parsed file: its typed value plus the spanned document for locating problems.
pub(super) struct Parsed<'a, T> {
    pub(super) file: &'a SourceText,
    pub(super) doc: Spanned<DeTable<'a>>,
    pub(super) value: T,
}

/// Which part of a `key = value` pair a diagnostic points at.
#[derive(Clone, Copy)]
pub(super) enum At {
    Key,
    Value,
}

impl<T> Parsed<'_, T> {
    /// The span of `path` in the document; a missing tail resolves to its deepest present parent.
    pub(super) fn span(&self, path: &[&str], at: At) -> Range<usize> {
        let mut table = self.doc.get_ref();
        let mut best = 0..0;
        for (i, segment) in path.iter().enumerate() {
            let Some((key, value)) = table.get_key_value(*segment) else { return best };
            let last = i + 1 == path.len();
            best = match at {
                At::Value if last => value.span(),
                _ => key.span(),
            };
            match value.get_ref() {
                DeValue::Table(t) => table = t,
                _ => return best,
            }
        }
        best
    }

    pub(super) fn diag(&self, path: &[&str], at: At, message: impl Into<String>) -> Diagnostic {
        Diagnostic::at(&self.file.display, &self.file.text, self.span(path, at), message)
    }

    pub(super) fn location(&self, path: &[&str], at: At) -> String {
        self.diag(path, at, "").location()
    }
}

impl Validator {
    /// Parses one file into `T`, reporting syntax errors, type errors, credentials and unknown
    /// keys. `None` when the file cannot be used for further checks.
    pub(super) fn parse<'a, T: DeserializeOwned>(
        &mut self,
        file: &'a SourceText,
        schema: &serde_json::Value,
    ) -> Option<Parsed<'a, T>> {
        let doc = match DeTable::parse(&file.text) {
            Ok(doc) => doc,
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                self.push(
                    Diagnostic::at(
                        &file.display,
                        &file.text,
                        span,
                        format!("invalid TOML: {}", e.message().trim()),
                    )
                    .hint("fix the syntax; https://toml.io describes the format"),
                );
                return None;
            }
        };
        let credentials = self.credentials(file, doc.get_ref());

        let mut unknown: Vec<Vec<String>> = Vec::new();
        let deserializer = toml::de::Deserializer::from(doc.clone());
        let value: T = match serde_ignored::deserialize(deserializer, |path| unknown.push(segments(&path))) {
            Ok(value) => value,
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                self.push(
                    Diagnostic::at(&file.display, &file.text, span, e.message().trim().to_owned())
                        .hint(format!("see {} for every key and its type", schema_file_hint(&file.path))),
                );
                return None;
            }
        };
        let parsed = Parsed { file, doc, value };
        for path in unknown {
            if credentials.iter().any(|c| path.starts_with(c)) {
                continue;
            }
            let refs: Vec<&str> = path.iter().map(String::as_str).collect();
            let (key, table) = refs.split_last().unwrap_or((&"", &[]));
            let known = known_keys(schema, table);
            let hint = match strsim_best(key, &known) {
                Some(best) => format!("did you mean `{best}`?"),
                None if known.is_empty() => "remove it".to_owned(),
                None => format!("known keys here: {}", known.join(", ")),
            };
            let place = if table.is_empty() {
                "at the top level".to_owned()
            } else {
                format!("in [{}]", dotted(table))
            };
            let d = parsed.diag(&refs, At::Key, format!("unknown key `{key}` {place}")).hint(hint);
            self.push(d);
        }
        Some(parsed)
    }
}

pub(super) fn segments(path: &serde_ignored::Path<'_>) -> Vec<String> {
    use serde_ignored::Path;
    match path {
        Path::Root => Vec::new(),
        Path::Seq { parent, index } => {
            let mut p = segments(parent);
            p.push(index.to_string());
            p
        }
        Path::Map { parent, key } => {
            let mut p = segments(parent);
            p.push(key.clone());
            p
        }
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => {
            segments(parent)
        }
    }
}

pub(super) fn schema_of<T: schemars::JsonSchema>() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(T)).unwrap_or_default()
}

/// The keys the schema allows in the table at `path`.
pub(super) fn known_keys(schema: &serde_json::Value, path: &[&str]) -> Vec<String> {
    // Follows `$ref` and the non-null branch of `anyOf` (how Option<T> is written).
    fn resolve<'a>(
        defs: Option<&'a serde_json::Value>,
        mut node: &'a serde_json::Value,
    ) -> &'a serde_json::Value {
        for _ in 0..8 {
            let next = if let Some(r) = node.get("$ref").and_then(|r| r.as_str()) {
                defs.and_then(|d| d.get(r.trim_start_matches("#/$defs/")))
            } else if let Some(branches) = node.get("anyOf").and_then(|a| a.as_array()) {
                branches.iter().find(|b| b.get("type").and_then(|t| t.as_str()) != Some("null"))
            } else {
                None
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node
    }
    let defs = schema.get("$defs");
    let mut node = resolve(defs, schema);
    for segment in path {
        let next = node
            .get("properties")
            .and_then(|p| p.get(*segment))
            .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()));
        match next {
            Some(n) => node = resolve(defs, n),
            None => return Vec::new(),
        }
    }
    node.get("properties")
        .and_then(|p| p.as_object())
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// The known key closest to a misspelled one, if any is close.
pub(super) fn strsim_best(key: &str, known: &[String]) -> Option<String> {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(key, k), k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k.clone())
}

pub(super) fn schema_file_hint(path: &str) -> &'static str {
    if path.starts_with("images/") {
        "schema/image.schema.json"
    } else if path.starts_with("pools/") {
        "schema/pools.schema.json"
    } else {
        "schema/golden.schema.json"
    }
}

/// A key path as TOML writes it: `versions."2026.10".notes`.
pub(super) fn dotted<S: AsRef<str>>(path: &[S]) -> String {
    let bare =
        |k: &str| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let parts: Vec<String> = path
        .iter()
        .map(|k| k.as_ref())
        .map(|k| if bare(k) { k.to_owned() } else { format!("{k:?}") })
        .collect();
    parts.join(".")
}
