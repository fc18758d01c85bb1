//! `pools/*.toml`: pools and farms bound to a site, an image and one of its markers, each
//! Horizon pool bound once.

use std::collections::{BTreeMap, HashMap};

use super::parse::{At, Parsed};
use super::{Known, Validator, list, one_of};
use crate::desired::Pool;
use crate::desired::files::PoolsFile;
use crate::ids::{HorizonName, ImageName, MarkerName, NameKind, PoolName, SiteName, check_name};

/// Horizon limits pool and farm names to 64 characters.
const HORIZON_NAME_MAX: usize = 64;

impl Validator {
    pub(super) fn pools(
        &mut self,
        files: &[Parsed<'_, PoolsFile>],
        known: &Known<'_>,
    ) -> BTreeMap<PoolName, Pool> {
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

                let window = self.window(parsed, &path("window"), raw.window.as_ref());
                let canary = self.canary(parsed, &path("canary"), name, raw.kind, raw.canary);
                if self.diags.len() == before {
                    pools.insert(
                        PoolName::new(name.clone()),
                        Pool {
                            name: PoolName::new(name.clone()),
                            site: SiteName::new(raw.site.clone()),
                            kind: raw.kind,
                            horizon_name: HorizonName::new(horizon_name),
                            image: ImageName::new(raw.image.clone()),
                            marker: MarkerName::new(raw.marker.clone()),
                            wave: raw.wave,
                            logoff: raw.logoff,
                            window,
                            canary: canary.flatten(),
                        },
                    );
                }
            }
        }
        pools
    }
}
