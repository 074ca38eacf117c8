//! Semver resolution: from a requirement (`1.0.0`, `^1.2`, `~1.2.3`, `*`) to the
//! highest uploaded version that matches.

use semver::{Version, VersionReq};

/// Parses a version requirement the way users write it. A bare version (`1.0.0`)
/// means exactly that version (not `^1.0.0` as cargo would read it): a pipeline that
/// names a version gets that version.
pub fn parse_requirement(text: &str) -> Result<VersionReq, semver::Error> {
    let text = text.trim();
    if let Ok(exact) = Version::parse(text) {
        return VersionReq::parse(&format!("={exact}"));
    }
    VersionReq::parse(text)
}

/// The highest of `versions` matching `req`. Pre-releases match only when the
/// requirement names a pre-release of the same major.minor.patch, as semver says.
pub fn highest_match<'a>(
    req: &VersionReq,
    versions: impl IntoIterator<Item = &'a Version>,
) -> Option<&'a Version> {
    versions.into_iter().filter(|v| req.matches(v)).max()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vs(list: &[&str]) -> Vec<Version> {
        list.iter().map(|s| Version::parse(s).unwrap()).collect()
    }

    fn resolve(req: &str, list: &[&str]) -> Option<String> {
        let versions = vs(list);
        highest_match(&parse_requirement(req).unwrap(), &versions).map(|v| v.to_string())
    }

    #[test]
    fn highest_matching_version_wins() {
        let all = ["1.0.0", "1.2.0", "1.2.5", "1.10.0", "2.0.0"];
        assert_eq!(resolve("^1.2", &all).as_deref(), Some("1.10.0"));
        assert_eq!(resolve("~1.2.3", &all).as_deref(), Some("1.2.5"));
        assert_eq!(resolve("*", &all).as_deref(), Some("2.0.0"));
        assert_eq!(resolve("1.2.0", &all).as_deref(), Some("1.2.0"));
        assert_eq!(resolve("^3", &all), None);
    }

    #[test]
    fn prereleases_match_only_when_asked_for() {
        let all = ["1.0.0", "1.1.0-beta.1"];
        assert_eq!(resolve("^1", &all).as_deref(), Some("1.0.0"));
        assert_eq!(resolve("*", &all).as_deref(), Some("1.0.0"));
        assert_eq!(
            resolve(">=1.1.0-beta", &all).as_deref(),
            Some("1.1.0-beta.1")
        );
        assert_eq!(
            resolve("1.1.0-beta.1", &all).as_deref(),
            Some("1.1.0-beta.1")
        );
    }

    #[test]
    fn garbage_requirement_is_an_error() {
        assert!(parse_requirement("one point oh").is_err());
    }
}
