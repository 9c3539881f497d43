//! The site config: what a site has decided once for all its checks, in
//! `/etc/rigdoctor/config.toml` (or `check --config FILE`). Today: the
//! findings it has accepted (`[ignore]`, each with the reason a colleague
//! reads on the page) and its own rules directory.
//!
//! rigdoctor runs as root in health hooks, so the file is trusted only as
//! far as its owner: one that another user owns or may write is refused
//! (as sshd's StrictModes refuses a group-writable authorized_keys), never
//! read quietly. The current directory is never looked in.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Where a site puts it: read by every live check that is not given `--config`.
pub const DEFAULT_PATH: &str = "/etc/rigdoctor/config.toml";

/// A config larger than this is not a config.
const MAX_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// Site rules, as `--rules DIR` (the flag wins).
    pub rules: Option<PathBuf>,
    /// Rule id → why the site accepts its findings.
    #[serde(default)]
    pub ignore: BTreeMap<String, String>,
}

/// A config that was read, and from where (the page names the file).
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub path: PathBuf,
    pub config: SiteConfig,
}

/// `text` as a site config; `path` only names it in errors.
pub fn parse(text: &str, path: &Path) -> Result<SiteConfig, String> {
    let mut c: SiteConfig =
        toml::from_str(text).map_err(|e| format!("{}: {}", path.display(), e.message()))?;
    let mut ignore = BTreeMap::new();
    for (id, why) in std::mem::take(&mut c.ignore) {
        let id = id.trim().to_ascii_uppercase();
        let why = why.split_whitespace().collect::<Vec<_>>().join(" ");
        if id.is_empty() {
            return Err(format!("{}: [ignore] has an empty rule id", path.display()));
        }
        if why.is_empty() {
            return Err(format!(
                "{}: [ignore] {id} needs a reason (`{id} = \"why this site accepts it\"`): \
                 the page shows it to whoever reads the check next",
                path.display()
            ));
        }
        ignore.insert(id, why);
    }
    c.ignore = ignore;
    if let Some(r) = &c.rules
        && !r.is_absolute()
    {
        return Err(format!(
            "{}: rules = {:?} must be an absolute path (the current directory is never used)",
            path.display(),
            r
        ));
    }
    Ok(c)
}

/// Would trusting a file with this owner and mode let someone else decide
/// what root's check ignores? `uid` is who runs rigdoctor.
pub fn unsafe_owner(file_uid: u32, mode: u32, uid: u32) -> Option<String> {
    if file_uid != 0 && file_uid != uid {
        return Some(format!(
            "owned by uid {file_uid}, neither root nor the user running rigdoctor"
        ));
    }
    if mode & 0o022 != 0 {
        return Some(format!(
            "writable by {} (mode {:04o}): fix with chmod go-w",
            if mode & 0o002 != 0 {
                "every user"
            } else {
                "its group"
            },
            mode & 0o7777
        ));
    }
    None
}

/// The site config for this run: `explicit` (`--config`) must exist; the
/// default file is read when `use_default` (a live check) and present.
pub fn load(explicit: Option<&Path>, use_default: bool) -> Result<Option<Loaded>, String> {
    let (path, required) = match explicit {
        Some(p) => (p.to_path_buf(), true),
        None if use_default => (PathBuf::from(DEFAULT_PATH), false),
        None => return Ok(None),
    };
    let shown = path.display();
    // Not followed: a link could point at a file another user writes.
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(None),
        Err(e) => return Err(format!("site config {shown}: {e}")),
    };
    if !meta.file_type().is_file() {
        return Err(format!(
            "site config {shown}: not a regular file (a symbolic link, a directory or a FIFO is not read)"
        ));
    }
    if let Some(why) = unsafe_owner(meta.uid(), meta.mode(), nix::unistd::geteuid().as_raw()) {
        return Err(format!("site config {shown}: not read: {why}"));
    }
    if meta.len() > MAX_BYTES {
        return Err(format!(
            "site config {shown}: larger than {MAX_BYTES} bytes; not read"
        ));
    }
    let bytes = std::fs::read(&path).map_err(|e| format!("site config {shown}: {e}"))?;
    let text =
        String::from_utf8(bytes).map_err(|_| format!("site config {shown}: not UTF-8 text"))?;
    let config = parse(&text, &path).map_err(|e| format!("site config {e}"))?;
    Ok(Some(Loaded { path, config }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<SiteConfig, String> {
        parse(text, Path::new("/etc/rigdoctor/config.toml"))
    }

    #[test]
    fn ignores_with_reasons_and_a_rules_directory() {
        let c = p(r#"
rules = "/etc/rigdoctor/rules.d"

[ignore]
pci-link-slot = "slots 3 and 4 are x8 by design on these boards (OPS-1234)"
"VER-IPEX-EOL" = """
  pinned until the
  Q3 migration"""
"#)
        .unwrap();
        assert_eq!(
            c.rules.as_deref(),
            Some(Path::new("/etc/rigdoctor/rules.d"))
        );
        assert_eq!(
            c.ignore.into_iter().collect::<Vec<_>>(),
            [
                (
                    "PCI-LINK-SLOT".to_string(),
                    "slots 3 and 4 are x8 by design on these boards (OPS-1234)".to_string()
                ),
                (
                    "VER-IPEX-EOL".to_string(),
                    "pinned until the Q3 migration".to_string()
                )
            ]
        );
        assert_eq!(p("").unwrap(), SiteConfig::default());
    }

    #[test]
    fn mistakes_are_refused_with_the_file_named() {
        // A typo would otherwise silently ignore nothing.
        let e = p("ignroe = {}").unwrap_err();
        assert!(
            e.contains("/etc/rigdoctor/config.toml") && e.contains("ignroe"),
            "{e}"
        );
        let e = p("[ignore]\nPCI-LINK-SLOT = \"  \"").unwrap_err();
        assert!(e.contains("needs a reason"), "{e}");
        let e = p("[ignore]\nPCI-LINK-SLOT = 1").unwrap_err();
        assert!(e.contains("config.toml"), "{e}");
        let e = p("rules = \"site-rules\"").unwrap_err();
        assert!(e.contains("absolute"), "{e}");
        assert!(p("[ignore\n").is_err());
    }

    #[test]
    fn only_root_or_the_user_may_own_and_write_it() {
        assert_eq!(unsafe_owner(0, 0o100644, 0), None);
        assert_eq!(unsafe_owner(1000, 0o100600, 1000), None);
        assert_eq!(
            unsafe_owner(0, 0o100644, 1000),
            None,
            "root's file, read by a user"
        );
        assert!(
            unsafe_owner(1000, 0o100644, 0)
                .unwrap()
                .contains("uid 1000")
        );
        assert!(unsafe_owner(0, 0o100664, 0).unwrap().contains("its group"));
        assert!(unsafe_owner(0, 0o100666, 0).unwrap().contains("every user"));
    }

    #[test]
    fn the_default_file_is_optional_an_explicit_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.toml");
        assert!(
            load(Some(&missing), false)
                .unwrap_err()
                .contains("none.toml")
        );
        assert_eq!(
            load(None, false).unwrap(),
            None,
            "a replay reads no default"
        );
        let f = dir.path().join("config.toml");
        std::fs::write(&f, "[ignore]\nPCI-LINK-SLOT = \"by design\"\n").unwrap();
        let l = load(Some(&f), false).unwrap().unwrap();
        assert_eq!(l.path, f);
        assert_eq!(l.config.ignore["PCI-LINK-SLOT"], "by design");
        let link = dir.path().join("link.toml");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert!(
            load(Some(&link), false)
                .unwrap_err()
                .contains("symbolic link")
        );
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(load(Some(&f), false).unwrap_err().contains("chmod go-w"));
    }
}
