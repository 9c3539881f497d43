//! CPU package energy from RAPL (`/sys/class/powercap/intel-rapl:N/energy_uj`,
//! µJ; AMD Zen kernels expose the same files): the joules every package used
//! over each sample's interval. Since Linux 5.10 (CVE-2020-8694) `energy_uj`
//! is readable by root only: then the source is `denied` and the CPU energy
//! unknown, never 0. Only `package-N` zones count: `psys` (the whole
//! platform) and the `core`/`uncore`/`dram` subzones (`intel-rapl:0:0`)
//! would count the same joules twice.

use super::reader::{ReadErr, Reader};
use super::sample::SourceStatus;

const BASE: &str = "/sys/class/powercap";

#[derive(Debug, Clone)]
struct Zone {
    energy: String,
    /// The counter wraps after this many µJ (`max_energy_range_uj`).
    max: Option<u64>,
    prev: Option<u64>,
}

/// The package zones and their last readings.
#[derive(Debug, Clone, Default)]
pub struct Rapl {
    zones: Vec<Zone>,
}

/// µJ the counter advanced from `prev` to `cur`; a smaller `cur` is a wrap
/// when the range is known, else unknown.
pub fn delta_uj(prev: u64, cur: u64, max: Option<u64>) -> Option<u64> {
    if cur >= prev {
        return Some(cur - prev);
    }
    let max = max?;
    (prev <= max).then(|| max - prev + cur)
}

fn is_package_zone(name: &str) -> bool {
    name.strip_prefix("intel-rapl:")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

impl Rapl {
    /// Find the package zones; the status says why there are none.
    pub fn discover(r: &mut Reader) -> (Rapl, SourceStatus) {
        let status = |st: &str, detail: String| SourceStatus {
            name: "rapl".into(),
            status: st.into(),
            detail,
        };
        let mut names: Vec<String> = r
            .list(BASE)
            .unwrap_or_default()
            .into_iter()
            .filter(|n| is_package_zone(n))
            .collect();
        names.sort();
        let mut zones = Vec::new();
        let mut denied = false;
        for n in names {
            let dir = format!("{BASE}/{n}");
            let kind = r
                .read(&format!("{dir}/name"))
                .map(|t| t.trim().to_string())
                .unwrap_or_default();
            if !kind.starts_with("package") {
                continue;
            }
            let energy = format!("{dir}/energy_uj");
            match r.read(&energy) {
                Ok(t) if t.trim().parse::<u64>().is_ok() => zones.push(Zone {
                    max: r.read_u64(&format!("{dir}/max_energy_range_uj")),
                    energy,
                    prev: None,
                }),
                Err(ReadErr::Denied) => denied = true,
                _ => {}
            }
        }
        let st = if denied {
            // One unreadable package makes the sum unknown.
            zones.clear();
            status(
                "denied",
                format!(
                    "{BASE}/intel-rapl:*/energy_uj is readable by root only (Linux 5.10+): CPU energy unknown"
                ),
            )
        } else if zones.is_empty() {
            status(
                "missing",
                format!(
                    "no RAPL package zone under {BASE} (no intel_rapl/amd powercap driver, or a VM)"
                ),
            )
        } else {
            status("ok", format!("{} CPU package(s)", zones.len()))
        };
        (Rapl { zones }, st)
    }

    /// Joules of all packages since the previous call; None on the first
    /// call, when a zone could not be read, or a counter went back unexplained.
    pub fn read(&mut self, r: &mut Reader) -> Option<f64> {
        if self.zones.is_empty() {
            return None;
        }
        let mut total: Option<u64> = Some(0);
        for z in &mut self.zones {
            let cur = r.read_u64(&z.energy);
            let d = match (z.prev, cur) {
                (Some(a), Some(b)) => delta_uj(a, b, z.max),
                _ => None,
            };
            total = match (total, d) {
                (Some(t), Some(d)) => Some(t.saturating_add(d)),
                _ => None,
            };
            // A failed read restarts the baseline: the joules of the missed
            // interval stay unknown instead of landing on the next one.
            z.prev = cur;
        }
        total.map(|uj| uj as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::live::Live;

    #[test]
    fn wrap_and_backwards() {
        assert_eq!(delta_uj(10, 25, None), Some(15));
        assert_eq!(delta_uj(90, 5, Some(100)), Some(15), "wrapped at the range");
        assert_eq!(delta_uj(90, 5, None), None, "backwards, range unknown");
    }

    #[test]
    fn packages_only_and_deltas_in_joules() {
        let d = tempfile::tempdir().unwrap();
        let pc = d.path().join("class/powercap");
        for (z, name, uj) in [
            ("intel-rapl:0", "package-0", "1000000"),
            ("intel-rapl:1", "package-1", "5000000"),
            ("intel-rapl:2", "psys", "7000000"),
            ("intel-rapl:0:0", "core", "9000000"),
        ] {
            std::fs::create_dir_all(pc.join(z)).unwrap();
            std::fs::write(pc.join(z).join("name"), format!("{name}\n")).unwrap();
            std::fs::write(pc.join(z).join("energy_uj"), format!("{uj}\n")).unwrap();
            std::fs::write(pc.join(z).join("max_energy_range_uj"), "262143328850\n").unwrap();
        }
        let mut r = Reader::new(Live::new(Some(d.path().into()), None));
        let (mut rapl, st) = Rapl::discover(&mut r);
        assert_eq!(
            (st.status.as_str(), st.detail.as_str()),
            ("ok", "2 CPU package(s)")
        );
        assert_eq!(rapl.read(&mut r), None, "the first reading is a baseline");
        std::fs::write(pc.join("intel-rapl:0/energy_uj"), "3500000\n").unwrap();
        std::fs::write(pc.join("intel-rapl:1/energy_uj"), "5250000\n").unwrap();
        std::fs::write(pc.join("intel-rapl:2/energy_uj"), "99000000\n").unwrap();
        assert_eq!(
            rapl.read(&mut r),
            Some(2.75),
            "2.5 J + 0.25 J; psys not counted"
        );
        std::fs::remove_file(pc.join("intel-rapl:1/energy_uj")).unwrap();
        assert_eq!(rapl.read(&mut r), None, "a package unread: unknown, not 0");
    }

    #[test]
    fn nothing_to_read_says_why() {
        let d = tempfile::tempdir().unwrap();
        let mut r = Reader::new(Live::new(Some(d.path().into()), None));
        let (mut rapl, st) = Rapl::discover(&mut r);
        assert_eq!(st.status, "missing");
        assert_eq!(rapl.read(&mut r), None);
    }
}
