//! [`HorizonVersion`]: the version a Connection Server reports, and what golden needs of it.

use std::fmt;

/// A Horizon Connection Server version, as its monitor reports it (`details.version`, e.g.
/// `8.12.0`). Horizon 8 releases also go by year and month (8.2 is 2103); [`fmt::Display`]
/// shows both where the release is known, e.g. `8.1 (2012)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HorizonVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

/// The year-and-month names of Horizon 8 releases, by minor version (8.0 is 2006).
const HORIZON_8_RELEASES: [&str; 15] = [
    "2006", "2012", "2103", "2106", "2111", "2203", "2206", "2209", "2212", "2303", "2306", "2309", "2312",
    "2406", "2412",
];

impl HorizonVersion {
    /// Horizon 8.0 (2006): `/inventory/v2/desktop-pools` and `/monitor/v1/connection-servers`.
    pub const DESKTOP_POOLS_V2: HorizonVersion = HorizonVersion::new(8, 0, 0);
    /// Horizon 8.2 (2103): `/inventory/v2/farms`, the only farm listing that shows a farm's image.
    pub const FARMS_V2: HorizonVersion = HorizonVersion::new(8, 2, 0);
    /// Horizon 8.4 (2111): `schedule-maintenance` of farms, the only way to give a farm a new
    /// image.
    pub const FARM_MAINTENANCE: HorizonVersion = HorizonVersion::new(8, 4, 0);
    /// Horizon 8.1 (2012): `/inventory/v2/machines`, `/inventory/v1/rds-servers`, and paging
    /// of the machine, RDS server and session lists.
    pub const MACHINES_PAGED: HorizonVersion = HorizonVersion::new(8, 1, 0);
    /// Horizon 8.6 (2206): selective push image (`/inventory/v2/.../schedule-push-image` with
    /// `machine_ids`), `READY_HELD` and `promote-pending-image`: what a canary needs.
    pub const SELECTIVE_PUSH: HorizonVersion = HorizonVersion::new(8, 6, 0);
    /// The oldest Horizon golden supports: 8.2 (2103). Older 8.x servers are read only while
    /// their pod has no farms.
    pub const MINIMUM: HorizonVersion = HorizonVersion::FARMS_V2;

    pub const fn new(major: u32, minor: u32, patch: u32) -> HorizonVersion {
        HorizonVersion { major, minor, patch }
    }

    /// Reads `8.12.0`, `7.13.1` or `8.2`; anything after the numbers (a build suffix) is
    /// ignored. `None` without at least a major and a minor number.
    pub fn parse(text: &str) -> Option<HorizonVersion> {
        let mut numbers = text.trim().split('.').map(|part| {
            let digits = part.find(|c: char| !c.is_ascii_digit()).unwrap_or(part.len());
            part[..digits].parse::<u32>().ok()
        });
        let major = numbers.next().flatten()?;
        let minor = numbers.next().flatten()?;
        let patch = numbers.next().flatten().unwrap_or(0);
        Some(HorizonVersion { major, minor, patch })
    }

    /// The release's year-and-month name (`2103` for 8.2), when golden knows it.
    pub fn release(&self) -> Option<&'static str> {
        match self.major {
            8 => HORIZON_8_RELEASES.get(usize::try_from(self.minor).ok()?).copied(),
            _ => None,
        }
    }
}

impl fmt::Display for HorizonVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)?;
        if self.patch != 0 {
            write!(f, ".{}", self.patch)?;
        }
        if let Some(release) = self.release() {
            write!(f, " ({release})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_compare_and_show_their_release() {
        let v = |s: &str| HorizonVersion::parse(s).expect(s);
        assert_eq!(v("8.12.0"), HorizonVersion::new(8, 12, 0));
        assert_eq!(v(" 7.13.1 "), HorizonVersion::new(7, 13, 1));
        assert_eq!(v("8.2"), HorizonVersion::new(8, 2, 0));
        assert_eq!(v("8.6.0-21097143"), HorizonVersion::new(8, 6, 0));
        for bad in ["", "8", "eight.one", "2312", ".1.0"] {
            assert_eq!(HorizonVersion::parse(bad), None, "{bad:?}");
        }
        assert!(v("8.1.0") < HorizonVersion::FARMS_V2 && v("8.10.0") > HorizonVersion::FARMS_V2);
        assert!(v("7.13.1") < HorizonVersion::DESKTOP_POOLS_V2);
        assert_eq!(v("8.1.0").to_string(), "8.1 (2012)");
        assert_eq!(HorizonVersion::MINIMUM.to_string(), "8.2 (2103)");
        assert_eq!(v("8.12.0").to_string(), "8.12 (2312)");
        assert_eq!(v("8.14.0").to_string(), "8.14 (2412)");
        assert_eq!(v("7.13.1").to_string(), "7.13.1");
        assert_eq!(v("8.99.0").to_string(), "8.99");
    }
}
