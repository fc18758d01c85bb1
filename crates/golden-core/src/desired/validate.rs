//! Validation: from raw files to a [`DesiredState`] whose references all resolve.
//!
//! Runs before any network call. Every problem is collected (not only the first) and pinned to
//! `file:line:column` through the spans of the TOML parser; messages say what is wrong and a hint
//! says what to do. Checks that depend on a file that failed to parse are skipped, so one syntax
//! error does not cascade into a page of "unknown image" noise.
//!
//! The set of known keys is not written down here: unknown keys are found by `serde_ignored`
//! while deserializing the [`files`](super::files) types, and "did you mean" hints come from
//! the JSON Schema generated from those same types.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::files::{GoldenFile, ImageFile, PoolsFile, SiteFile, VersionFile};
use super::layout::SourceText;
use super::{Compute, DesiredState, Image, Pool, RepoFiles, Settings, Site, Source, Version};
use crate::diag::{Diagnostic, Diagnostics};
use crate::ids::{ImageName, MarkerName, NameKind, PoolName, SiteName, VersionName, check_name};

/// Horizon limits pool and farm names to 64 characters.
const HORIZON_NAME_MAX: usize = 64;

/// Key fragments that mark a credential. Matched case-insensitively against every key.
const CREDENTIAL_KEYS: &[&str] =
    &["password", "passwd", "secret", "token", "apikey", "api_key", "credential", "private_key"];

const CREDENTIAL_HINT: &str = "credentials never go in the repository: golden reads \
    GOLDEN_<SITE>_VCENTER_USER/_PASSWORD and GOLDEN_<SITE>_HORIZON_USER/_PASSWORD/_DOMAIN from the \
    environment (CI secrets); remove it, and rotate it if it was ever pushed";

/// Checks `files` and builds the desired state, or returns every problem found.
pub fn validate(files: &RepoFiles) -> Result<DesiredState, Diagnostics> {
    let mut v = Validator::default();

    let golden = match &files.golden {
        Some(file) => v.parse::<GoldenFile>(file, &schema_of::<GoldenFile>()),
        None => {
            v.diags.push(Diagnostic::file(&files.golden_display, "file not found").hint(
                "a golden repository has golden.toml at its root, plus images/*.toml and \
                     pools/*.toml; check -C",
            ));
            None
        }
    };
    let sites = golden.as_ref().map(|g| v.sites(g));
    let settings = golden.as_ref().and_then(|g| v.settings(g, sites.as_ref()?));

    let image_schema = schema_of::<ImageFile>();
    let mut images = BTreeMap::new();
    // Images whose file exists but failed to parse: references to them are not reported.
    let mut broken_images = BTreeSet::new();
    for file in &files.images {
        let stem = file.path.trim_start_matches("images/").trim_end_matches(".toml");
        match v.parse::<ImageFile>(file, &image_schema) {
            Some(parsed) => {
                if let Some(image) = v.image(stem, &parsed) {
                    images.insert(image.name.clone(), image);
                } else {
                    broken_images.insert(stem.to_owned());
                }
            }
            None => {
                broken_images.insert(stem.to_owned());
            }
        }
    }

    let pools_schema = schema_of::<PoolsFile>();
    let parsed_pools: Vec<_> =
        files.pools.iter().filter_map(|f| v.parse::<PoolsFile>(f, &pools_schema)).collect();
    // Pools are checked against the site names written in golden.toml, valid or not, so an
    // invalid site is reported once rather than again by every pool that names it.
    let site_names: Option<BTreeSet<&str>> =
        golden.as_ref().map(|g| g.value.sites.keys().map(String::as_str).collect());
    let known = Known { sites: site_names.as_ref(), images: &images, broken_images: &broken_images };
    let pools = v.pools(&parsed_pools, &known);

    let mut diags = v.diags;
    match (settings, sites) {
        (Some(settings), Some(sites)) if diags.is_empty() => {
            Ok(DesiredState { revision: files.revision.clone(), settings, sites, images, pools })
        }
        _ => {
            // A repository that produced no diagnostic always yields settings and sites; this
            // guards the invariant should a rule forget to report.
            if diags.is_empty() {
                diags.push(Diagnostic::file(&files.golden_display, "settings or sites are missing"));
            }
            diags.sort();
            Err(diags)
        }
    }
}

/// One parsed file: its typed value plus the spanned document for locating problems.
struct Parsed<'a, T> {
    file: &'a SourceText,
    doc: Spanned<DeTable<'a>>,
    value: T,
}

/// Which part of a `key = value` pair a diagnostic points at.
#[derive(Clone, Copy)]
enum At {
    Key,
    Value,
}

impl<T> Parsed<'_, T> {
    /// The span of `path` in the document; a missing tail resolves to its deepest present parent.
    fn span(&self, path: &[&str], at: At) -> Range<usize> {
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

    fn diag(&self, path: &[&str], at: At, message: impl Into<String>) -> Diagnostic {
        Diagnostic::at(&self.file.display, &self.file.text, self.span(path, at), message)
    }

    fn location(&self, path: &[&str], at: At) -> String {
        self.diag(path, at, "").location()
    }
}

#[derive(Default)]
struct Validator {
    diags: Diagnostics,
}

/// What pools may refer to.
struct Known<'a> {
    sites: Option<&'a BTreeSet<&'a str>>,
    images: &'a BTreeMap<ImageName, Image>,
    broken_images: &'a BTreeSet<String>,
}

impl Validator {
    fn push(&mut self, diagnostic: Diagnostic) {
        self.diags.push(diagnostic);
    }

    /// Parses one file into `T`, reporting syntax errors, type errors, credentials and unknown
    /// keys. `None` when the file cannot be used for further checks.
    fn parse<'a, T: DeserializeOwned>(
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

    /// Reports every credential-looking key or value; returns their paths.
    fn credentials(&mut self, file: &SourceText, doc: &DeTable<'_>) -> Vec<Vec<String>> {
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

    fn sites(&mut self, golden: &Parsed<'_, GoldenFile>) -> BTreeMap<SiteName, Site> {
        let mut sites = BTreeMap::new();
        let mut prefixes: HashMap<String, String> = HashMap::new();
        if golden.value.sites.is_empty() {
            self.push(
                golden
                    .diag(&["sites"], At::Key, "no sites are defined")
                    .hint("add a [sites.<name>] table per Horizon pod: vcenter, horizon, datacenter, cluster, folder, datastore"),
            );
        }
        for (name, raw) in &golden.value.sites {
            let path = ["sites", name.as_str()];
            if let Err(e) = check_name(NameKind::Site, name) {
                self.push(golden.diag(&path, At::Key, e).hint("rename the site table"));
                continue;
            }
            let site_name = SiteName::new(name.clone());
            let prefix = site_name.env_prefix();
            if let Some(other) = prefixes.insert(prefix.clone(), name.clone()) {
                self.push(
                    golden
                        .diag(
                            &path,
                            At::Key,
                            format!("sites `{other}` and `{name}` share the environment prefix {prefix}_"),
                        )
                        .hint("rename one of them: credentials would be ambiguous"),
                );
            }
            if let Some(site) = self.site(golden, &site_name, raw) {
                sites.insert(site_name, site);
            }
        }
        sites
    }

    fn site(&mut self, golden: &Parsed<'_, GoldenFile>, name: &SiteName, raw: &SiteFile) -> Option<Site> {
        let path = |key: &'static str| ["sites", name.as_str(), key];
        let mut missing = Vec::new();
        let mut field = |v: &mut Self, key: &'static str, value: &Option<String>| -> Option<String> {
            match value.as_deref() {
                None => {
                    missing.push(key);
                    None
                }
                Some(s) if s.trim().is_empty() => {
                    v.push(
                        golden
                            .diag(&path(key), At::Value, format!("`{key}` of site `{name}` is empty"))
                            .hint("give the name of the vCenter object"),
                    );
                    None
                }
                Some(s) => Some(s.to_owned()),
            }
        };
        let vcenter = field(self, "vcenter", &raw.vcenter);
        let horizon = field(self, "horizon", &raw.horizon);
        let datacenter = field(self, "datacenter", &raw.datacenter);
        let folder = field(self, "folder", &raw.folder);
        let datastore = field(self, "datastore", &raw.datastore);
        let cluster = field(self, "cluster", &raw.cluster);
        let resource_pool = field(self, "resource_pool", &raw.resource_pool);
        missing.retain(|k| *k != "cluster" && *k != "resource_pool");
        let compute = match (cluster, resource_pool, &raw.cluster, &raw.resource_pool) {
            (Some(c), None, _, None) => Some(Compute::Cluster(c)),
            (None, Some(p), None, _) => Some(Compute::ResourcePool(p)),
            (_, _, Some(_), Some(_)) => {
                self.push(
                    golden
                        .diag(
                            &path("resource_pool"),
                            At::Key,
                            format!("site `{name}` sets both `cluster` and `resource_pool`"),
                        )
                        .hint(
                            "keep one: base VMs go to the cluster's root resource pool or to the named pool",
                        ),
                );
                None
            }
            (_, _, None, None) => {
                missing.push("cluster or resource_pool");
                None
            }
            _ => None, // an empty value, already reported
        };
        if !missing.is_empty() {
            self.push(
                golden
                    .diag(&["sites", name.as_str()], At::Key, format!("site `{name}` is missing {}", missing.join(", ")))
                    .hint("every site needs vcenter, horizon, datacenter, cluster or resource_pool, folder and datastore"),
            );
        }
        for (key, url) in [("vcenter", &vcenter), ("horizon", &horizon)] {
            if let Some(url) = url {
                if let Err(e) = check_url(url) {
                    self.push(
                        golden
                            .diag(&path(key), At::Value, format!("`{key}` of site `{name}` {e}"))
                            .hint("write the base URL, e.g. https://vc-hq.corp.example"),
                    );
                }
            }
        }
        if let Some(ca) = &raw.ca_file {
            if ca.trim().is_empty() {
                self.push(
                    golden
                        .diag(&path("ca_file"), At::Value, format!("`ca_file` of site `{name}` is empty"))
                        .hint("remove it or name a PEM file"),
                );
            }
        }
        Some(Site {
            name: name.clone(),
            vcenter: vcenter?,
            horizon: horizon?,
            datacenter: datacenter?,
            compute: compute?,
            folder: folder?,
            datastore: datastore?,
            ca_file: raw.ca_file.clone(),
        })
    }

    fn settings(
        &mut self,
        golden: &Parsed<'_, GoldenFile>,
        sites: &BTreeMap<SiteName, Site>,
    ) -> Option<Settings> {
        let raw = &golden.value.settings;
        let mut ok = true;
        if raw.library.trim().is_empty() {
            self.push(
                golden
                    .diag(&["settings", "library"], At::Value, "`library` is empty")
                    .hint("name the Content Library, e.g. \"golden-images\""),
            );
            ok = false;
        }
        if raw.parallelism == 0 || raw.parallelism > 256 {
            self.push(
                golden
                    .diag(
                        &["settings", "parallelism"],
                        At::Value,
                        format!("`parallelism` is {}; it must be between 1 and 256", raw.parallelism),
                    )
                    .hint("8 is a good start"),
            );
            ok = false;
        }
        let source_site = SiteName::new(raw.source_site.clone());
        let site_names: Vec<&str> = golden.value.sites.keys().map(String::as_str).collect();
        if !golden.value.sites.contains_key(&raw.source_site) {
            self.push(
                golden
                    .diag(
                        &["settings", "source_site"],
                        At::Value,
                        format!("`source_site` names `{}`, which is not a site", raw.source_site),
                    )
                    .hint(one_of("sites", &site_names)),
            );
            ok = false;
        } else if !sites.contains_key(&source_site) {
            ok = false; // the site itself is invalid and reported
        }
        ok.then(|| Settings {
            library: raw.library.clone(),
            source_site,
            parallelism: raw.parallelism,
            keep_previous: raw.keep_previous,
        })
    }

    fn image(&mut self, stem: &str, parsed: &Parsed<'_, ImageFile>) -> Option<Image> {
        let before = self.diags.len();
        if let Err(e) = check_name(NameKind::Image, stem) {
            self.push(
                parsed
                    .diag(&[], At::Key, format!("{e} (the image name is the file name)"))
                    .hint("rename the file"),
            );
            return None;
        }
        let raw = &parsed.value;
        let names: Vec<&str> = raw.versions.keys().map(String::as_str).collect();
        let mut versions = BTreeMap::new();
        for (name, version) in &raw.versions {
            if let Err(e) = check_name(NameKind::Version, name) {
                self.push(parsed.diag(&["versions", name], At::Key, e).hint("rename the version"));
                continue;
            }
            if let Some(v) = self.version(stem, name, version, &names, parsed) {
                versions.insert(v.name.clone(), v);
            }
        }
        self.cycles(stem, raw, parsed);

        let mut markers = BTreeMap::new();
        for (marker, target) in &raw.markers {
            let path = ["markers", marker.as_str()];
            if let Err(e) = check_name(NameKind::Marker, marker) {
                self.push(parsed.diag(&path, At::Key, e).hint("rename the marker"));
                continue;
            }
            if !raw.versions.contains_key(target) {
                self.push(
                    parsed
                        .diag(&path, At::Value, format!("marker `{marker}` points at version `{target}`, which image `{stem}` does not define"))
                        .hint(format!("add [versions.\"{target}\"] or point `{marker}` at one of: {}", list(&names))),
                );
                continue;
            }
            markers.insert(MarkerName::new(marker.clone()), VersionName::new(target.clone()));
        }
        (self.diags.len() == before).then(|| Image {
            name: ImageName::new(stem),
            description: raw.description.clone(),
            versions,
            markers,
        })
    }

    fn version(
        &mut self,
        image: &str,
        name: &str,
        raw: &VersionFile,
        names: &[&str],
        parsed: &Parsed<'_, ImageFile>,
    ) -> Option<Version> {
        let path = |key: &'static str| ["versions", name, key];
        let mut ok = true;
        if let Some(parent) = &raw.parent {
            if parent == name {
                self.push(
                    parsed
                        .diag(
                            &path("parent"),
                            At::Value,
                            format!("version `{name}` of image `{image}` is its own parent"),
                        )
                        .hint("name the version it was built from, or remove `parent`"),
                );
                ok = false;
            } else if !names.contains(&parent.as_str()) {
                self.push(
                    parsed
                        .diag(
                            &path("parent"),
                            At::Value,
                            format!(
                                "parent `{parent}` of version `{name}` is not a version of image `{image}`"
                            ),
                        )
                        .hint(one_of("versions", names)),
                );
                ok = false;
            }
        }
        let source_hint = "use source = { vm = \"<vm>\", snapshot = \"<snapshot>\" } or source = { library_item = \"<item>\" }";
        let source = match &raw.source {
            None => {
                self.push(
                    parsed
                        .diag(
                            &["versions", name],
                            At::Key,
                            format!("version `{name}` of image `{image}` has no source"),
                        )
                        .hint(source_hint),
                );
                None
            }
            Some(s) => {
                let blank = |n: &Option<String>| n.as_ref().is_some_and(|x| x.trim().is_empty());
                let any_blank = blank(&s.vm) || blank(&s.snapshot) || blank(&s.library_item);
                let checked = match (&s.vm, &s.snapshot, &s.library_item) {
                    (Some(_), _, None) | (None, None, Some(_)) if any_blank => {
                        Err(("has an empty name", source_hint.to_owned()))
                    }
                    (Some(vm), snapshot, None) => {
                        Ok(Source::Vm { vm: vm.clone(), snapshot: snapshot.clone() })
                    }
                    (None, None, Some(item)) => Ok(Source::LibraryItem { name: item.clone() }),
                    (None, Some(_), _) => Err(("names a snapshot but no `vm`", source_hint.to_owned())),
                    (Some(_), _, Some(_)) => {
                        Err(("names both a `vm` and a `library_item`", format!("keep one; {source_hint}")))
                    }
                    (None, None, None) => Err(("is empty", source_hint.to_owned())),
                };
                match checked {
                    Ok(source) => Some(source),
                    Err((what, hint)) => {
                        let message = format!("the source of version `{name}` {what}");
                        self.push(parsed.diag(&path("source"), At::Value, message).hint(hint));
                        None
                    }
                }
            }
        };
        Some(Version {
            name: VersionName::new(name),
            parent: raw.parent.clone().map(VersionName::new),
            source: source?,
            notes: raw.notes.clone(),
        })
        .filter(|_| ok)
    }

    /// Reports each cycle of the parent relation once, at the smallest version in it.
    fn cycles(&mut self, image: &str, raw: &ImageFile, parsed: &Parsed<'_, ImageFile>) {
        let parent = |v: &str| raw.versions.get(v).and_then(|x| x.parent.as_deref()).filter(|p| *p != v);
        let mut reported: BTreeSet<&str> = BTreeSet::new();
        for start in raw.versions.keys() {
            let mut chain: Vec<&str> = vec![start];
            let mut current = start.as_str();
            while let Some(p) = parent(current) {
                if let Some(pos) = chain.iter().position(|c| *c == p) {
                    let cycle = &chain[pos..];
                    let first = cycle.iter().min().copied().unwrap_or(p);
                    if cycle.iter().all(|c| !reported.contains(c)) {
                        reported.extend(cycle.iter().copied());
                        // Walk the cycle from its smallest member, for a stable message.
                        let mut shown = vec![first];
                        let mut at = first;
                        while let Some(next) = parent(at).filter(|n| *n != first) {
                            shown.push(next);
                            at = next;
                        }
                        shown.push(first);
                        self.push(
                            parsed
                                .diag(
                                    &["versions", first, "parent"],
                                    At::Value,
                                    format!(
                                        "the version tree of image `{image}` has a cycle: {}",
                                        shown.join(" → ")
                                    ),
                                )
                                .hint("a version's parent must be an older version; break the cycle"),
                        );
                    }
                    break;
                }
                chain.push(p);
                current = p;
            }
        }
    }

    fn pools(&mut self, files: &[Parsed<'_, PoolsFile>], known: &Known<'_>) -> BTreeMap<PoolName, Pool> {
        let mut pools = BTreeMap::new();
        let mut seen_names: HashMap<&str, String> = HashMap::new();
        let mut seen_horizon: HashMap<(String, String), (String, String)> = HashMap::new();
        for parsed in files {
            for (name, raw) in &parsed.value.pools {
                let path = |key: &'static str| ["pools", name.as_str(), key];
                let key_path = ["pools", name.as_str()];
                if let Err(e) = check_name(NameKind::Pool, name) {
                    self.push(parsed.diag(&key_path, At::Key, e).hint("rename the pool table"));
                    continue;
                }
                if let Some(first) = seen_names.get(name.as_str()) {
                    self
                        .push(parsed.diag(&key_path, At::Key, format!("pool `{name}` is defined twice")).hint(
                        format!(
                            "the first definition is at {first}; pool names are unique across pools/*.toml"
                        ),
                    ));
                    continue;
                }
                seen_names.insert(name, parsed.location(&key_path, At::Key));
                let before = self.diags.len();

                if let Some(sites) = known.sites {
                    if !sites.contains(raw.site.as_str()) {
                        let names: Vec<&str> = sites.iter().copied().collect();
                        self.push(
                            parsed
                                .diag(
                                    &path("site"),
                                    At::Value,
                                    format!(
                                        "pool `{name}` names site `{}`, which golden.toml does not define",
                                        raw.site
                                    ),
                                )
                                .hint(one_of("sites", &names)),
                        );
                    }
                }
                match known.images.get(raw.image.as_str()) {
                    Some(image) => {
                        if !image.markers.contains_key(raw.marker.as_str()) {
                            let names: Vec<&str> = image.markers.keys().map(MarkerName::as_str).collect();
                            self.push(
                                parsed
                                    .diag(&path("marker"), At::Value, format!("pool `{name}` follows marker `{}`, which image `{}` does not have", raw.marker, raw.image))
                                    .hint(format!("add `{} = \"<version>\"` to [markers] in images/{}.toml, or use one of: {}", raw.marker, raw.image, list(&names))),
                            );
                        }
                    }
                    None if known.broken_images.contains(&raw.image) => {}
                    None => {
                        let names: Vec<&str> = known.images.keys().map(ImageName::as_str).collect();
                        self.push(
                            parsed
                                .diag(
                                    &path("image"),
                                    At::Value,
                                    format!(
                                        "pool `{name}` names image `{}`, which has no file images/{}.toml",
                                        raw.image, raw.image
                                    ),
                                )
                                .hint(one_of("images", &names)),
                        );
                    }
                }

                let horizon_name = raw.horizon_name.clone().unwrap_or_else(|| name.clone());
                let horizon_at = if raw.horizon_name.is_some() {
                    (path("horizon_name").to_vec(), At::Value)
                } else {
                    (key_path.to_vec(), At::Key)
                };
                if horizon_name.trim().is_empty() || horizon_name.chars().count() > HORIZON_NAME_MAX {
                    self.push(
                        parsed
                            .diag(
                                &horizon_at.0,
                                horizon_at.1,
                                format!(
                                    "Horizon name of pool `{name}` must be 1 to {HORIZON_NAME_MAX} characters"
                                ),
                            )
                            .hint("use the pool's name (ID) as Horizon shows it"),
                    );
                } else {
                    let key = (raw.site.clone(), horizon_name.to_ascii_lowercase());
                    let here = parsed.location(&horizon_at.0, horizon_at.1);
                    if let Some((other, at)) = seen_horizon.get(&key) {
                        self.push(
                            parsed
                                .diag(&horizon_at.0, horizon_at.1, format!("pools `{other}` and `{name}` both bind Horizon pool `{horizon_name}` at site `{}`", raw.site))
                                .hint(format!("`{other}` is at {at}; one Horizon pool can follow only one marker")),
                        );
                    } else {
                        seen_horizon.insert(key, (name.clone(), here));
                    }
                }

                if self.diags.len() == before {
                    pools.insert(
                        PoolName::new(name.clone()),
                        Pool {
                            name: PoolName::new(name.clone()),
                            site: SiteName::new(raw.site.clone()),
                            kind: raw.kind,
                            horizon_name,
                            image: ImageName::new(raw.image.clone()),
                            marker: MarkerName::new(raw.marker.clone()),
                            wave: raw.wave,
                            logoff: raw.logoff,
                        },
                    );
                }
            }
        }
        pools
    }
}

/// What is wrong with a string that should be a credential-free base URL.
fn check_url(raw: &str) -> Result<(), String> {
    let url = url::Url::parse(raw).map_err(|e| format!("is not a URL ({e})"))?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(format!("uses scheme `{}`; use https (or http for a lab)", url.scheme()));
    }
    if url.host().is_none() {
        return Err("has no host".to_owned());
    }
    Ok(())
}

/// Why a string value looks like a credential, without repeating the value.
fn credential_value(s: &str) -> Option<&'static str> {
    if let Ok(url) = url::Url::parse(s) {
        if url.password().is_some() {
            return Some("is a URL with a password in it");
        }
    }
    let parts: Vec<&str> = s.split('.').collect();
    let is_jwt = s.starts_with("eyJ") && parts.len() == 3 && parts.iter().all(|p| p.len() >= 8);
    is_jwt.then_some("looks like a token")
}

fn segments(path: &serde_ignored::Path<'_>) -> Vec<String> {
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

fn schema_of<T: schemars::JsonSchema>() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(T)).unwrap_or_default()
}

/// The keys the schema allows in the table at `path`.
fn known_keys(schema: &serde_json::Value, path: &[&str]) -> Vec<String> {
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
fn strsim_best(key: &str, known: &[String]) -> Option<String> {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(key, k), k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k.clone())
}

fn schema_file_hint(path: &str) -> &'static str {
    if path.starts_with("images/") {
        "schema/image.schema.json"
    } else if path.starts_with("pools/") {
        "schema/pools.schema.json"
    } else {
        "schema/golden.schema.json"
    }
}

/// A key path as TOML writes it: `versions."2026.10".notes`.
fn dotted<S: AsRef<str>>(path: &[S]) -> String {
    let bare =
        |k: &str| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let parts: Vec<String> = path
        .iter()
        .map(|k| k.as_ref())
        .map(|k| if bare(k) { k.to_owned() } else { format!("{k:?}") })
        .collect();
    parts.join(".")
}

fn list(names: &[&str]) -> String {
    if names.is_empty() { "(none defined)".to_owned() } else { names.join(", ") }
}

fn one_of(what: &str, names: &[&str]) -> String {
    format!("known {what}: {}", list(names))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_values_are_recognised_without_false_alarms() {
        assert!(credential_value("https://admin:hunter2@vc.example").is_some());
        assert!(
            credential_value("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N")
                .is_some()
        );
        assert!(credential_value("https://vc.example").is_none());
        assert!(credential_value("2026.10").is_none());
    }

    #[test]
    fn known_keys_follow_refs_and_maps() {
        let schema = schema_of::<GoldenFile>();
        let keys = known_keys(&schema, &["sites", "hq"]);
        assert!(keys.contains(&"datastore".to_owned()), "{keys:?}");
        assert!(known_keys(&schema, &["settings"]).contains(&"parallelism".to_owned()));
        assert_eq!(
            strsim_best("paralelism", &known_keys(&schema, &["settings"])).as_deref(),
            Some("parallelism")
        );
    }
}
