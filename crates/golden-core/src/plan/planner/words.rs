//! Lists of names in reasons and warnings, as people write them.

use std::collections::BTreeSet;

/// `eu is`, `eu and us are`, `apac, eu and us are`: every name, for warnings about sites.
pub(super) fn are(names: &BTreeSet<&str>) -> String {
    format!("{} {}", all(names.iter().copied()), if names.len() == 1 { "is" } else { "are" })
}

/// `eu`, `eu and hq`, `apac, eu and hq`: every name.
pub(super) fn all<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.into_iter().collect();
    match names.as_slice() {
        [rest @ .., last] if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.concat(),
    }
}

/// `a, b, c and 97 more`: the first three of `names` (distinct, in any order) and how many
/// more. A version a thousand pools need is named by three of them, found without sorting all.
pub(super) fn list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    const SHOWN: usize = 3;
    let mut names: Vec<&str> = names.into_iter().collect();
    if names.len() > SHOWN {
        names.select_nth_unstable(SHOWN - 1);
    }
    let (count, first) = (names.len(), names.len().min(SHOWN));
    let shown = &mut names[..first];
    shown.sort_unstable();
    let shown = shown.join(", ");
    match count.saturating_sub(SHOWN) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}
