//! Version pins of the Intel XPU Python stack (checks/pins.toml): IPEX ↔
//! torch ↔ oneAPI, and torch `+xpu` ↔ its oneAPI runtime wheels and
//! pytorch-triton-xpu. The verdicts are facts (`facts.python.pins`); rules
//! decide what to say.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use crate::rig::{OneApi, Python};

const PINS_TOML: &str = include_str!("../../checks/pins.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    index: String,
    ipex: Vec<IpexRow>,
    torch_xpu: Vec<TorchXpuRow>,
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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TorchXpuRow {
    torch: String,
    runtime: String,
    triton: String,
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
        let root = oneapi
            .root
            .clone()
            .unwrap_or_else(|| "/opt/intel/oneapi".into());
        return Some(if path.contains("/compiler/") {
            format!(
                "source {path}/env/vars.sh && source {root}/mkl/{v}/env/vars.sh   # instead of setvars.sh, which takes `latest`",
                v = path.rsplit('/').next().unwrap_or(want)
            )
        } else {
            format!("source {path}/oneapi-vars.sh   # instead of setvars.sh, which takes `latest`")
        });
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
                "pip install torch=={} intel-extension-for-pytorch=={}+{} --extra-index-url {}",
                row.map(|r| r.torch.as_str()).unwrap_or(&torch_expected),
                release(&ipex),
                row.and_then(|r| r.local.as_deref()).unwrap_or("xpu"),
                table.index
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
            version: ipex,
        });
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
    Ok(f.ipex.len() + f.torch_xpu.len())
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
            i.install
                .contains("intel-extension-for-pytorch==1.10.200+gpu"),
            "{}",
            i.install
        );
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
