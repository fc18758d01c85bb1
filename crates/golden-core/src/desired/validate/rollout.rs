//! Safe-rollout keys wherever they appear: `window` (sites and pools), `timezone` (sites),
//! `canary` (pools) and `[policy.<marker>]` (images).

use std::collections::BTreeMap;

use super::parse::{At, Parsed};
use super::{Validator, list};
use crate::desired::files::ImageFile;
use crate::desired::{Policy, PoolKind, Soak, Window, Zone};
use crate::ids::{MarkerName, NameKind, check_name};

impl Validator {
    /// A `window = "..."` at `path`, when it reads.
    pub(super) fn window<T>(
        &mut self,
        parsed: &Parsed<'_, T>,
        path: &[&str],
        text: Option<&String>,
    ) -> Option<Window> {
        let text = text?;
        match text.parse::<Window>() {
            Ok(w) => Some(w),
            Err(e) => {
                self.push(parsed.diag(path, At::Value, e).hint(
                    "days: Mon..Sun, a range (Mon-Fri), a list (Sat,Sun) or `daily`; times HH:MM in the site's timezone",
                ));
                None
            }
        }
    }

    /// A site's `timezone`, UTC when absent; `None` when it does not read.
    pub(super) fn timezone<T>(
        &mut self,
        parsed: &Parsed<'_, T>,
        path: &[&str],
        text: Option<&String>,
    ) -> Option<Zone> {
        let Some(name) = text else { return Some(Zone::utc()) };
        match name.parse::<Zone>() {
            Ok(z) => Some(z),
            Err(e) => {
                let hint = match Zone::suggest(name) {
                    Some(near) => format!("did you mean `{near}`?"),
                    None => {
                        "use an IANA time zone name such as `Europe/Berlin` or `America/New_York`".to_owned()
                    }
                };
                self.push(parsed.diag(path, At::Value, e).hint(hint));
                None
            }
        }
    }

    /// A pool's `canary`: desktop pools only (Horizon's selective push), at least one machine.
    pub(super) fn canary<T>(
        &mut self,
        parsed: &Parsed<'_, T>,
        path: &[&str],
        pool: &str,
        kind: PoolKind,
        canary: Option<u32>,
    ) -> Option<Option<u32>> {
        match canary {
            None => Some(None),
            Some(0) => {
                self.push(
                    parsed
                        .diag(path, At::Value, format!("`canary` of pool `{pool}` is 0"))
                        .hint("give the number of machines to push first, or remove `canary`"),
                );
                None
            }
            Some(_) if kind == PoolKind::Farm => {
                self.push(
                    parsed
                        .diag(path, At::Key, format!("`{pool}` is a farm; canaries are for desktop pools"))
                        .hint("remove `canary`: Horizon's selective push is for desktop pools"),
                );
                None
            }
            Some(n) => Some(Some(n)),
        }
    }

    /// `[policy.<marker>]` of an image: each names a marker of the image and an `after` marker
    /// of it, no marker waits for itself, directly or through others.
    pub(super) fn policies(
        &mut self,
        stem: &str,
        parsed: &Parsed<'_, ImageFile>,
    ) -> BTreeMap<MarkerName, Policy> {
        let raw = &parsed.value;
        let markers: Vec<&str> = raw.markers.keys().map(String::as_str).collect();
        let mut out = BTreeMap::new();
        for (marker, rule) in &raw.policy {
            let at = |key: &'static str| ["policy", marker.as_str(), key];
            if let Err(e) = check_name(NameKind::Marker, marker) {
                self.push(parsed.diag(&["policy", marker], At::Key, e).hint("rename the policy table"));
                continue;
            }
            if !raw.markers.contains_key(marker) {
                self.push(
                    parsed
                        .diag(&["policy", marker], At::Key, format!("[policy.{marker}] of image `{stem}` names marker `{marker}`, which the image does not have"))
                        .hint(format!("name one of its markers: {}", list(&markers))),
                );
                continue;
            }
            let Some(after) = &rule.after else {
                self.push(
                    parsed
                        .diag(
                            &["policy", marker],
                            At::Key,
                            format!("[policy.{marker}] of image `{stem}` has no `after`"),
                        )
                        .hint(format!(
                            "name the marker a version must pass first, e.g. after = \"pilot\"; one of: {}",
                            list(&markers)
                        )),
                );
                continue;
            };
            if after == marker {
                self.push(
                    parsed
                        .diag(
                            &at("after"),
                            At::Value,
                            format!("marker `{marker}` of image `{stem}` would wait for itself"),
                        )
                        .hint("name another marker, e.g. after = \"pilot\""),
                );
                continue;
            }
            if !raw.markers.contains_key(after) {
                self.push(
                    parsed
                        .diag(&at("after"), At::Value, format!("[policy.{marker}] waits for marker `{after}`, which image `{stem}` does not have"))
                        .hint(format!("one of: {}", list(&markers))),
                );
                continue;
            }
            let soak = match rule.soak.as_deref().map(str::parse::<Soak>) {
                None => Soak::default(),
                Some(Ok(s)) => s,
                Some(Err(e)) => {
                    self.push(parsed.diag(&at("soak"), At::Value, e).hint("e.g. soak = \"72h\""));
                    continue;
                }
            };
            out.insert(
                MarkerName::new(marker.clone()),
                Policy { after: MarkerName::new(after.clone()), soak },
            );
        }
        // A chain that comes back to where it started would hold every marker on it forever.
        for start in out.keys() {
            let mut at = start;
            for _ in 0..out.len() {
                let Some(next) = out.get(at).map(|p| &p.after) else { break };
                if next == start {
                    self.push(
                        parsed
                            .diag(&["policy", start.as_str()], At::Key, format!("the promotion rules of image `{stem}` form a loop through marker `{start}`: no marker on it could ever move"))
                            .hint("one marker of the chain must have no [policy] (usually the first to move, e.g. pilot)"),
                    );
                    return BTreeMap::new();
                }
                at = next;
            }
        }
        out
    }
}
