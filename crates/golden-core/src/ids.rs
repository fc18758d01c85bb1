//! Typed identifiers for the things golden names: sites, images, versions, markers and pools.
//!
//! Every name in the desired state gets its own type so that a site name can never be passed
//! where a pool name is expected. The types are plain owned strings with serde and `Display`;
//! there is deliberately no `Deref<Target = String>`: code that needs the text asks for it with
//! `as_str()`.

/// Declares a newtype over `String` with serde (transparent), schemars, `Display`, `new` and
/// `as_str`. Used for the names of the desired state here and for the opaque ids of live state.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
        )]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}
pub(crate) use string_id;

string_id!(
    /// A git commit id, in full hex.
    CommitId
);

impl CommitId {
    /// The first 12 characters, as commits are shown to people.
    pub fn short(&self) -> &str {
        self.0.char_indices().nth(12).map_or(&self.0, |(end, _)| &self.0[..end])
    }
}

string_id!(
    /// A desktop pool or farm as Horizon names it (`horizon_name`); one per site, compared
    /// without case by Horizon.
    HorizonName
);

string_id!(
    /// A site: one Horizon pod plus the vCenter that hosts its desktops (`[sites.<name>]`).
    SiteName
);
string_id!(
    /// A golden image, named by the stem of its file under `images/`.
    ImageName
);
string_id!(
    /// An immutable build of an image (`[versions."<name>"]`).
    VersionName
);
string_id!(
    /// A label unique within one image that points at one version (`[markers]`).
    MarkerName
);
string_id!(
    /// A desktop pool or farm binding in the repo (`[pools.<name>]`).
    PoolName
);

/// A version of an image, shown as people write it: `win11-ent@2026.10`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VersionRef {
    pub image: ImageName,
    pub version: VersionName,
}

impl VersionRef {
    pub fn new(image: &ImageName, version: &VersionName) -> Self {
        VersionRef { image: image.clone(), version: version.clone() }
    }
}

impl std::fmt::Display for VersionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.image, self.version)
    }
}

/// What kind of thing a name is, for error messages and for the rules in [`check_name`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameKind {
    Site,
    Image,
    Version,
    Marker,
    Pool,
}

impl NameKind {
    pub fn noun(self) -> &'static str {
        match self {
            NameKind::Site => "site",
            NameKind::Image => "image",
            NameKind::Version => "version",
            NameKind::Marker => "marker",
            NameKind::Pool => "pool",
        }
    }
}

/// Checks that `name` is usable as a name of `kind`, returning what is wrong with it.
///
/// Names end up in vCenter object names, library item names and environment variable names, so
/// they are kept to ASCII letters, digits, `-`, `_` and (except for sites) `.`, starting with a
/// letter or digit. Sites may not contain `.` because their name becomes part of
/// `GOLDEN_<SITE>_*` environment variables.
pub fn check_name(kind: NameKind, name: &str) -> Result<(), String> {
    const MAX: usize = 64;
    if name.is_empty() {
        return Err(format!("{} name is empty", kind.noun()));
    }
    if name.len() > MAX {
        return Err(format!(
            "{} name `{name}` is {} characters long; the limit is {MAX}",
            kind.noun(),
            name.len()
        ));
    }
    let first_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    let allowed =
        |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || (c == '.' && kind != NameKind::Site);
    if !first_ok || !name.chars().all(allowed) {
        let extra = if kind == NameKind::Site { "" } else { ", `.`" };
        return Err(format!(
            "{} name `{}` is ill-formed: use ASCII letters, digits, `-`, `_`{extra}, starting with a letter or digit",
            kind.noun(),
            name.escape_debug()
        ));
    }
    Ok(())
}

impl SiteName {
    /// The prefix of this site's environment variables: upper-cased, `-` becomes `_`.
    pub fn env_prefix(&self) -> String {
        format!("GOLDEN_{}", self.0.to_ascii_uppercase().replace('-', "_"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_is_shown_by_its_first_twelve_characters() {
        assert_eq!(CommitId::new("0123456789abcdef0123").short(), "0123456789ab");
        assert_eq!(CommitId::new("abc").short(), "abc");
        // Never a slice through a character, whatever a plan file holds.
        assert_eq!(CommitId::new("ééééééééééééé").short(), "éééééééééééé");
    }

    #[test]
    fn names_are_checked_per_kind() {
        assert!(check_name(NameKind::Version, "2026.10").is_ok());
        assert!(check_name(NameKind::Site, "eu-west_2").is_ok());
        assert!(check_name(NameKind::Site, "eu.west").is_err());
        assert!(check_name(NameKind::Image, "").is_err());
        assert!(check_name(NameKind::Image, "-win").is_err());
        assert!(check_name(NameKind::Image, "win 11").is_err());
        assert!(check_name(NameKind::Pool, &"p".repeat(65)).is_err());
    }

    #[test]
    fn env_prefix_upper_cases_and_replaces_dashes() {
        assert_eq!(SiteName::new("eu-west").env_prefix(), "GOLDEN_EU_WEST");
    }
}
