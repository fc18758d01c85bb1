//! Credentials never go in the repository: a key that names one, a URL with a password, a
//! value shaped like a token. Messages name the key, never the value.

use toml::de::{DeTable, DeValue};

use super::Validator;
use super::parse::dotted;
use crate::desired::layout::SourceText;
use crate::diag::Diagnostic;

/// Key fragments that mark a credential. Matched case-insensitively against every key.
const CREDENTIAL_KEYS: &[&str] =
    &["password", "passwd", "secret", "token", "apikey", "api_key", "credential", "private_key"];

pub(super) const CREDENTIAL_HINT: &str = "credentials never go in the repository: golden reads \
    GOLDEN_<SITE>_VCENTER_USER/_PASSWORD and GOLDEN_<SITE>_HORIZON_USER/_PASSWORD/_DOMAIN from the \
    environment (CI secrets); remove it, and rotate it if it was ever pushed";

impl Validator {
    /// Reports every credential-looking key or value; returns their paths.
    pub(super) fn credentials(&mut self, file: &SourceText, doc: &DeTable<'_>) -> Vec<Vec<String>> {
        let mut found = Vec::new();
        let mut stack: Vec<(Vec<String>, &DeTable<'_>)> = vec![(Vec::new(), doc)];
        while let Some((path, table)) = stack.pop() {
            for (key, value) in table {
                let mut here = path.clone();
                here.push(key.get_ref().to_string());
                let lower = key.get_ref().to_ascii_lowercase();
                if CREDENTIAL_KEYS.iter().any(|c| lower.contains(c)) {
                    self.push(
                        Diagnostic::at(
                            &file.display,
                            &file.text,
                            key.span(),
                            format!("`{}` looks like a credential", dotted(&here)),
                        )
                        .hint(CREDENTIAL_HINT),
                    );
                    found.push(here);
                    continue;
                }
                let mut values = vec![value];
                while let Some(value) = values.pop() {
                    match value.get_ref() {
                        DeValue::Table(t) => stack.push((here.clone(), t)),
                        DeValue::Array(a) => values.extend(a.iter()),
                        DeValue::String(s) => {
                            if let Some(what) = credential_value(s) {
                                self.push(
                                    Diagnostic::at(
                                        &file.display,
                                        &file.text,
                                        value.span(),
                                        format!("the value of `{}` {what}", dotted(&here)),
                                    )
                                    .hint(CREDENTIAL_HINT),
                                );
                                found.push(here.clone());
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        found
    }
}

/// Why a string value looks like a credential, without repeating the value.
pub(super) fn credential_value(s: &str) -> Option<&'static str> {
    if let Ok(url) = url::Url::parse(s) {
        if url.password().is_some() {
            return Some("is a URL with a password in it");
        }
    }
    let parts: Vec<&str> = s.split('.').collect();
    let is_jwt = s.starts_with("eyJ") && parts.len() == 3 && parts.iter().all(|p| p.len() >= 8);
    is_jwt.then_some("looks like a token")
}
