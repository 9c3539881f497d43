//! The Python stack: which distributions are installed for the interpreter
//! on PATH (or `--python`), read from `*.dist-info` / `*.egg-info` metadata
//! without importing anything. Only the interpreter's `sys.path` is asked
//! for, by a one-line script that imports `sys` and `json`.
//!
//! The interpreter runs isolated (`-I`: no current directory or script
//! directory on `sys.path`, no `PYTHON*` variables, no user site directory,
//! so no `usercustomize`), from `/`, with the small tool environment of
//! source::command: a `json.py` or `sitecustomize.py` in the directory
//! rigdoctor was started from is never imported (issue 8; rigdoctor may run
//! as root). The `sys.path` it reports is the environment's own: its
//! stdlib, its site-packages (a venv's or conda's) and their `.pth` entries.
//!
//! The result is the computed probe output `python-packages` (one
//! `name==version` per line; the interpreter and its version on stderr as
//! `interpreter=...` / `version=...`), so a capture holds the list, not the
//! thousands of metadata files behind it.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::rig::{ProbeReport, Python, PythonShim};
use crate::source::{CmdOutput, CmdSpec, CmdStatus, Listing, Read, Source};
use crate::text::excerpt;

const SYS_PATH_SCRIPT: &str = "import sys, json; print(json.dumps({'version': sys.version.split()[0], 'executable': sys.executable, 'path': sys.path}))";

/// PEP 503 normalization: lower case, runs of `-`, `_`, `.` become `-`.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// `Name:` and `Version:` from the RFC 822 header block of METADATA / PKG-INFO.
pub fn parse_metadata(text: &str) -> (Option<String>, Option<String>) {
    let (mut name, mut version) = (None, None);
    for line in text.lines() {
        if line.trim().is_empty() {
            break; // the body (long description) starts here
        }
        if let Some(v) = line.strip_prefix("Name:") {
            name.get_or_insert_with(|| v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("Version:") {
            version.get_or_insert_with(|| v.trim().to_string());
        }
    }
    (name, version)
}

/// Name and version from a metadata directory name:
/// `torch-2.1.0a0+cxx11.abi.dist-info`, `foo-1.0-py3.11.egg-info`, `foo.egg-info`.
pub fn parse_info_dir_name(dir: &str) -> Option<(String, Option<String>)> {
    let stem = dir
        .strip_suffix(".dist-info")
        .or_else(|| dir.strip_suffix(".egg-info"))?;
    match stem.split_once('-') {
        Some((name, rest)) => {
            // egg-info may carry a `-pyX.Y` tag after the version.
            let version = rest.split("-py").next().unwrap_or(rest);
            Some((name.to_string(), Some(version.to_string())))
        }
        None => Some((stem.to_string(), None)),
    }
}

/// The lines of a `python-packages` output that are not `name==version`
/// (a capture edited by hand, or not this output at all).
pub fn unreadable_package_lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter(|l| {
            l.split_once("==")
                .is_none_or(|(n, v)| normalize_name(n).is_empty() || v.trim().is_empty())
        })
        .collect()
}

/// Parse the `python-packages` output back into a map.
pub fn parse_packages(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let (n, v) = l.trim().split_once("==")?;
            let n = normalize_name(n);
            (!n.is_empty()).then(|| (n, v.trim().to_string()))
        })
        .collect()
}

/// Walk `sys.path` and list installed distributions; the first one on the
/// path wins, as it does for `import`.
fn installed(src: &dyn Source, path: &[String]) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for dir in path.iter().filter(|p| p.starts_with('/')) {
        let Listing::Ok(names) = src.list(dir) else {
            continue;
        };
        for entry in names
            .iter()
            .filter(|n| n.ends_with(".dist-info") || n.ends_with(".egg-info"))
        {
            let Some((dir_name, dir_version)) = parse_info_dir_name(entry) else {
                continue;
            };
            let base = format!("{dir}/{entry}");
            let meta = src
                .read(&format!("{base}/METADATA"))
                .text()
                .or_else(|| src.read(&format!("{base}/PKG-INFO")).text())
                // An egg-info may be a single file.
                .or_else(|| src.read(&base).text());
            let (name, version) = meta.as_deref().map(parse_metadata).unwrap_or((None, None));
            let name = normalize_name(&name.unwrap_or(dir_name));
            let Some(version) = version.or(dir_version) else {
                continue;
            };
            found.entry(name).or_insert(version);
        }
    }
    found
}

/// What a script's text says it is a shim of: `pyenv`, `asdf`, `conda`, or
/// `script` (another wrapper). None for a binary.
pub fn shim_kind(head: &[u8]) -> Option<&'static str> {
    if !head.starts_with(b"#!") {
        return None;
    }
    let text = String::from_utf8_lossy(head);
    Some(
        ["pyenv", "asdf", "conda"]
            .into_iter()
            .find(|k| text.contains(k))
            .unwrap_or("script"),
    )
}

/// Is the `cand` a PATH lookup finds a shell-script shim? pyenv's shim runs
/// bash and `pyenv exec` before the interpreter: 193 ms against 58 ms for the
/// interpreter itself on the machine of issue 15, so the page says why the
/// Python probe was slow. `kind path`, or None.
fn shim_of(src: &dyn Source, cand: &str) -> Option<String> {
    let path = if cand.contains('/') {
        vec![cand.to_string()]
    } else {
        let path = src.env_vars(&|k| k == "PATH").into_iter().next()?.1;
        path.split(':')
            // Relative entries are not looked at (design: nothing from the cwd).
            .filter(|d| d.starts_with('/'))
            .map(|d| format!("{}/{cand}", d.trim_end_matches('/')))
            .collect()
    };
    for p in path {
        // Shims are small scripts; an interpreter binary is megabytes.
        match src.read_checked(&p, 64 * 1024, &|b| b.starts_with(b"#!")) {
            Read::Ok(head) => return shim_kind(&head).map(|k| format!("{k} {p}")),
            Read::Missing => continue,
            // There, but not a script (or unreadable): the first on PATH.
            _ => return None,
        }
    }
    None
}

/// The computed `python-packages` output on the live machine.
fn produce(src: &dyn Source, interpreter: Option<&str>, timeout: Duration) -> CmdOutput {
    let candidates: Vec<&str> = match interpreter {
        Some(p) => vec![p],
        None => vec!["python3", "python"],
    };
    let mut last = CmdOutput::with_status(CmdStatus::Missing);
    for cand in candidates {
        let out = src.run(&CmdSpec::new(
            "python-sys-path",
            &[cand, "-I", "-c", SYS_PATH_SCRIPT],
            timeout,
        ));
        match out.status {
            CmdStatus::Exit(0) => {
                let v: serde_json::Value = match serde_json::from_slice(&out.stdout) {
                    Ok(v) => v,
                    Err(e) => {
                        let mut o = CmdOutput::with_status(CmdStatus::Failed(format!(
                            "{cand}: unreadable sys.path: {e}"
                        )));
                        o.duration_ms = out.duration_ms;
                        return o;
                    }
                };
                let path: Vec<String> = v["path"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                let pkgs = installed(src, &path);
                let stdout: String = pkgs.iter().map(|(n, v)| format!("{n}=={v}\n")).collect();
                let mut stderr = format!(
                    "interpreter={}\nversion={}\n",
                    v["executable"].as_str().unwrap_or(cand),
                    v["version"].as_str().unwrap_or("")
                );
                if let Some(shim) = shim_of(src, cand) {
                    stderr.push_str(&format!("shim={shim}\n"));
                }
                return CmdOutput {
                    status: CmdStatus::Exit(0),
                    stdout: stdout.into_bytes(),
                    stderr: stderr.into_bytes(),
                    duration_ms: out.duration_ms,
                    truncated: false,
                };
            }
            CmdStatus::Missing => continue,
            _ => {
                last = out;
                break;
            }
        }
    }
    last
}

/// Why `--python VALUE` cannot be an interpreter, said before any probe
/// runs (else the page would only say "no Python interpreter"): a path that
/// is not there, a directory (a venv's root), a file that is not
/// executable, or a name that no absolute entry of `path` (PATH) holds.
/// None when it may be one; running it is the probe's job.
pub fn interpreter_problem(value: &str, path: Option<&str>) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let hint =
        "give the interpreter itself, e.g. --python /usr/bin/python3 or --python ~/venv/bin/python";
    if value.trim().is_empty() {
        return Some(format!("--python is empty; {hint}"));
    }
    let shown = crate::text::escape_controls(value);
    if !value.contains('/') {
        let found = path
            .unwrap_or_default()
            .split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| std::path::Path::new(d).join(value))
            .any(|p| {
                std::fs::metadata(&p)
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            });
        return (!found).then(|| format!("--python {shown}: not found on PATH; {hint}"));
    }
    match std::fs::metadata(value) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Some(format!("--python {shown}: no such file; {hint}"))
        }
        Err(e) => Some(format!("--python {shown}: cannot be read ({e}); {hint}")),
        Ok(m) if m.is_dir() => {
            let bin = std::path::Path::new(value).join("bin/python");
            let venv = if bin.exists() {
                format!("; its interpreter is {}", bin.display())
            } else {
                String::new()
            };
            Some(format!("--python {shown} is a directory{venv}; {hint}"))
        }
        Ok(m) if m.permissions().mode() & 0o111 == 0 => {
            Some(format!("--python {shown} is not executable; {hint}"))
        }
        Ok(_) => None,
    }
}

pub fn probe(
    src: &dyn Source,
    interpreter: Option<&str>,
    timeout: Duration,
) -> (Python, ProbeReport) {
    let started = std::time::Instant::now();
    let out = src.computed("python-packages", &|live| {
        produce(live, interpreter, timeout)
    });
    let ms = if out.duration_ms > 0 {
        out.duration_ms
    } else {
        started.elapsed().as_millis() as u64
    };
    let mut py = Python::default();
    let (status, detail) = match &out.status {
        CmdStatus::Exit(0) => {
            py.packages = parse_packages(&out.stdout_text());
            for line in out.stderr_text().lines() {
                if let Some(v) = line.strip_prefix("interpreter=") {
                    py.interpreter = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("version=") {
                    py.version = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("shim=") {
                    // `kind path`; the path may hold spaces.
                    let (kind, path) = v.split_once(' ').unwrap_or(("script", v));
                    py.shim = Some(PythonShim {
                        kind: kind.to_string(),
                        path: path.to_string(),
                    });
                }
            }
            let text = out.stdout_text();
            let bad = unreadable_package_lines(&text);
            if bad.is_empty() {
                ("ok", format!("{} distributions", py.packages.len()))
            } else {
                // What the unreadable lines hold is unknown: a torch among
                // them would change the verdict.
                (
                    "unparsed",
                    format!(
                        "{} of the package list's lines are not name==version ({} read): {}",
                        bad.len(),
                        py.packages.len(),
                        excerpt(&bad.join("\n"))
                    ),
                )
            }
        }
        CmdStatus::Missing => (
            "missing",
            match interpreter {
                Some(p) => format!("the interpreter {p} (--python) is not there"),
                None => "no Python interpreter on PATH".to_string(),
            },
        ),
        CmdStatus::Timeout => (
            "timeout",
            format!(
                "the interpreter did not answer in {:.1} s",
                ms as f64 / 1000.0
            ),
        ),
        CmdStatus::Exit(c) => (
            "failed",
            format!(
                "the interpreter exited with {c}: {}",
                out.stderr_text().trim()
            ),
        ),
        CmdStatus::Signal(s) => (
            "failed",
            format!("the interpreter was killed by signal {s}"),
        ),
        CmdStatus::Failed(e) => ("failed", e.clone()),
    };
    (py, ProbeReport::new("python-packages", status, ms, detail))
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_bad_python_is_named_before_the_probe_runs() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let exe = d.join("python3");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plain = d.join("notes.txt");
        std::fs::write(&plain, "x").unwrap();
        let venv = d.join("venv");
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        std::fs::write(venv.join("bin/python"), "").unwrap();
        let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
        assert_eq!(interpreter_problem(&s(&exe), None), None);
        let m = interpreter_problem("/nonexistent/python3", None).unwrap();
        assert!(
            m.starts_with("--python /nonexistent/python3: no such file;"),
            "{m}"
        );
        let m = interpreter_problem(&s(&plain), None).unwrap();
        assert!(m.contains("is not executable"), "{m}");
        let m = interpreter_problem(&s(&venv), None).unwrap();
        assert!(
            m.contains("is a directory; its interpreter is") && m.contains("venv/bin/python"),
            "{m}"
        );
        // A name is looked up on PATH's absolute entries only.
        let path = format!(".:{}", s(d));
        assert_eq!(interpreter_problem("python3", Some(&path)), None);
        assert!(interpreter_problem("python3", Some(".:/nonexistent")).is_some());
        assert!(
            interpreter_problem("python9.99", Some(&path))
                .unwrap()
                .contains("not found on PATH")
        );
        assert!(interpreter_problem("", None).is_some());
        // A name from the command line is shown escaped.
        assert!(
            interpreter_problem("/x\u{1b}[2J", None)
                .unwrap()
                .contains("\\e[2J")
        );
    }

    use super::*;

    #[test]
    fn shims_by_their_script() {
        // pyenv's shim (pyenv libexec/pyenv-rehash writes it).
        let pyenv = b"#!/usr/bin/env bash\nset -e\n[ -n \"$PYENV_DEBUG\" ] && set -x\n\nprogram=\"${0##*/}\"\n\nexport PYENV_ROOT=\"/home/u/.pyenv\"\nexec \"/usr/lib/pyenv/libexec/pyenv\" exec \"$program\" \"$@\"\n";
        assert_eq!(shim_kind(pyenv), Some("pyenv"));
        assert_eq!(
            shim_kind(b"#!/bin/sh\nexec /opt/x/python3 \"$@\"\n"),
            Some("script")
        );
        assert_eq!(shim_kind(b"\x7fELF\x02\x01\x01"), None);
    }

    #[test]
    fn names_normalize() {
        assert_eq!(
            normalize_name("Intel_Extension_For_PyTorch"),
            "intel-extension-for-pytorch"
        );
        assert_eq!(normalize_name("ruamel.yaml"), "ruamel-yaml");
        assert_eq!(normalize_name("a__b--c"), "a-b-c");
    }

    #[test]
    fn metadata_headers_only() {
        let (n, v) = parse_metadata(
            "Metadata-Version: 2.1\nName: torch\nVersion: 2.1.0a0+cxx11.abi\n\nName: not this\n",
        );
        assert_eq!(n.as_deref(), Some("torch"));
        assert_eq!(v.as_deref(), Some("2.1.0a0+cxx11.abi"));
        assert_eq!(parse_metadata(""), (None, None));
    }

    #[test]
    fn info_dir_names() {
        assert_eq!(
            parse_info_dir_name("intel_extension_for_pytorch-2.1.10+xpu.dist-info"),
            Some((
                "intel_extension_for_pytorch".into(),
                Some("2.1.10+xpu".into())
            ))
        );
        assert_eq!(
            parse_info_dir_name("six-1.16.0-py3.11.egg-info"),
            Some(("six".into(), Some("1.16.0".into())))
        );
        assert_eq!(
            parse_info_dir_name("mypkg.egg-info"),
            Some(("mypkg".into(), None))
        );
        assert_eq!(parse_info_dir_name("torch"), None);
    }

    #[test]
    fn packages_output_round_trips() {
        let m = parse_packages(
            "torch==2.1.0a0+cxx11.abi\nIntel_Extension_For_PyTorch==2.1.10+xpu\njunk\n==1\n",
        );
        assert_eq!(
            m.get("torch").map(String::as_str),
            Some("2.1.0a0+cxx11.abi")
        );
        assert_eq!(
            m.get("intel-extension-for-pytorch").map(String::as_str),
            Some("2.1.10+xpu")
        );
        assert_eq!(m.len(), 2);
    }
}
