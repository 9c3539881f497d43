//! Version pins of the Intel XPU Python stack (checks/pins.toml): IPEX ↔
//! torch ↔ oneAPI, and torch `+xpu` ↔ its oneAPI runtime wheels and
//! pytorch-triton-xpu. The verdicts are facts (`facts.python.pins`); rules
//! decide what to say.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use crate::probe::oneapi::year_of;
use crate::rig::{OneApi, Python};

const PINS_TOML: &str = include_str!("../../checks/pins.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    index: String,
    ipex: Vec<IpexRow>,
    torch_xpu: Vec<TorchXpuRow>,
    libsycl: Vec<LibsyclRow>,
    ipex_llm_cpp: Vec<IpexLlmCppRow>,
}

/// One oneAPI release line and the SYCL runtime soname it ships.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LibsyclRow {
    pub year: u32,
    pub soname: String,
    /// The line's last release (`2024.2`).
    pub latest: String,
    /// The same release as a pip runtime wheel (`intel-sycl-rt==2024.2.1`).
    pub wheel: String,
    pub source: String,
}

/// A range of `bigdl-core-cpp` builds and the oneAPI release they link.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IpexLlmCppRow {
    from: Option<String>,
    until: Option<String>,
    oneapi: String,
    source: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IpexRow {
    version: String,
    torch: String,
    oneapi: Option<String>,
    #[serde(default)]
    runtime: BTreeMap<String, String>,
    #[allow(dead_code, reason = "documentation for reviewers of the table")]
    driver: Option<String>,
    gpus: String,
    disagree: Option<String>,
    /// The wheel's local version: `xpu` (the default), `gpu` for the 1.10 wheels.
    local: Option<String>,
    /// `pip install -f` page of the 1.x / 2.0 guides, instead of `index`.
    find_links: Option<String>,
    #[allow(dead_code, reason = "documentation for reviewers of the table")]
    source: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TorchXpuRow {
    torch: String,
    runtime: String,
    triton: String,
    #[allow(dead_code, reason = "documentation for reviewers of the table")]
    source: String,
}

fn parse(text: &str) -> Result<File, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

static PINS: LazyLock<Option<File>> = LazyLock::new(|| parse(PINS_TOML).ok());

/// `2.1.10+xpu` -> `2.1`; `2024.0.2` -> `2024.0`.
pub fn major_minor(v: &str) -> String {
    let v = v.split('+').next().unwrap_or(v);
    let mut it = v.split('.').map(|p| {
        p.chars()
            .take_while(|c| c.is_ascii_digit())
            .collect::<String>()
    });
    match (it.next(), it.next()) {
        (Some(a), Some(b)) if !a.is_empty() && !b.is_empty() => format!("{a}.{b}"),
        (Some(a), _) => a,
        _ => String::new(),
    }
}

/// `2.1.10+xpu` -> `2.1.10`.
fn release(v: &str) -> &str {
    v.split('+').next().unwrap_or(v)
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct IpexPin {
    pub version: String,
    /// The release is in the table.
    pub known: bool,
    pub torch_found: Option<String>,
    pub torch_expected: String,
    /// IPEX and torch share major.minor (else IPEX exits 127 at import).
    pub torch_ok: Option<bool>,
    /// The oneAPI release this IPEX needs on the system, if any.
    pub oneapi_expected: Option<String>,
    pub oneapi_found: Option<String>,
    pub oneapi_ok: Option<bool>,
    /// A pasteable way to get the right oneAPI into this shell.
    pub oneapi_fix: Option<String>,
    /// `pip install` of the matching pair.
    pub install: String,
    pub gpus: Option<String>,
    /// Where the sources disagree about the pin.
    pub disagree: Option<String>,
    /// The SYCL runtime soname the wheel links (that of `oneapi_expected`).
    pub libsycl_expected: Option<String>,
    /// The soname `oneapi_found` ships.
    pub libsycl_found: Option<String>,
}

/// ipex-llm's C++ build (`bigdl-core-cpp`: its ollama, llama-server,
/// llama-cli) against the oneAPI release this shell loads.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct IpexLlmCppPin {
    /// The `bigdl-core-cpp` version.
    pub version: String,
    /// The oneAPI release the build is linked against (null: a nightly no
    /// source dates).
    pub oneapi_expected: Option<String>,
    pub libsycl_expected: Option<String>,
    pub oneapi_found: Option<String>,
    pub libsycl_found: Option<String>,
    /// Both sonames are known and equal; null when either is unknown.
    pub ok: Option<bool>,
    /// An installed release that ships `libsycl_expected`.
    pub installed_match: Option<String>,
    /// Pasteable lines, when `ok` is false.
    pub fix: Option<String>,
    /// Where the pin comes from.
    pub source: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct TorchXpuPin {
    pub torch: String,
    pub runtime_expected: String,
    /// `intel-sycl-rt==2025.0.4`, the first runtime wheel found.
    pub runtime_found: Option<String>,
    pub runtime_ok: bool,
    pub triton_expected: String,
    pub triton_found: Option<String>,
    pub triton_ok: bool,
    /// A CUDA `triton` package next to the XPU one shadows it.
    pub stray_triton: Option<String>,
    pub fix: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Pins {
    pub ipex: Option<IpexPin>,
    pub torch_xpu: Option<TorchXpuPin>,
    pub ipex_llm_cpp: Option<IpexLlmCppPin>,
}

/// The oneAPI release line that ships `soname` (`libsycl.so.7` -> 2024).
pub fn libsycl_line(soname: &str) -> Option<&'static LibsyclRow> {
    PINS.as_ref()?.libsycl.iter().find(|r| r.soname == soname)
}

/// The SYCL runtime soname oneAPI `release` (`2025.0.4`) ships.
pub fn libsycl_of(release: &str) -> Option<&'static str> {
    let year = year_of(release)?;
    PINS.as_ref()?
        .libsycl
        .iter()
        .find(|r| r.year == year)
        .map(|r| r.soname.as_str())
}

/// A PEP 440 version as an ordered key, enough for `2.6.0b20250206` <
/// `2.6.0` < `2.7.0b1`: (release, 0 for a pre-release / 1 for a final, the
/// pre-release number). Local and post parts are ignored.
fn pep440_key(v: &str) -> Option<(Vec<u64>, u8, u64)> {
    let v = v.split('+').next()?.trim();
    let v = v.split(".post").next()?.split(".dev").next()?;
    let (rel, pre) = match v.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&v[..i], Some(&v[i..])),
        None => (v, None),
    };
    let mut rel: Vec<u64> = rel
        .trim_end_matches('.')
        .split('.')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    while rel.len() > 1 && rel.last() == Some(&0) {
        rel.pop();
    }
    match pre {
        None => Some((rel, 1, 0)),
        Some(p) => {
            let n = p.trim_start_matches(|c: char| c.is_ascii_alphabetic());
            Some((rel, 0, n.parse().ok()?))
        }
    }
}

fn in_range(v: &str, row: &IpexLlmCppRow) -> bool {
    let Some(k) = pep440_key(v) else {
        return false;
    };
    let above = |b: &Option<String>| {
        b.as_deref()
            .is_none_or(|b| pep440_key(b).is_some_and(|b| k >= b))
    };
    let below = |b: &Option<String>| {
        b.as_deref()
            .is_none_or(|b| pep440_key(b).is_some_and(|b| k <= b))
    };
    above(&row.from) && below(&row.until)
}

/// `source ...` for an installed release tree.
fn source_line(path: &str, oneapi: &OneApi, want: &str) -> String {
    let root = oneapi
        .root
        .clone()
        .unwrap_or_else(|| "/opt/intel/oneapi".into());
    if path.contains("/compiler/") {
        format!(
            "source {path}/env/vars.sh && source {root}/mkl/{v}/env/vars.sh   # instead of setvars.sh, which takes `latest`",
            v = path.rsplit('/').next().unwrap_or(want)
        )
    } else {
        format!("source {path}/oneapi-vars.sh   # instead of setvars.sh, which takes `latest`")
    }
}

const IPEX_LLM_PORTABLE: &str = "# or ipex-llm's portable zip/tgz (release v2.3.0-nightly, in refs): it carries its own oneAPI runtime; do not source oneAPI for it";

fn ipex_llm_cpp(version: &str, table: &File, oneapi: &OneApi) -> IpexLlmCppPin {
    let row = table.ipex_llm_cpp.iter().find(|r| in_range(version, r));
    let oneapi_expected = row.map(|r| r.oneapi.clone());
    let line = oneapi_expected
        .as_deref()
        .and_then(year_of)
        .and_then(|y| table.libsycl.iter().find(|l| l.year == y));
    let oneapi_found = oneapi.active.clone();
    let libsycl_found = oneapi_found
        .as_deref()
        .and_then(libsycl_of)
        .map(String::from);
    let libsycl_expected = line.map(|l| l.soname.clone());
    let ok = match (&libsycl_expected, &libsycl_found) {
        (Some(a), Some(b)) => Some(a == b),
        _ => None,
    };
    // The newest installed tree of the year the build needs.
    let installed_match = line.and_then(|l| {
        oneapi
            .releases
            .iter()
            .filter(|r| r.source == "install" && year_of(&r.version) == Some(l.year))
            .filter_map(|r| r.path.clone())
            .next_back()
    });
    let fix = match (ok, line, &oneapi_expected) {
        (Some(false), Some(l), Some(want)) => {
            let mut f = Vec::new();
            if let Some(path) = &installed_match {
                f.push(source_line(path, oneapi, want));
                f.push(
                    "ollama serve   # (or llama-server / llama-cli) from this shell".to_string(),
                );
            } else {
                let found_year = oneapi_found.as_deref().and_then(year_of);
                // A newer ipex-llm build may be linked against what is installed.
                if let Some(r) = table
                    .ipex_llm_cpp
                    .iter()
                    .find(|r| year_of(&r.oneapi) == found_year && r.from.is_some())
                {
                    f.push(format!(
                        "pip install --pre --upgrade \"ipex-llm[cpp]\"   # bigdl-core-cpp {} and later link oneAPI {} ({}), the release in use here",
                        r.from.as_deref().unwrap_or(""),
                        r.oneapi,
                        libsycl_found.as_deref().unwrap_or("")
                    ));
                    f.push(
                        "init-ollama   # (or init-llama-cpp) again in your working directory"
                            .to_string(),
                    );
                    f.push(format!(
                        "# or keep this build: install oneAPI {want} ({}) next to {} and source it",
                        l.soname,
                        oneapi_found.as_deref().unwrap_or("")
                    ));
                } else {
                    f.push(format!(
                        "# install oneAPI {want} ({}; any {}.x ships it, {} is the last) and source it before starting the binary",
                        l.soname, l.year, l.latest
                    ));
                }
                if l.year == 2024 {
                    f.push("# the apt list of 2024.0: ipex-llm's install_linux_gpu.md, \"Install oneAPI\" (in refs)".to_string());
                } else {
                    f.push("# https://www.intel.com/content/www/us/en/developer/tools/oneapi/base-toolkit-download.html".to_string());
                }
            }
            f.push(IPEX_LLM_PORTABLE.to_string());
            Some(f.join("\n"))
        }
        _ => None,
    };
    IpexLlmCppPin {
        version: version.to_string(),
        oneapi_expected,
        libsycl_expected,
        oneapi_found,
        libsycl_found,
        ok,
        installed_match,
        fix,
        source: row.map(|r| r.source.clone()),
    }
}

/// How to bring release `want` (major.minor) into the shell, from an
/// installed tree when there is one.
fn oneapi_fix(want: &str, oneapi: &OneApi, runtime: &BTreeMap<String, String>) -> Option<String> {
    let installed = oneapi
        .releases
        .iter()
        .find(|r| r.source == "install" && major_minor(&r.version) == want)
        .and_then(|r| r.path.clone());
    if let Some(path) = installed {
        return Some(source_line(&path, oneapi, want));
    }
    if !runtime.is_empty() {
        let pkgs: Vec<String> = runtime.iter().map(|(k, v)| format!("{k}=={v}")).collect();
        return Some(format!(
            "pip install {}   # the oneAPI {want} runtime as wheels",
            pkgs.join(" ")
        ));
    }
    Some(format!(
        "# install the oneAPI Base Toolkit {want} and source its environment"
    ))
}

pub fn derive(py: &Python, oneapi: &OneApi) -> Pins {
    let mut pins = Pins::default();
    let Some(table) = PINS.as_ref() else {
        return pins;
    };
    let pkg = |n: &str| py.packages.get(n).cloned();
    let torch = pkg("torch");

    if let Some(ipex) = pkg("intel-extension-for-pytorch") {
        let row = table.ipex.iter().find(|r| r.version == release(&ipex));
        let mm = major_minor(&ipex);
        let torch_expected = row
            .map(|r| r.torch.clone())
            .unwrap_or_else(|| format!("{mm}.*"));
        let oneapi_expected = row.and_then(|r| r.oneapi.clone());
        let oneapi_expected_soname = oneapi_expected
            .as_deref()
            .and_then(libsycl_of)
            .map(String::from);
        let oneapi_found = oneapi.active.clone();
        let oneapi_ok = match (&oneapi_expected, &oneapi_found) {
            (Some(want), Some(found)) => Some(&major_minor(found) == want),
            _ => None,
        };
        let empty = BTreeMap::new();
        pins.ipex = Some(IpexPin {
            known: row.is_some(),
            torch_ok: torch.as_ref().map(|t| major_minor(t) == mm),
            torch_found: torch.clone(),
            install: format!(
                "pip install torch=={} intel-extension-for-pytorch=={}+{} {}",
                row.map(|r| r.torch.as_str()).unwrap_or(&torch_expected),
                release(&ipex),
                row.and_then(|r| r.local.as_deref()).unwrap_or("xpu"),
                match row.and_then(|r| r.find_links.as_deref()) {
                    Some(f) => format!("-f {f}"),
                    None => format!("--extra-index-url {}", table.index),
                }
            ),
            oneapi_fix: oneapi_expected
                .as_deref()
                .filter(|_| oneapi_ok == Some(false))
                .and_then(|want| {
                    oneapi_fix(want, oneapi, row.map(|r| &r.runtime).unwrap_or(&empty))
                }),
            torch_expected,
            oneapi_expected,
            oneapi_found,
            oneapi_ok,
            gpus: row.map(|r| r.gpus.clone()),
            disagree: row.and_then(|r| r.disagree.clone()),
            libsycl_expected: oneapi_expected_soname,
            libsycl_found: oneapi
                .active
                .as_deref()
                .and_then(libsycl_of)
                .map(String::from),
            version: ipex,
        });
    }

    if let Some(v) = pkg("bigdl-core-cpp") {
        pins.ipex_llm_cpp = Some(ipex_llm_cpp(&v, table, oneapi));
    }

    if let Some(t) = torch.as_deref().filter(|t| t.contains("+xpu")) {
        let mm = major_minor(t);
        if let Some(row) = table.torch_xpu.iter().find(|r| r.torch == mm) {
            let runtime_found = ["intel-sycl-rt", "intel-cmplr-lib-rt", "dpcpp-cpp-rt"]
                .iter()
                .find_map(|w| pkg(w).map(|v| format!("{w}=={v}")));
            let runtime_ok = runtime_found
                .as_deref()
                .and_then(|f| f.split("==").nth(1))
                .is_some_and(|v| major_minor(v) == row.runtime);
            let triton_found = pkg("pytorch-triton-xpu");
            let triton_ok = triton_found
                .as_deref()
                .is_some_and(|v| major_minor(v) == row.triton);
            let stray_triton = pkg("triton");
            let mut fix = Vec::new();
            if let Some(s) = &stray_triton {
                fix.push(format!(
                    "pip uninstall -y triton   # the CUDA build ({s}) shadows pytorch-triton-xpu"
                ));
            }
            fix.push(format!(
                "pip install --force-reinstall torch=={} --index-url https://download.pytorch.org/whl/xpu   # brings its matching runtime and pytorch-triton-xpu",
                release(t)
            ));
            pins.torch_xpu = Some(TorchXpuPin {
                torch: t.to_string(),
                runtime_expected: row.runtime.clone(),
                runtime_found,
                runtime_ok,
                triton_expected: row.triton.clone(),
                triton_found,
                triton_ok,
                stray_triton,
                fix: fix.join("\n"),
            });
        }
    }
    pins
}

/// For tests: the table parses and its rows are unique.
pub fn check_table() -> Result<usize, String> {
    let f = parse(PINS_TOML)?;
    let mut seen: HashMap<&str, ()> = HashMap::new();
    for r in &f.ipex {
        if seen.insert(&r.version, ()).is_some() {
            return Err(format!("ipex {} listed twice", r.version));
        }
    }
    for (i, l) in f.libsycl.iter().enumerate() {
        if f.libsycl[..i]
            .iter()
            .any(|o| o.year == l.year || o.soname == l.soname)
        {
            return Err(format!("libsycl {} listed twice", l.year));
        }
    }
    for r in &f.ipex_llm_cpp {
        for b in [&r.from, &r.until].into_iter().flatten() {
            if pep440_key(b).is_none() {
                return Err(format!("ipex_llm_cpp bound {b} does not parse"));
            }
        }
        if !year_of(&r.oneapi).is_some_and(|y| f.libsycl.iter().any(|l| l.year == y)) {
            return Err(format!(
                "ipex_llm_cpp oneapi {} has no libsycl row",
                r.oneapi
            ));
        }
    }
    Ok(f.ipex.len() + f.torch_xpu.len() + f.libsycl.len() + f.ipex_llm_cpp.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rig::OneApiRelease;

    fn py(pkgs: &[(&str, &str)]) -> Python {
        Python {
            packages: pkgs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    fn oneapi(active: &str, installed: &[&str]) -> OneApi {
        OneApi {
            root: Some("/opt/intel/oneapi".into()),
            releases: installed
                .iter()
                .map(|v| OneApiRelease {
                    version: v.to_string(),
                    source: "install".into(),
                    path: Some(format!("/opt/intel/oneapi/compiler/{v}")),
                })
                .collect(),
            active: Some(active.into()),
            active_year: None,
        }
    }

    #[test]
    fn table_is_sane() {
        assert!(check_table().unwrap() > 10);
        assert_eq!(major_minor("2.1.0a0+cxx11.abi"), "2.1");
        assert_eq!(major_minor("2024.0.2"), "2024.0");
        assert_eq!(major_minor("2.10.0+xpu"), "2.10");
    }

    #[test]
    fn the_dual_a770_trap() {
        // IPEX 2.1.10 was built against oneAPI 2024.0; 2024.1 is sourced.
        let p = derive(
            &py(&[
                ("torch", "2.1.0a0+cxx11.abi"),
                ("intel-extension-for-pytorch", "2.1.10+xpu"),
            ]),
            &oneapi("2024.1", &["2024.0", "2024.1"]),
        );
        let i = p.ipex.unwrap();
        assert_eq!(i.torch_ok, Some(true));
        assert_eq!(i.oneapi_ok, Some(false));
        assert_eq!(i.oneapi_expected.as_deref(), Some("2024.0"));
        assert!(
            i.oneapi_fix
                .unwrap()
                .starts_with("source /opt/intel/oneapi/compiler/2024.0/env/vars.sh")
        );
        let ok = derive(
            &py(&[
                ("torch", "2.1.0a0+cxx11.abi"),
                ("intel-extension-for-pytorch", "2.1.10+xpu"),
            ]),
            &oneapi("2024.0", &["2024.0"]),
        );
        assert_eq!(ok.ipex.unwrap().oneapi_ok, Some(true));
    }

    #[test]
    fn ipex_1x_history() {
        // IPEX 1.10.200+gpu wanted oneAPI 2022.3 and torch 1.10; 1.13.120+xpu 2023.1.
        let p = derive(
            &py(&[
                ("torch", "1.10.0a0"),
                ("intel-extension-for-pytorch", "1.10.200+gpu"),
            ]),
            &oneapi("2023.0", &["2023.0"]),
        );
        let i = p.ipex.expect("ipex pin");
        assert!(i.known);
        assert_eq!(i.oneapi_expected.as_deref(), Some("2022.3"));
        assert_eq!(i.oneapi_ok, Some(false));
        assert!(
            i.install.contains(
                "intel-extension-for-pytorch==1.10.200+gpu -f https://developer.intel.com/ipex-whl-stable-xpu"
            ),
            "{}",
            i.install
        );
        assert_eq!(i.libsycl_expected.as_deref(), Some("libsycl.so.5"));
        assert_eq!(i.libsycl_found.as_deref(), Some("libsycl.so.6"));
        let p = derive(
            &py(&[
                ("torch", "1.13.0a0+git6c9b55e"),
                ("intel-extension-for-pytorch", "1.13.120+xpu"),
            ]),
            &oneapi("2023.1", &["2023.1"]),
        );
        let i = p.ipex.expect("ipex pin");
        assert_eq!(
            (i.known, i.oneapi_ok, i.torch_ok),
            (true, Some(true), Some(true))
        );
    }

    #[test]
    fn libsycl_soname_per_release_line() {
        assert_eq!(libsycl_of("2024.0"), Some("libsycl.so.7"));
        assert_eq!(libsycl_of("2024.2.1"), Some("libsycl.so.7"));
        assert_eq!(libsycl_of("2025.0.4"), Some("libsycl.so.8"));
        assert_eq!(libsycl_of("2026.1"), Some("libsycl.so.9"));
        assert_eq!(libsycl_of("2023.1"), Some("libsycl.so.6"));
        assert_eq!(libsycl_of("2021.4"), None, "no row: unknown, not a guess");
        assert_eq!(libsycl_line("libsycl.so.8").map(|l| l.year), Some(2025));
        assert!(libsycl_line("libsycl.so.77").is_none());
    }

    #[test]
    fn pep440_order_of_nightlies() {
        let k = |v| pep440_key(v).unwrap();
        assert!(k("2.6.0b20250206") < k("2.6.0b20250224"));
        assert!(k("2.6.0b20250224") < k("2.6.0"));
        assert!(k("2.6.0") < k("2.7.0b20250415"));
        assert_eq!(k("2.6"), k("2.6.0"));
        assert!(pep440_key("nightly").is_none());
    }

    #[test]
    fn ipex_llm_cpp_build_against_the_sourced_oneapi() {
        // intel/ipex-llm #12594: a 2024.0 build (2.2.0b20241226) on oneAPI 2025.0.
        let p = derive(
            &py(&[
                ("bigdl-core-cpp", "2.6.0b20241226"),
                ("ipex-llm", "2.2.0b20241226"),
            ]),
            &oneapi("2025.0", &["2025.0"]),
        );
        let c = p.ipex_llm_cpp.expect("cpp pin");
        assert_eq!(c.libsycl_expected.as_deref(), Some("libsycl.so.7"));
        assert_eq!(c.libsycl_found.as_deref(), Some("libsycl.so.8"));
        assert_eq!(c.ok, Some(false));
        let fix = c.fix.unwrap();
        assert!(
            fix.starts_with("pip install --pre --upgrade \"ipex-llm[cpp]\""),
            "{fix}"
        );
        // 2024.2 installed next to 2025.0: source it (same soname as 2024.0).
        let p = derive(
            &py(&[("bigdl-core-cpp", "2.6.0b20241226")]),
            &oneapi("2025.0", &["2024.2", "2025.0"]),
        );
        let c = p.ipex_llm_cpp.unwrap();
        assert_eq!(
            c.installed_match.as_deref(),
            Some("/opt/intel/oneapi/compiler/2024.2")
        );
        assert!(
            c.fix
                .unwrap()
                .starts_with("source /opt/intel/oneapi/compiler/2024.2/env/vars.sh")
        );
        // The same build on 2024.2: no verdict against it.
        let ok = derive(
            &py(&[("bigdl-core-cpp", "2.6.0b20241226")]),
            &oneapi("2024.2", &["2024.2"]),
        );
        assert_eq!(ok.ipex_llm_cpp.unwrap().ok, Some(true));
        // A nightly no source dates: unknown.
        let gap = derive(
            &py(&[("bigdl-core-cpp", "2.6.0b20250212")]),
            &oneapi("2025.0", &["2025.0"]),
        );
        let g = gap.ipex_llm_cpp.unwrap();
        assert_eq!((g.ok, g.oneapi_expected), (None, None));
        // A 2025 build on 2026.1 (libsycl.so.9): install 2025, no upgrade advice.
        let p = derive(
            &py(&[("bigdl-core-cpp", "2.7.0b20250630")]),
            &oneapi("2026.1", &["2026.1"]),
        );
        let f = p.ipex_llm_cpp.unwrap().fix.unwrap();
        assert!(
            f.starts_with("# install oneAPI 2025.0 (libsycl.so.8"),
            "{f}"
        );
    }

    #[test]
    fn ipex_torch_major_minor() {
        let p = derive(
            &py(&[
                ("torch", "2.3.1+cxx11.abi"),
                ("intel-extension-for-pytorch", "2.1.10+xpu"),
            ]),
            &OneApi::default(),
        );
        let i = p.ipex.unwrap();
        assert_eq!(i.torch_ok, Some(false));
        assert!(i.install.starts_with(
            "pip install torch==2.1.0a0 intel-extension-for-pytorch==2.1.10+xpu --extra-index-url"
        ));
    }

    #[test]
    fn torch_xpu_runtime_and_triton() {
        let p = derive(
            &py(&[
                ("torch", "2.8.0+xpu"),
                ("intel-sycl-rt", "2025.0.4"),
                ("pytorch-triton-xpu", "3.4.0"),
                ("triton", "3.4.0"),
            ]),
            &OneApi::default(),
        );
        let t = p.torch_xpu.unwrap();
        assert!(!t.runtime_ok && t.triton_ok);
        assert_eq!(t.stray_triton.as_deref(), Some("3.4.0"));
        assert!(t.fix.starts_with("pip uninstall -y triton"));
        let good = derive(
            &py(&[
                ("torch", "2.8.0+xpu"),
                ("intel-sycl-rt", "2025.1.1"),
                ("pytorch-triton-xpu", "3.4.0"),
            ]),
            &OneApi::default(),
        );
        let g = good.torch_xpu.unwrap();
        assert!(g.runtime_ok && g.triton_ok && g.stray_triton.is_none());
    }
}
