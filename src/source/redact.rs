//! Secrets inside the values of allowlisted variables (issue 8, item 7).
//!
//! The allowlist (probe::env) keeps credential *names* out, but an allowed
//! variable can still carry a secret: `OLLAMA_HOST=http://user:pass@host`, a
//! token pasted into `ONEAPI_DEVICE_SELECTOR` by mistake, a bearer header in
//! a runtime's extra-headers variable. Every value a Source returns is passed
//! through [`redact`], live and replayed alike, so a capture never holds the
//! secret and `check` and `check --replay` still see the same bytes. The
//! secret part is replaced in place by a marker that says what was there
//! (`http://<redacted: url credentials>@host`), so the rest of the value
//! still serves the diagnosis and a reader of the capture sees that
//! something was removed.

use std::sync::OnceLock;

use regex::Regex;

/// One kind of secret: what it looks like and the words put in its place.
struct Pattern {
    re: Regex,
    what: &'static str,
}

fn patterns() -> &'static [Pattern] {
    static P: OnceLock<Vec<Pattern>> = OnceLock::new();
    P.get_or_init(|| {
        [
            // RFC 3986 user-info: scheme://user[:password]@host. Only the part
            // before the last `@` of the authority goes; the host stays.
            (
                r"(?i)(?P<keep>\b[a-z][a-z0-9+.\-]*://)[^/?#\s]+@",
                "url credentials",
            ),
            // HTTP Authorization schemes (RFC 6750 bearer, RFC 7617 basic).
            (
                r"(?i)(?P<keep>\b(?:bearer|basic|token)\s+)[A-Za-z0-9\-._~+/]{8,}=*",
                "authorization header",
            ),
            // Well-known token prefixes: Hugging Face, GitHub, GitLab, OpenAI /
            // Anthropic, Slack, AWS access key ids, Google API keys, npm, PyPI.
            (
                r"\b(?:hf_[A-Za-z0-9]{20,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_\-]{20,}|sk-[A-Za-z0-9_\-]{20,}|xox[abprs]-[A-Za-z0-9\-]{10,}|(?:AKIA|ASIA)[0-9A-Z]{16}|AIza[0-9A-Za-z_\-]{35}|npm_[A-Za-z0-9]{30,}|pypi-[A-Za-z0-9_\-]{40,})",
                "token",
            ),
            // JSON Web Tokens: three base64url parts, the first two JSON objects.
            (
                r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*",
                "token",
            ),
        ]
        .into_iter()
        .filter_map(|(re, what)| Some(Pattern { re: Regex::new(re).ok()?, what }))
        .collect()
    })
}

/// A run of at least this many letters and digits that mixes upper case, lower
/// case and digits is taken for a generated secret. Paths, device selectors,
/// UUIDs (lower-case hex) and Nix store hashes (lower-case base32) never look
/// like that.
const GENERIC_MIN: usize = 32;

fn generic_token(run: &str) -> bool {
    run.len() >= GENERIC_MIN
        && run.bytes().any(|b| b.is_ascii_uppercase())
        && run.bytes().any(|b| b.is_ascii_lowercase())
        && run.bytes().any(|b| b.is_ascii_digit())
}

fn marker(what: &str) -> String {
    format!("<redacted: {what}>")
}

/// `value` with every secret-looking part replaced by `<redacted: WHAT>`.
/// Idempotent: a marker never looks like a secret.
pub fn redact(value: &str) -> String {
    let mut out = value.to_string();
    for p in patterns() {
        if p.re.is_match(&out) {
            let m = marker(p.what);
            out =
                p.re.replace_all(&out, |c: &regex::Captures<'_>| {
                    let keep = c.name("keep").map(|k| k.as_str()).unwrap_or("");
                    let tail = if p.what == "url credentials" { "@" } else { "" };
                    format!("{keep}{m}{tail}")
                })
                .into_owned();
        }
    }
    redact_generic(&out)
}

fn redact_generic(value: &str) -> String {
    let is_tok = |c: char| c.is_ascii_alphanumeric();
    let mut out = String::with_capacity(value.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if generic_token(run) {
            out.push_str(&marker("token"));
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in value.chars() {
        if is_tok(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_user_info_goes_and_the_host_stays() {
        assert_eq!(
            redact("http://user:pass@10.0.0.5:11434"),
            "http://<redacted: url credentials>@10.0.0.5:11434"
        );
        assert_eq!(
            redact("https://tok3n@proxy.example/a,socks5://u:p@h:1080"),
            "https://<redacted: url credentials>@proxy.example/a,socks5://<redacted: url credentials>@h:1080"
        );
        // No user-info: untouched.
        assert_eq!(redact("http://0.0.0.0:11434"), "http://0.0.0.0:11434");
    }

    #[test]
    fn tokens_and_headers_go() {
        for (v, want) in [
            ("hf_aBcDeFgHiJkLmNoPqRsTuVwXyZ012345", "<redacted: token>"),
            (
                "level_zero:ghp_0123456789abcdefghijABCDEFGHIJ",
                "level_zero:<redacted: token>",
            ),
            (
                "Authorization: Bearer abc.def-ghi_jkl",
                "Authorization: Bearer <redacted: authorization header>",
            ),
            ("AKIAIOSFODNN7EXAMPLE", "<redacted: token>"),
            ("sk-proj-abcdefghijklmnopqrstuvwx", "<redacted: token>"),
            (
                "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig_nature",
                "<redacted: token>",
            ),
            ("x=Zk3Jq9Lm2Np8Rs4Tv6Wx1Yz5Ab7Cd0Ef", "x=<redacted: token>"),
        ] {
            assert_eq!(redact(v), want, "{v}");
            assert_eq!(redact(&redact(v)), want, "idempotent: {v}");
        }
    }

    #[test]
    fn ordinary_values_are_kept() {
        for v in [
            "level_zero:gpu;opencl:cpu",
            "/opt/intel/oneapi/compiler/2024.2/lib:/opt/intel/oneapi/mkl/2024.2/lib",
            "GPU-8f3e6a2b-1c4d-4e5f-9a0b-1c2d3e4f5a6b",
            "/nix/store/0c7c5q6fj1gbzvmsdhk6nbdgfrzkz1ka-cuda-12.4/lib",
            "/home/user/miniforge3/envs/llm/lib/python3.11/site-packages/oneccl_bindings_for_pytorch",
            "11.0.0",
            "0.0",
            "Basic",
        ] {
            assert_eq!(redact(v), v);
        }
    }
}
