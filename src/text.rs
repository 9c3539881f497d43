//! Small text helpers shared by the parsers.

use regex::Regex;

/// Compile a regex written as a literal in this source tree.
#[allow(
    clippy::expect_used,
    reason = "literal patterns; each one is exercised by its parser's unit tests"
)]
pub fn regex(pattern: &'static str) -> Regex {
    Regex::new(pattern).expect("a literal regex in rigdoctor's source does not compile")
}

/// Remove ANSI colour sequences that people paste along with tool output.
pub fn strip_ansi(s: &str) -> std::borrow::Cow<'_, str> {
    static ANSI: std::sync::LazyLock<Regex> =
        std::sync::LazyLock::new(|| regex(r"\x1b\[[0-9;?]*[A-Za-z]"));
    ANSI.replace_all(s, "")
}

/// The last component of a path or link target (`../../bus/pci/drivers/xe` -> `xe`).
pub fn basename(p: &str) -> &str {
    p.trim_end_matches('/').rsplit('/').next().unwrap_or(p)
}
