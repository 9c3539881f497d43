//! ollama's systemd service: the environment `ollama serve` really runs
//! with. ollama's Linux installer (scripts/install.sh) writes
//! `/etc/systemd/system/ollama.service`; users add variables with
//! `systemctl edit ollama`, a drop-in under `ollama.service.d/`. A variable
//! exported in a shell never reaches the service, which is the commonest
//! "I set it and nothing changed" on ollama rigs.
//!
//! Unit files may hold secrets (`Environment="HF_TOKEN=..."`), and so may
//! the server's `/proc/PID/environ`: both are read only inside the computed
//! output `ollama-service`, which keeps the variables `probe::env` allows
//! and the paths it read, nothing else; a capture stores only that.

use std::collections::BTreeMap;

use crate::rig::{OllamaService, ProbeReport};
use crate::source::{CmdOutput, CmdStatus, Read, Source};

pub const NAME: &str = "ollama-service";

/// Where the unit may live, in systemd's order of precedence.
const UNITS: &[&str] = &[
    "/etc/systemd/system/ollama.service",
    "/run/systemd/system/ollama.service",
    "/usr/local/lib/systemd/system/ollama.service",
    "/usr/lib/systemd/system/ollama.service",
    "/lib/systemd/system/ollama.service",
];

/// Drop-in directories; systemd applies every `*.conf` of all of them in
/// the lexical order of the file names, an /etc file hiding a same-named one
/// below it (systemd.unit(5), "drop-in").
const DROPIN_DIRS: &[&str] = &[
    "/etc/systemd/system/ollama.service.d",
    "/run/systemd/system/ollama.service.d",
    "/usr/lib/systemd/system/ollama.service.d",
];

const MAX_DROPINS: usize = 64;
const MAX_PIDS: usize = 8192;

/// The words of an `Environment=` value as systemd splits them
/// (systemd.exec(5): space-separated, each may be double- or single-quoted,
/// with backslash escapes inside double quotes).
pub fn env_words(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                in_word = true;
                let q = c;
                while let Some(d) = chars.next() {
                    if d == q {
                        break;
                    }
                    if d == '\\' && q == '"' {
                        if let Some(e) = chars.next() {
                            cur.push(match e {
                                'n' => '\n',
                                't' => '\t',
                                other => other,
                            });
                        }
                        continue;
                    }
                    cur.push(d);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\\' => {
                in_word = true;
                if let Some(e) = chars.next() {
                    cur.push(e);
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
        if out.len() > 256 {
            break;
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// What one unit file or drop-in does to the environment, in order: `Some`
/// assignments, `None` for an empty `Environment=` (which clears the list),
/// and the `EnvironmentFile=` paths it names (never read: they are where
/// people keep tokens).
#[derive(Debug, Default, PartialEq)]
pub struct UnitEnv {
    pub ops: Vec<Option<(String, String)>>,
    pub env_files: Vec<String>,
}

pub fn unit_env(text: &str) -> UnitEnv {
    let mut u = UnitEnv::default();
    let mut in_service = false;
    let mut joined = String::new();
    for raw in text.lines().take(10_000) {
        // A trailing backslash continues the line (systemd.syntax(7)).
        if let Some(head) = raw.strip_suffix('\\') {
            joined.push_str(head);
            joined.push(' ');
            continue;
        }
        joined.push_str(raw);
        let line = std::mem::take(&mut joined);
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            in_service = line == "[Service]";
            continue;
        }
        if !in_service {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k.trim() {
            "Environment" if v.trim().is_empty() => u.ops.push(None),
            "Environment" => {
                for w in env_words(v.trim()) {
                    // A word that is not NAME=VALUE is ignored by systemd too.
                    if let Some((n, val)) = w.split_once('=')
                        && !n.is_empty()
                        && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    {
                        u.ops.push(Some((n.to_string(), val.to_string())));
                    }
                }
            }
            "EnvironmentFile" => {
                let p = v.trim().trim_start_matches('-');
                if !p.is_empty() && u.env_files.len() < 16 {
                    u.env_files.push(p.chars().take(200).collect());
                }
            }
            _ => {}
        }
    }
    u
}

/// A variable the output may keep: allowlisted, never PATH, bounded.
fn kept(name: &str, value: &str) -> bool {
    super::env::allowed(name) && name != "PATH" && value.len() <= 4096
}

/// One line per fact, values escaped as in the capture's `env` file.
fn line(out: &mut String, kind: &str, rest: &str) {
    out.push_str(kind);
    out.push(' ');
    out.push_str(&crate::source::escape_env_value(rest));
    out.push('\n');
}

/// The `ollama serve` processes: `comm` is `ollama` and the command line's
/// second word is `serve`.
fn servers(src: &dyn Source) -> Vec<u32> {
    let crate::source::Listing::Ok(names) = src.list("/proc") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for n in names.iter().take(MAX_PIDS) {
        let Ok(pid) = n.parse::<u32>() else { continue };
        let comm = src
            .read(&format!("/proc/{pid}/comm"))
            .text()
            .unwrap_or_default();
        if comm.trim() != "ollama" {
            continue;
        }
        let cmd = src
            .read(&format!("/proc/{pid}/cmdline"))
            .text()
            .unwrap_or_default();
        if cmd.split('\0').nth(1) == Some("serve") {
            pids.push(pid);
        }
        if pids.len() >= 4 {
            break;
        }
    }
    pids
}

/// The computed output: live, what the unit, its drop-ins and the running
/// server say, filtered; recorded, only this is stored.
pub fn produce(live: &dyn Source) -> CmdOutput {
    let mut out = String::new();
    let Some((unit, text)) = UNITS.iter().find_map(|p| match live.read(p) {
        Read::Ok(b) => Some((*p, String::from_utf8_lossy(&b).into_owned())),
        _ => None,
    }) else {
        return CmdOutput::with_status(CmdStatus::Missing);
    };
    line(&mut out, "unit", unit);
    // Drop-ins: by file name across the directories, the first directory's
    // file winning a name.
    let mut dropins: BTreeMap<String, String> = BTreeMap::new();
    for dir in DROPIN_DIRS {
        if let crate::source::Listing::Ok(names) = live.list(dir) {
            for n in names
                .iter()
                .filter(|n| n.ends_with(".conf"))
                .take(MAX_DROPINS)
            {
                dropins
                    .entry(n.clone())
                    .or_insert_with(|| format!("{dir}/{n}"));
            }
        }
    }
    let mut files = vec![(unit.to_string(), text)];
    for path in dropins.values().take(MAX_DROPINS) {
        match live.read(path) {
            Read::Ok(b) => files.push((path.clone(), String::from_utf8_lossy(&b).into_owned())),
            Read::Denied => line(&mut out, "unreadable", path),
            _ => {}
        }
    }
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for (path, text) in &files {
        if path != unit {
            line(&mut out, "dropin", path);
        }
        let u = unit_env(text);
        for op in u.ops {
            match op {
                None => env.clear(),
                Some((k, v)) => {
                    env.insert(k, v);
                }
            }
        }
        for f in u.env_files {
            line(&mut out, "environment-file", &f);
        }
    }
    for (k, v) in &env {
        if kept(k, v) {
            line(&mut out, "service-env", &format!("{k}={v}"));
        }
    }
    for pid in servers(live) {
        match live.read(&format!("/proc/{pid}/environ")) {
            Read::Ok(b) => {
                line(&mut out, "process", &pid.to_string());
                for kv in String::from_utf8_lossy(&b).split('\0').take(4096) {
                    if let Some((k, v)) = kv.split_once('=')
                        && kept(k, v)
                    {
                        line(&mut out, "process-env", &format!("{pid} {k}={v}"));
                    }
                }
            }
            Read::Denied => line(&mut out, "process-denied", &pid.to_string()),
            _ => {}
        }
    }
    CmdOutput {
        status: CmdStatus::Exit(0),
        stdout: out.into_bytes(),
        stderr: Vec::new(),
        duration_ms: 0,
        truncated: false,
    }
}

/// The computed output read back (pure).
pub fn parse(text: &str) -> OllamaService {
    let mut s = OllamaService::default();
    for l in text.lines().take(10_000) {
        let Some((kind, rest)) = l.split_once(' ') else {
            continue;
        };
        let rest = crate::source::unescape_env_value(rest);
        match kind {
            "unit" => s.unit = rest,
            "dropin" => s.dropins.push(rest),
            "environment-file" => s.environment_files.push(rest),
            "unreadable" => s.unreadable.push(rest),
            "service-env" => {
                if let Some((k, v)) = rest.split_once('=') {
                    s.env.insert(k.into(), v.into());
                }
            }
            "process" if s.process_pid.is_none() => {
                s.process_pid = rest.parse().ok();
                s.process_env = Some(BTreeMap::new());
            }
            "process-denied" if s.process_pid.is_none() => {
                s.process_pid = rest.parse().ok();
            }
            "process-env" => {
                if let Some((pid, kv)) = rest.split_once(' ')
                    && pid.parse().ok() == s.process_pid
                    && let (Some(m), Some((k, v))) = (s.process_env.as_mut(), kv.split_once('='))
                {
                    m.insert(k.into(), v.into());
                }
            }
            _ => {}
        }
    }
    s
}

pub fn probe(src: &dyn Source) -> (Option<OllamaService>, ProbeReport) {
    let out = src.computed(NAME, &produce);
    match &out.status {
        CmdStatus::Exit(0) => {
            let s = parse(&out.stdout_text());
            let detail = format!(
                "{}{}, {} variable{} for ollama{}",
                s.unit,
                if s.dropins.is_empty() {
                    String::new()
                } else {
                    format!(
                        " + {} drop-in{}",
                        s.dropins.len(),
                        if s.dropins.len() == 1 { "" } else { "s" }
                    )
                },
                s.env.len(),
                if s.env.len() == 1 { "" } else { "s" },
                match (s.process_pid, &s.process_env) {
                    (Some(p), Some(_)) => format!("; ollama serve (pid {p}) read"),
                    (Some(p), None) =>
                        format!("; ollama serve (pid {p}) not readable by this user"),
                    _ => String::new(),
                }
            );
            (Some(s), ProbeReport::new(NAME, "ok", 0, detail))
        }
        CmdStatus::Missing => (
            None,
            ProbeReport::new(NAME, "missing", 0, "no ollama.service unit"),
        ),
        other => (
            None,
            ProbeReport::new(NAME, "failed", 0, format!("{other:?}")),
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    /// ollama's installer's unit (scripts/install.sh at ollama commit
    /// fb30760996871fa9460115c753afd2c60d4ab0f7, lines 215-230) as written
    /// with BINDIR=/usr/local/bin, and the drop-in `systemctl edit ollama`
    /// makes in major/major.io's RX 6600 XT post (commit bdf7221c).
    const UNIT: &str = "[Unit]\nDescription=Ollama Service\nAfter=network-online.target\n\n[Service]\nExecStart=/usr/local/bin/ollama serve\nUser=ollama\nGroup=ollama\nRestart=always\nRestartSec=3\nEnvironment=\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"\n\n[Install]\nWantedBy=default.target\n";

    #[test]
    fn environment_lines_split_as_systemd_splits_them() {
        assert_eq!(
            env_words(r#""A=1 2" B=3 'C=x y' D=a\ b"#),
            ["A=1 2", "B=3", "C=x y", "D=a b"]
        );
        let u = unit_env(UNIT);
        assert_eq!(u.ops.len(), 1);
        let u = unit_env(
            "[Service]\nEnvironment=\"HSA_OVERRIDE_GFX_VERSION=10.3.0\"\nEnvironment=\nEnvironment=OLLAMA_DEBUG=1 \\\n  OLLAMA_HOST=0.0.0.0\nEnvironmentFile=-/etc/ollama.env\n[Install]\nEnvironment=X=1\n",
        );
        assert_eq!(
            u.ops,
            [
                Some(("HSA_OVERRIDE_GFX_VERSION".into(), "10.3.0".into())),
                None,
                Some(("OLLAMA_DEBUG".into(), "1".into())),
                Some(("OLLAMA_HOST".into(), "0.0.0.0".into())),
            ]
        );
        assert_eq!(u.env_files, ["/etc/ollama.env"]);
    }

    #[test]
    fn the_computed_output_keeps_allowed_variables_only() {
        let s = parse(
            "unit /etc/systemd/system/ollama.service\ndropin /etc/systemd/system/ollama.service.d/override.conf\nservice-env HSA_OVERRIDE_GFX_VERSION=10.3.0\nprocess 812\nprocess-env 812 OLLAMA_HOST=0.0.0.0\nprocess-env 9 X=1\n",
        );
        assert_eq!(
            s.env.get("HSA_OVERRIDE_GFX_VERSION").map(String::as_str),
            Some("10.3.0")
        );
        assert_eq!(s.process_pid, Some(812));
        assert_eq!(s.process_env.as_ref().unwrap().len(), 1);
        assert!(!kept("HF_TOKEN", "x"), "secrets are never kept");
        assert!(!kept("HOME", "/root"), "only the allowlist");
        assert!(kept("CUDA_VISIBLE_DEVICES", "0"));
    }
}
