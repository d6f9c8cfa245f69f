//! Build information served at `/version` and printed by `headscale version`, in the shape of
//! Go Headscale's `VersionInfo` so tools that read it keep working. The `go` object describes
//! the toolchain and platform; here the toolchain is Rust.

use serde::Serialize;

/// Toolchain and platform, Go Headscale's `GoInfo` shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolchainInfo {
    /// The compiler (`rust`).
    pub version: String,
    /// Operating system (`linux`).
    pub os: String,
    /// CPU architecture, Go's names (`amd64`, `arm64`).
    pub arch: String,
}

/// Build information.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    /// The release, or `dev` for an unversioned build.
    pub version: String,
    /// The git commit, if the build recorded it (`HEADSCALE_BUILD_COMMIT` at compile time).
    pub commit: String,
    /// When the binary was built, if recorded (`HEADSCALE_BUILD_TIME` at compile time).
    pub build_time: String,
    /// Toolchain and platform; named `go` on the wire for compatibility.
    #[serde(rename = "go")]
    pub toolchain: ToolchainInfo,
    /// Whether the tree had uncommitted changes.
    pub dirty: bool,
}

impl VersionInfo {
    /// This binary's build information.
    pub fn current() -> Self {
        let version = match env!("CARGO_PKG_VERSION") {
            // The workspace version is a placeholder until the first release.
            "0.0.0" => "dev".to_owned(),
            v => v.to_owned(),
        };
        Self {
            version,
            commit: option_env!("HEADSCALE_BUILD_COMMIT")
                .unwrap_or("unknown")
                .to_owned(),
            build_time: option_env!("HEADSCALE_BUILD_TIME")
                .unwrap_or("unknown")
                .to_owned(),
            toolchain: ToolchainInfo {
                version: "rust".to_owned(),
                os: std::env::consts::OS.to_owned(),
                arch: go_arch(std::env::consts::ARCH).to_owned(),
            },
            dirty: false,
        }
    }
}

fn go_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

impl std::fmt::Display for VersionInfo {
    /// The human-readable form `headscale version` prints, line for line as Go Headscale.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut version = self.version.clone();
        if self.dirty && !version.contains("dirty") {
            version.push_str("-dirty");
        }
        writeln!(f, "headscale version {version}")?;
        writeln!(f, "commit: {}", self.commit)?;
        writeln!(f, "build time: {}", self.build_time)?;
        writeln!(
            f,
            "built with: {} {}/{}",
            self.toolchain.version, self.toolchain.os, self.toolchain.arch
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_go_headscale_field_names() {
        let v = serde_json::to_value(VersionInfo::current()).unwrap();
        for key in ["version", "commit", "buildTime", "go", "dirty"] {
            assert!(v.get(key).is_some(), "missing {key} in {v}");
        }
        assert!(v["go"].get("os").is_some());
        assert!(v["go"].get("arch").is_some());
    }

    #[test]
    fn text_form_matches_go_layout() {
        let mut v = VersionInfo::current();
        v.version = "0.1.0".into();
        v.dirty = true;
        let text = v.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "headscale version 0.1.0-dirty");
        assert!(lines[1].starts_with("commit: "));
        assert!(lines[2].starts_with("build time: "));
        assert!(lines[3].starts_with("built with: rust "));
    }
}
