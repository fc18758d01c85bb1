//! The explanations of the binary's errors ([`Explain`]: a kind for the exit code, hints),
//! and [`explain`], which finds the explanation of any error in a chain.

use golden_core::explain::{Explain, Kind};

use crate::apply::ApplyFailed;
use crate::apply::StepError;
use crate::connect::ConnectError;
use crate::desired::LoadError;
use crate::gather::GatherError;
use crate::git::GitError;
use crate::horizon::HorizonError;
use crate::load::{PlanErrors, StalePlan};
use crate::lock::LockError;
use crate::trusted::EndpointsChanged;
use crate::vcenter::VcenterError;

/// The explanation of `e`, when it is one of golden's errors.
pub fn explain<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a dyn Explain> {
    macro_rules! first_of {
        ($($t:ty),* $(,)?) => {
            $( if let Some(x) = e.downcast_ref::<$t>() { return Some(x); } )*
        };
    }
    first_of!(
        StalePlan,
        EndpointsChanged,
        LockError,
        ApplyFailed,
        PlanErrors,
        golden_core::plan::PlanError,
        LoadError,
        GitError,
        GatherError,
        ConnectError,
        VcenterError,
        HorizonError,
        StepError,
    );
    None
}

/// The kind of a chain of errors: stale when any error in it says so.
pub fn kind(err: &anyhow::Error) -> Kind {
    let stale = err.chain().filter_map(explain).any(|e| e.kind() == Kind::StalePlan);
    if stale { Kind::StalePlan } else { Kind::Failure }
}

/// Every hint of a chain of errors, each once, outermost first.
pub fn hints(err: &anyhow::Error) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for hint in err.chain().filter_map(explain).flat_map(|e| e.hints()) {
        if !out.contains(&hint) {
            out.push(hint);
        }
    }
    out
}

impl Explain for GitError {
    fn hints(&self) -> Vec<String> {
        match self {
            GitError::NotARepository { .. } => {
                vec!["run `git init`, or drop `--ref` to read the working tree".to_owned()]
            }
            GitError::RefNotFound { .. } => vec![
                "give a branch, tag, commit id or expression such as HEAD~1; `git log --oneline` lists commits"
                    .to_owned(),
            ],
            GitError::OutsideWorkTree { .. } | GitError::Read { .. } | GitError::Symlink { .. } => Vec::new(),
        }
    }
}

impl Explain for LoadError {
    fn hints(&self) -> Vec<String> {
        match self {
            LoadError::Git(e) => e.hints(),
            LoadError::Read(_) | LoadError::Invalid(_) => Vec::new(),
        }
    }
}

impl Explain for ConnectError {
    fn hints(&self) -> Vec<String> {
        match self {
            ConnectError::MissingVariable { name, .. } => vec![format!(
                "export {name}=...; in CI, store it as a secret and pass it in the job's environment"
            )],
            ConnectError::BadUrl { .. } => {
                vec!["give the base URL, e.g. https://vc-eu.corp.example".to_owned()]
            }
            ConnectError::CaFile { .. } => vec!["ca_file is relative to the repository root".to_owned()],
            ConnectError::Client { .. } => Vec::new(),
        }
    }
}

/// What to do about a redirect: name the real server, if it is the one meant.
fn redirect_hint(site: &crate::ids::SiteName, product: &str, location: &str) -> String {
    format!(
        "if {location} is where the {product} of site `{site}` really is, write its base URL as the site's \
         `{product}` in golden.toml (or in {}_{}_URL)",
        site.env_prefix(),
        product.to_ascii_uppercase()
    )
}

impl Explain for VcenterError {
    fn hints(&self) -> Vec<String> {
        match self {
            VcenterError::Login { site, .. } => vec![format!(
                "check {0}_VCENTER_USER and {0}_VCENTER_PASSWORD",
                site.env_prefix()
            )],
            VcenterError::Transport { site, .. } => vec![format!(
                "check that the vcenter URL of site `{site}` is right and reachable ({}_VCENTER_URL overrides golden.toml)",
                site.env_prefix()
            )],
            VcenterError::Redirect { site, location, .. } => vec![redirect_hint(site, "vcenter", location)],
            VcenterError::NotFound { .. } | VcenterError::Ambiguous { .. } => vec![
                "check the site's placement in golden.toml: datacenter, cluster or resource_pool, folder, datastore"
                    .to_owned(),
            ],
            VcenterError::Timeout { .. } => {
                vec!["vCenter may still finish it: run golden again, and it adopts what is there".to_owned()]
            }
            VcenterError::Http { .. }
            | VcenterError::Fault { .. }
            | VcenterError::Failed { .. }
            | VcenterError::Protocol { .. } => Vec::new(),
        }
    }
}

impl Explain for HorizonError {
    fn hints(&self) -> Vec<String> {
        match self {
            HorizonError::Login { site, .. } | HorizonError::MissingDomain { site } => vec![format!(
                "check {0}_HORIZON_USER, {0}_HORIZON_PASSWORD and {0}_HORIZON_DOMAIN",
                site.env_prefix()
            )],
            HorizonError::Transport { site, .. } => vec![format!(
                "check that the horizon URL of site `{site}` is right and reachable ({}_HORIZON_URL overrides golden.toml)",
                site.env_prefix()
            )],
            HorizonError::Redirect { site, location, .. } => vec![redirect_hint(site, "horizon", location)],
            HorizonError::Unreasonable { site, .. } => vec![format!(
                "check that the horizon URL of site `{site}` points at a horizon connection server ({}_HORIZON_URL overrides golden.toml)",
                site.env_prefix()
            )],
            HorizonError::TooOld { site, minimum, .. } => {
                vec![format!("upgrade the connection servers of site `{site}` to horizon {minimum} or later")]
            }
            HorizonError::Api { .. } | HorizonError::Decode { .. } | HorizonError::Refused { .. } => {
                Vec::new()
            }
        }
    }
}

impl Explain for StepError {
    fn hints(&self) -> Vec<String> {
        match self {
            StepError::Vcenter(e) => e.hints(),
            StepError::Horizon(e) => e.hints(),
            StepError::Timeout { .. } => {
                vec![
                    "every step is safe to repeat: apply again, and it follows what is still running"
                        .to_owned(),
                ]
            }
            StepError::Failed(_) | StepError::UnknownSite(_) => Vec::new(),
        }
    }
}

impl Explain for GatherError {
    fn hints(&self) -> Vec<String> {
        match self {
            GatherError::Connect(e) => e.hints(),
            GatherError::Vcenter(e) => e.hints(),
            GatherError::Horizon(e) => e.hints(),
            GatherError::TwoCopies { .. } => vec![
                "keep the one golden deployed (named golden-<image>-<version>, with the snapshot golden-<version>) and remove the tag of category `golden` from the other, or delete it"
                    .to_owned(),
            ],
        }
    }
}

impl Explain for PlanErrors {}

impl Explain for StalePlan {
    fn kind(&self) -> Kind {
        Kind::StalePlan
    }

    fn hints(&self) -> Vec<String> {
        vec![
            "the world moved since the plan was made: run `golden plan` again and apply the new plan"
                .to_owned(),
        ]
    }
}

impl Explain for ApplyFailed {
    fn hints(&self) -> Vec<String> {
        vec!["every step is safe to repeat: fix the cause, then `golden apply` again".to_owned()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::SiteName;

    /// The exit kind and the hints come from whichever error of the chain knows them.
    #[test]
    fn a_chain_is_explained_by_its_errors() {
        let stale = anyhow::Error::new(StalePlan { changes: vec!["hq/pool/A changed".into()] })
            .context("cannot apply plan.json");
        assert_eq!(kind(&stale), Kind::StalePlan);
        assert_eq!(hints(&stale).len(), 1, "{:?}", hints(&stale));

        let login = VcenterError::Login { site: SiteName::new("eu-west"), user: "svc".into() };
        let failed = anyhow::Error::new(StepError::Vcenter(login)).context("step deploy/eu-west/win/1");
        assert_eq!(kind(&failed), Kind::Failure);
        assert_eq!(hints(&failed), ["check GOLDEN_EU_WEST_VCENTER_USER and GOLDEN_EU_WEST_VCENTER_PASSWORD"]);

        let plain = anyhow::anyhow!("something golden does not explain");
        assert_eq!((kind(&plain), hints(&plain)), (Kind::Failure, Vec::<String>::new()));
    }
}
