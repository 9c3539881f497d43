//! The host: kernel, distribution, CPU, memory, NUMA nodes. Read from
//! `/proc` and `/etc/os-release`; parsers are pure.

use std::collections::BTreeSet;

use crate::rig::{Host, ProbeReport};
use crate::source::{Listing, Read, Source};

/// `KEY=value` / `KEY="value"` lines of os-release(5).
pub fn parse_os_release(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                return None;
            }
            let (k, v) = l.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|x| x.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
                .unwrap_or(v);
            Some((k.trim().to_string(), v.replace("\\\"", "\"")))
        })
        .collect()
}

/// CPU model, logical CPUs and physical cores from /proc/cpuinfo.
pub fn parse_cpuinfo(text: &str) -> (Option<String>, Option<u32>, Option<u32>) {
    let mut model = None;
    let mut logical = 0u32;
    let mut cores: BTreeSet<(String, String)> = BTreeSet::new();
    let mut phys = String::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "processor" => {
                logical += 1;
                phys.clear();
            }
            "model name" | "Model" | "cpu model" if model.is_none() => model = Some(v.to_string()),
            "physical id" => phys = v.to_string(),
            "core id" => {
                cores.insert((phys.clone(), v.to_string()));
            }
            _ => {}
        }
    }
    let logical = (logical > 0).then_some(logical);
    let cores = if cores.is_empty() {
        logical
    } else {
        Some(cores.len() as u32)
    };
    (model, logical, cores)
}

/// `MemTotal` in bytes from /proc/meminfo.
pub fn parse_meminfo_total(text: &str) -> Option<u64> {
    parse_meminfo(text, "MemTotal:")
}

/// A `KEY:` line of /proc/meminfo in bytes (`MemAvailable:`).
pub fn parse_meminfo(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?;
        let mut it = rest.split_whitespace();
        let n: u64 = it.next()?.parse().ok()?;
        let unit = it.next().unwrap_or("kB");
        Some(match unit {
            "kB" | "KB" | "kb" => n.checked_mul(1024)?,
            "MB" => n.checked_mul(1024 * 1024)?,
            _ => n,
        })
    })
}

pub fn probe(src: &dyn Source) -> (Host, ProbeReport) {
    let mut host = Host::default();
    let mut missing = Vec::new();

    host.kernel = src.read("/proc/sys/kernel/osrelease").trimmed();
    if host.kernel.is_none() {
        missing.push("kernel");
    }
    let os = match src.read("/etc/os-release") {
        Read::Ok(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        _ => src.read("/usr/lib/os-release").text(),
    };
    if let Some(os) = os {
        for (k, v) in parse_os_release(&os) {
            match k.as_str() {
                "ID" => host.os_id = Some(v),
                "PRETTY_NAME" => host.os_name = Some(v),
                "VERSION_ID" => host.os_version_id = Some(v),
                _ => {}
            }
        }
    } else {
        missing.push("os-release");
    }
    match src.read("/proc/cpuinfo").text() {
        Some(t) => {
            let (m, l, c) = parse_cpuinfo(&t);
            host.cpu_model = m;
            host.cpus = l;
            host.cores = c;
        }
        None => missing.push("cpuinfo"),
    }
    match src.read("/proc/meminfo").text() {
        Some(t) => {
            host.mem_total_bytes = parse_meminfo_total(&t);
            host.mem_available_bytes = parse_meminfo(&t, "MemAvailable:");
        }
        None => missing.push("meminfo"),
    }
    host.numa_nodes = match src.list("/sys/devices/system/node") {
        Listing::Ok(names) => {
            let n = names
                .iter()
                .filter(|n| {
                    n.strip_prefix("node")
                        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                })
                .count() as u32;
            (n > 0).then_some(n)
        }
        _ => None,
    };
    let (status, detail) = if missing.is_empty() {
        ("ok", String::new())
    } else if missing.len() == 4 {
        ("missing", format!("could not read {}", missing.join(", ")))
    } else {
        ("ok", format!("could not read {}", missing.join(", ")))
    };
    (host, ProbeReport::new("host", status, 0, detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_quotes_and_comments() {
        let kv = parse_os_release(
            "# comment\nPRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\nNAME='Fedora Linux'\nID=ubuntu\nVERSION_ID=\"24.04\"\n\nbroken line\n",
        );
        assert!(kv.contains(&("PRETTY_NAME".into(), "Ubuntu 24.04.1 LTS".into())));
        assert!(kv.contains(&("NAME".into(), "Fedora Linux".into())));
        assert!(kv.contains(&("ID".into(), "ubuntu".into())));
    }

    #[test]
    fn cpuinfo_counts_threads_and_cores() {
        let mut t = String::new();
        for (i, core) in [0, 0, 1, 1].iter().enumerate() {
            t.push_str(&format!(
                "processor\t: {i}\nmodel name\t: 13th Gen Intel(R) Core(TM) i5-13400\nphysical id\t: 0\ncore id\t\t: {core}\n\n"
            ));
        }
        let (m, l, c) = parse_cpuinfo(&t);
        assert_eq!(m.as_deref(), Some("13th Gen Intel(R) Core(TM) i5-13400"));
        assert_eq!(l, Some(4));
        assert_eq!(c, Some(2));
        assert_eq!(parse_cpuinfo(""), (None, None, None));
    }

    #[test]
    fn meminfo_total() {
        assert_eq!(
            parse_meminfo_total("MemTotal:       65536000 kB\nMemFree: 1 kB\n"),
            Some(65536000 * 1024)
        );
        assert_eq!(parse_meminfo_total("garbage"), None);
        assert_eq!(
            parse_meminfo(
                "MemTotal: 8 kB\nMemAvailable:    2048 kB\n",
                "MemAvailable:"
            ),
            Some(2 << 20)
        );
        assert_eq!(
            parse_meminfo("MemAvailable: 99999999999999999999 kB", "MemAvailable:"),
            None
        );
        assert_eq!(parse_meminfo_total("MemTotal: lots kB"), None);
    }
}
