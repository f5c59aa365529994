//! Blender version numbers, as `blender --version` prints them.

use serde::{Deserialize, Serialize};

/// A Blender release `major.minor.patch`, ordered by release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BlenderVersion {
    /// Major release (3 in 3.4.1).
    pub major: u32,
    /// Minor release (4 in 3.4.1).
    pub minor: u32,
    /// Patch release (1 in 3.4.1).
    pub patch: u32,
}

impl BlenderVersion {
    /// A version from its parts.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// Oldest release this integration is tested with (Debian 12's 3.4.1);
    /// the scripts use no API younger than it.
    pub const MINIMUM_SUPPORTED: Self = Self::new(3, 4, 0);

    /// Parses the output of `blender --version`: the first line that reads
    /// `Blender X.Y[.Z]…` (e.g. `Blender 3.4.1`, `Blender 4.2.0 LTS`).
    pub fn from_version_output(text: &str) -> Option<Self> {
        text.lines().find_map(|line| {
            let rest = line.trim().strip_prefix("Blender ")?;
            rest.split_whitespace().next()?.parse().ok()
        })
    }
}

impl std::fmt::Display for BlenderVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl std::str::FromStr for BlenderVersion {
    type Err = String;

    /// Parses `X.Y` or `X.Y.Z`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.trim().split('.');
        let mut next = |what: &str, required: bool| -> Result<u32, String> {
            match parts.next() {
                Some(p) => p
                    .parse()
                    .map_err(|_| format!("bad {what} number in version {s:?}")),
                None if required => Err(format!("version {s:?} lacks a {what} number")),
                None => Ok(0),
            }
        };
        let v = Self::new(
            next("major", true)?,
            next("minor", true)?,
            next("patch", false)?,
        );
        if parts.next().is_some() {
            return Err(format!("version {s:?} has more than three parts"));
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_version_lines() {
        assert_eq!(
            BlenderVersion::from_version_output("Blender 3.4.1\n"),
            Some(BlenderVersion::new(3, 4, 1))
        );
        assert_eq!(
            BlenderVersion::from_version_output("Blender 4.2.0 LTS\n\tbuild date: 2024-07-16\n"),
            Some(BlenderVersion::new(4, 2, 0))
        );
        assert_eq!(
            BlenderVersion::from_version_output("junk\nBlender 2.93\n"),
            Some(BlenderVersion::new(2, 93, 0))
        );
        assert_eq!(BlenderVersion::from_version_output("Blender x.y"), None);
        assert_eq!(BlenderVersion::from_version_output(""), None);
        assert!("3".parse::<BlenderVersion>().is_err());
        assert!("3.4.1.2".parse::<BlenderVersion>().is_err());
        assert!(BlenderVersion::new(3, 4, 1) < BlenderVersion::new(3, 10, 0));
        assert!(BlenderVersion::new(4, 0, 0) > BlenderVersion::new(3, 99, 9));
    }
}
