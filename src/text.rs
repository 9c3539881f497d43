//! Small text helpers shared by the parsers and the renderers.

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

/// Is `c` a character a terminal acts on instead of showing: C0 controls
/// other than newline and tab (ESC starts title, clear-screen and colour
/// sequences, CR overwrites the line, BS erases), DEL, the C1 controls
/// (U+009B is a one-character CSI on some terminals) and the bidirectional
/// overrides and isolates that reorder what follows them on screen.
fn acts_on_terminal(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Text from outside rigdoctor (tool output, captured files, names, engine
/// logs) made safe to print on a terminal: every control character is shown
/// as an escape (`\e`, `\r`, `\x07`, `\u{9b}`), so `ESC ] 0 ; title BEL` or
/// `ESC [ 2 J` read as text instead of retitling or clearing the window.
/// Newlines and tabs stay. Every human renderer passes the text it did not
/// write itself through here (style.md habit 13); JSON needs no such step
/// (serde escapes control characters).
/// One argument as a POSIX shell reads it back: bare when it holds only
/// characters no shell treats specially, else in single quotes (a quote
/// inside as `'\''`). So a command line shown to a person pastes as typed.
pub fn shell_quote(arg: &str) -> std::borrow::Cow<'_, str> {
    let bare = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c));
    if bare {
        arg.into()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''")).into()
    }
}

pub fn escape_controls(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(acts_on_terminal) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !acts_on_terminal(c) {
            out.push(c);
            continue;
        }
        match c {
            '\u{1b}' => out.push_str("\\e"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A short quote of what a tool printed, for a probe that could not read
/// it: the first non-blank lines joined with ` ⏎ `, at most 100 characters,
/// control characters escaped, in double quotes (`(no output)` when empty).
pub fn excerpt(s: &str) -> String {
    const MAX: usize = 100;
    let joined = s
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(4)
        .collect::<Vec<_>>()
        .join(" ⏎ ");
    if joined.is_empty() {
        return "(no output)".to_string();
    }
    let escaped = escape_controls(&joined);
    let mut cut: String = escaped.chars().take(MAX).collect();
    if escaped.chars().count() > MAX || s.lines().filter(|l| !l.trim().is_empty()).count() > 4 {
        cut.push('…');
    }
    format!("\"{cut}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_pastes_back_as_typed() {
        assert_eq!(shell_quote("llama-server"), "llama-server");
        assert_eq!(shell_quote("-ngl"), "-ngl");
        assert_eq!(shell_quote("/models/a b.gguf"), "'/models/a b.gguf'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
        assert_eq!(shell_quote("a*"), "'a*'");
    }

    #[test]
    fn excerpts_are_short_escaped_and_quoted() {
        assert_eq!(excerpt(""), "(no output)");
        assert_eq!(excerpt("\n  \n"), "(no output)");
        assert_eq!(excerpt("a\n\nb\u{1b}[2J\n"), "\"a ⏎ b\\e[2J\"");
        let long = excerpt(&"x".repeat(500));
        assert_eq!(long.chars().count(), 100 + 3);
        assert!(long.ends_with("…\""));
        assert!(excerpt("1\n2\n3\n4\n5\n").ends_with("4…\""));
    }

    #[test]
    fn controls_are_shown_escaped() {
        assert_eq!(
            escape_controls("\u{1b}]0;owned\u{7}\u{1b}[2JRTX\r3090"),
            "\\e]0;owned\\x07\\e[2JRTX\\r3090"
        );
        assert_eq!(
            escape_controls("a\u{9b}31m\u{202e}b"),
            "a\\u{9b}31m\\u{202e}b"
        );
        assert_eq!(escape_controls("\u{0}\u{7f}\u{8}"), "\\x00\\x7f\\x08");
        // Plain text, newlines, tabs and non-ASCII names pass unchanged.
        let plain = "Intel(R) Arc(TM) A770 · 16 GiB\n\tnext ✓";
        assert!(matches!(
            escape_controls(plain),
            std::borrow::Cow::Borrowed(s) if s == plain
        ));
    }
}
