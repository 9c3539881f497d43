//! Per-GPU busy %, memory and power from sysfs, without root (domain.md §9.3–9.6):
//!
//! - xe: `cardN/device/tile*/gt*/gtidle/idle_residency_ms`; busy ≈
//!   100·(1 − Δidle/Δwall), the busiest GT (render/compute vs media GT);
//! - i915: `cardN/gt/gt*/rc6_residency_ms` (older kernels:
//!   `cardN/power/rc6_residency_ms`), the same arithmetic;
//! - amdgpu: `device/gpu_busy_percent` (0–100), `device/mem_info_vram_used`;
//! - hwmon: `energy1_input` (µJ; i915/xe dGPUs) as Δenergy/Δt, else
//!   `power1_average` / `power1_input` (µW; amdgpu).
//!
//! Cards are `/sys/class/drm/card[0-9]+` (connectors like `card0-HDMI-A-1`
//! are skipped); the PCI address and driver come from the `device` and
//! `device/driver` links. Only i915, xe, amdgpu and nvidia cards are GPUs
//! here; NVIDIA's numbers come from nvidia-smi (see `smi`). This module reads
//! and does arithmetic; what the numbers mean is `classify`'s job.

use std::time::Instant;

use super::reader::{Reader, basename};
use super::sample::{GpuInfo, GpuSample};

/// Busy % from an idle-residency counter (ms) over `wall_ms`. A counter that
/// went backwards gives None; residency that runs a little ahead of the wall
/// clock (it is updated lazily) reads as idle, not as an error.
pub fn residency_busy(prev_ms: u64, cur_ms: u64, wall_ms: f64) -> Option<f64> {
    if cur_ms < prev_ms || wall_ms <= 0.0 {
        return None;
    }
    let idle = (cur_ms - prev_ms) as f64;
    if idle > wall_ms * 2.0 + 100.0 {
        // Not a residency counter of this clock (or the sampler slept).
        return None;
    }
    Some((100.0 * (1.0 - idle / wall_ms)).clamp(0.0, 100.0))
}

/// Watts from an energy counter in µJ; None when it went backwards (wrap).
pub fn energy_watts(prev_uj: u64, cur_uj: u64, wall_s: f64) -> Option<f64> {
    if cur_uj < prev_uj || wall_s <= 0.0 {
        return None;
    }
    Some((cur_uj - prev_uj) as f64 / 1e6 / wall_s)
}

#[derive(Debug, Clone)]
enum Busy {
    /// Idle-residency counters (one per GT) and their previous values.
    Residency {
        kind: &'static str,
        paths: Vec<String>,
        prev: Vec<Option<u64>>,
    },
    /// An instantaneous percentage (amdgpu).
    Percent(String),
    /// From nvidia-smi / xpu-smi, filled in by the sampler.
    External,
    /// Nothing readable; the reason.
    Missing(String),
}

#[derive(Debug, Clone)]
enum Power {
    Energy { path: String, prev: Option<u64> },
    Microwatts(String),
    None,
}

/// One DRM card and how to read it.
#[derive(Debug, Clone)]
pub struct Card {
    pub info: GpuInfo,
    busy: Busy,
    mem: Option<String>,
    power: Power,
    /// Throttle status files: (the `status` file, its directory, the
    /// prefix of the reason files there). xe:
    /// `device/tile*/gt*/freq0/throttle/{status,reason_*}`; i915:
    /// `gt/gt*/throttle_reason_{status,*}` (compute-runtime's sysman reads
    /// the same files for `zesFrequencyGetThrottleReasons`).
    throttle: Vec<(String, String, &'static str)>,
    last: Option<Instant>,
}

impl Card {
    /// Why this card has no busy source of its own, if it has none.
    pub fn missing(&self) -> Option<&str> {
        match &self.busy {
            Busy::Missing(why) => Some(why),
            _ => None,
        }
    }

    /// Busy comes from a streaming tool (nvidia-smi).
    pub fn external(&self) -> bool {
        matches!(self.busy, Busy::External)
    }

    /// Mark an Intel card as read by xpu-smi (no residency files).
    pub fn use_external(&mut self) {
        self.busy = Busy::External;
    }
}

fn vendor_of(id: &str) -> &'static str {
    match id.trim().to_ascii_lowercase().as_str() {
        "0x8086" => "intel",
        "0x10de" => "nvidia",
        "0x1002" => "amd",
        _ => "unknown",
    }
}

fn is_card(name: &str) -> bool {
    name.strip_prefix("card")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The GPUs under `/sys/class/drm`, in card order.
pub fn enumerate(r: &mut Reader) -> Vec<Card> {
    let mut names: Vec<String> = r
        .list("/sys/class/drm")
        .unwrap_or_default()
        .into_iter()
        .filter(|n| is_card(n))
        .collect();
    names.sort_by_key(|n| n[4..].parse::<u32>().unwrap_or(u32::MAX));
    let mut cards: Vec<Card> = Vec::new();
    for name in names {
        let base = format!("/sys/class/drm/{name}");
        let dev = format!("{base}/device");
        let Ok(target) = r.link(&dev) else { continue };
        let addr = basename(&target).to_string();
        let driver = r
            .link(&format!("{dev}/driver"))
            .ok()
            .map(|t| basename(&t).to_string());
        let Some(driver) =
            driver.filter(|d| ["i915", "xe", "amdgpu", "nvidia"].contains(&d.as_str()))
        else {
            continue;
        };
        if cards.iter().any(|c| c.info.id == addr) {
            continue;
        }
        let vendor = r
            .read(&format!("{dev}/vendor"))
            .ok()
            .map(|v| vendor_of(&v).to_string())
            .unwrap_or_else(|| {
                match driver.as_str() {
                    "i915" | "xe" => "intel",
                    "amdgpu" => "amd",
                    "nvidia" => "nvidia",
                    _ => "unknown",
                }
                .to_string()
            });
        // Intel's integrated GPUs sit on bus 00 (00:02.0); discrete cards never do.
        let integrated = vendor == "intel" && addr.get(5..7) == Some("00");
        let busy = busy_source(r, &base, &dev, &driver);
        let mem = match driver.as_str() {
            "amdgpu" => Some(format!("{dev}/mem_info_vram_used")).filter(|p| r.exists(p)),
            _ => None,
        };
        let power = power_source(r, &dev);
        let throttle = throttle_sources(r, &base, &dev, &driver);
        cards.push(Card {
            info: GpuInfo {
                id: addr,
                label: name.clone(),
                vendor,
                driver: Some(driver),
                integrated,
            },
            busy,
            mem,
            power,
            throttle,
            last: None,
        });
    }
    cards
}

fn throttle_sources(
    r: &mut Reader,
    base: &str,
    dev: &str,
    driver: &str,
) -> Vec<(String, String, &'static str)> {
    let mut out = Vec::new();
    let list = |r: &mut Reader, d: &str, p: &str| {
        let mut v = r.list(d).unwrap_or_default();
        v.retain(|x| x.starts_with(p));
        v.sort();
        v
    };
    match driver {
        "xe" => {
            for t in list(r, dev, "tile") {
                for g in list(r, &format!("{dev}/{t}"), "gt") {
                    let dir = format!("{dev}/{t}/{g}/freq0/throttle");
                    let status = format!("{dir}/status");
                    if r.read_u64(&status).is_some() {
                        out.push((status, dir, "reason_"));
                    }
                }
            }
        }
        "i915" => {
            for g in list(r, &format!("{base}/gt"), "gt") {
                let dir = format!("{base}/gt/{g}");
                let status = format!("{dir}/throttle_reason_status");
                if r.read_u64(&status).is_some() {
                    out.push((status, dir, "throttle_reason_"));
                }
            }
        }
        _ => {}
    }
    out.truncate(8);
    out
}

/// The active throttle reasons of a card now: None when it has no readable
/// status file, `[]` when not throttled, else the reasons (`pl1`,
/// `thermal`, ...; `status` when the status says throttled but no reason does).
fn throttle_now(r: &mut Reader, card: &Card) -> Option<Vec<String>> {
    let mut read_any = false;
    let mut reasons: Vec<String> = Vec::new();
    for (status, dir, prefix) in &card.throttle {
        let Some(v) = r.read_u64(status) else {
            continue;
        };
        read_any = true;
        if v == 0 {
            continue;
        }
        let mut found = false;
        let mut names = r.list(dir).unwrap_or_default();
        names.sort();
        for n in names.iter().take(32) {
            let Some(reason) = n.strip_prefix(prefix) else {
                continue;
            };
            if reason == "status" || reason.is_empty() {
                continue;
            }
            if r.read_u64(&format!("{dir}/{n}")) == Some(1) {
                found = true;
                if !reasons.iter().any(|x| x == reason) {
                    reasons.push(reason.to_string());
                }
            }
        }
        if !found && !reasons.iter().any(|x| x == "status") {
            reasons.push("status".into());
        }
    }
    read_any.then_some(reasons)
}

fn busy_source(r: &mut Reader, base: &str, dev: &str, driver: &str) -> Busy {
    match driver {
        "xe" => {
            let mut paths = Vec::new();
            let mut tiles = r.list(dev).unwrap_or_default();
            tiles.retain(|t| t.starts_with("tile"));
            tiles.sort();
            for t in tiles {
                let mut gts = r.list(&format!("{dev}/{t}")).unwrap_or_default();
                gts.retain(|g| g.starts_with("gt"));
                gts.sort();
                for g in gts {
                    let p = format!("{dev}/{t}/{g}/gtidle/idle_residency_ms");
                    if r.read_u64(&p).is_some() {
                        paths.push(p);
                    }
                }
            }
            if paths.is_empty() {
                Busy::Missing(format!(
                    "xe exposes no readable {dev}/tile*/gt*/gtidle/idle_residency_ms (kernel 6.8+ has it)"
                ))
            } else {
                let n = paths.len();
                Busy::Residency {
                    kind: "gtidle",
                    paths,
                    prev: vec![None; n],
                }
            }
        }
        "i915" => {
            let mut paths = Vec::new();
            let mut gts = r.list(&format!("{base}/gt")).unwrap_or_default();
            gts.retain(|g| g.starts_with("gt"));
            gts.sort();
            for g in gts {
                let p = format!("{base}/gt/{g}/rc6_residency_ms");
                if r.read_u64(&p).is_some() {
                    paths.push(p);
                }
            }
            if paths.is_empty() {
                let p = format!("{base}/power/rc6_residency_ms");
                if r.read_u64(&p).is_some() {
                    paths.push(p);
                }
            }
            if paths.is_empty() {
                Busy::Missing(format!(
                    "i915 exposes no readable {base}/gt/gt*/rc6_residency_ms (RC6 disabled, or a VM)"
                ))
            } else {
                let n = paths.len();
                Busy::Residency {
                    kind: "rc6",
                    paths,
                    prev: vec![None; n],
                }
            }
        }
        "amdgpu" => {
            let p = format!("{dev}/gpu_busy_percent");
            if r.read_u64(&p).is_some() {
                Busy::Percent(p)
            } else {
                Busy::Missing(format!("amdgpu exposes no readable {p}"))
            }
        }
        _ => Busy::External,
    }
}

fn power_source(r: &mut Reader, dev: &str) -> Power {
    let mut hw = r.list(&format!("{dev}/hwmon")).unwrap_or_default();
    hw.sort();
    for h in &hw {
        let p = format!("{dev}/hwmon/{h}/energy1_input");
        if r.read_u64(&p).is_some() {
            return Power::Energy {
                path: p,
                prev: None,
            };
        }
    }
    for h in &hw {
        for f in ["power1_average", "power1_input"] {
            let p = format!("{dev}/hwmon/{h}/{f}");
            if r.read_u64(&p).is_some() {
                return Power::Microwatts(p);
            }
        }
    }
    Power::None
}

/// Read one card at `now`. The first reading of a counter gives no rate.
pub fn read(r: &mut Reader, card: &mut Card, now: Instant) -> GpuSample {
    let wall = card.last.map(|l| now.duration_since(l).as_secs_f64());
    card.last = Some(now);
    let mut s = GpuSample {
        id: card.info.id.clone(),
        ..GpuSample::default()
    };
    match &mut card.busy {
        Busy::Residency { kind, paths, prev } => {
            let mut best: Option<f64> = None;
            for (p, pv) in paths.iter().zip(prev.iter_mut()) {
                let cur = r.read_u64(p);
                if let (Some(a), Some(b), Some(w)) = (*pv, cur, wall) {
                    if let Some(busy) = residency_busy(a, b, w * 1000.0) {
                        best = Some(best.map_or(busy, |x: f64| x.max(busy)));
                    }
                }
                // Keep the larger previous value when a counter goes backwards.
                *pv = match (*pv, cur) {
                    (Some(a), Some(b)) if b < a => Some(a),
                    (_, c) => c,
                };
            }
            if best.is_some() {
                s.busy = best;
                s.busy_src = Some((*kind).to_string());
            }
        }
        Busy::Percent(p) => {
            if let Some(v) = r.read_u64(p).filter(|v| *v <= 100) {
                s.busy = Some(v as f64);
                s.busy_src = Some("gpu_busy_percent".into());
            }
        }
        Busy::External | Busy::Missing(_) => {}
    }
    if let Some(p) = &card.mem {
        if let Some(v) = r.read_u64(p) {
            s.mem = Some(v);
            s.mem_src = Some("mem_info_vram_used".into());
        }
    }
    match &mut card.power {
        Power::Energy { path, prev } => {
            let cur = r.read_u64(path);
            if let (Some(a), Some(b), Some(w)) = (*prev, cur, wall) {
                if let Some(watts) = energy_watts(a, b, w) {
                    s.power = Some(watts);
                    s.power_src = Some("hwmon-energy".into());
                    s.energy = Some((b - a) as f64 / 1e6);
                }
            }
            *prev = cur;
        }
        Power::Microwatts(path) => {
            if let Some(v) = r.read_u64(path) {
                s.power = Some(v as f64 / 1e6);
                s.power_src = Some("hwmon-power".into());
            }
        }
        Power::None => {}
    }
    s.throttle = throttle_now(r, card);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::live::Live;
    use std::os::unix::fs::symlink;
    use std::path::Path;

    #[test]
    fn residency_arithmetic() {
        assert_eq!(residency_busy(1000, 1000, 1000.0), Some(100.0));
        assert_eq!(residency_busy(1000, 2000, 1000.0), Some(0.0));
        assert_eq!(residency_busy(1000, 1250, 1000.0), Some(75.0));
        assert_eq!(residency_busy(1000, 2040, 1000.0), Some(0.0), "lazy update");
        assert_eq!(residency_busy(2000, 1000, 1000.0), None, "backwards");
        assert_eq!(residency_busy(0, 10_000, 1000.0), None, "not this clock");
        assert_eq!(energy_watts(1_000_000, 51_000_000, 1.0), Some(50.0));
        assert_eq!(energy_watts(5, 1, 1.0), None, "wrapped");
    }

    /// A fake sysfs GPU the way the kernel lays it out: class/drm/cardN is a
    /// link into devices/, `device` and `device/driver` are links.
    pub fn fake_card(
        root: &Path,
        card: &str,
        addr: &str,
        driver: &str,
        vendor: &str,
    ) -> std::path::PathBuf {
        let dev = root.join(format!("devices/pci0000:00/{addr}"));
        std::fs::create_dir_all(dev.join("drm").join(card)).unwrap();
        std::fs::create_dir_all(root.join(format!("bus/pci/drivers/{driver}"))).unwrap();
        std::fs::create_dir_all(root.join("class/drm")).unwrap();
        symlink(
            format!("../../../bus/pci/drivers/{driver}"),
            dev.join("driver"),
        )
        .unwrap();
        symlink(
            format!("../../../{addr}"),
            dev.join("drm").join(card).join("device"),
        )
        .unwrap();
        symlink(
            format!("../../devices/pci0000:00/{addr}/drm/{card}"),
            root.join("class/drm").join(card),
        )
        .unwrap();
        std::fs::write(dev.join("vendor"), format!("{vendor}\n")).unwrap();
        dev
    }

    /// xe's `freq0/throttle` and i915's `throttle_reason_*` (the files
    /// compute-runtime's sysman reads): none readable is unknown, status 0
    /// is `[]`, status 1 lists the reasons set.
    #[test]
    fn throttle_flags_are_read_where_the_kernel_has_them() {
        let d = tempfile::tempdir().unwrap();
        let xe = fake_card(d.path(), "card1", "0000:03:00.0", "xe", "0x8086");
        let t = xe.join("tile0/gt0/freq0/throttle");
        std::fs::create_dir_all(&t).unwrap();
        for (f, v) in [("status", 0), ("reason_pl1", 0), ("reason_thermal", 0)] {
            std::fs::write(t.join(f), format!("{v}\n")).unwrap();
        }
        let i915 = fake_card(d.path(), "card2", "0000:04:00.0", "i915", "0x8086");
        let gt = i915.join("drm/card2/gt/gt0");
        std::fs::create_dir_all(&gt).unwrap();
        std::fs::write(gt.join("throttle_reason_status"), "1\n").unwrap();
        std::fs::write(gt.join("throttle_reason_pl1"), "0\n").unwrap();
        std::fs::write(gt.join("throttle_reason_thermal"), "1\n").unwrap();
        let amd = fake_card(d.path(), "card0", "0000:0b:00.0", "amdgpu", "0x1002");
        std::fs::write(amd.join("gpu_busy_percent"), "37\n").unwrap();
        let mut r = Reader::new(Live::new(Some(d.path().into()), None));
        let mut cards = enumerate(&mut r);
        let now = Instant::now();
        let s: Vec<_> = cards.iter_mut().map(|c| read(&mut r, c, now)).collect();
        assert_eq!(s[0].throttle, None, "amdgpu: no flags in sysfs");
        assert_eq!(s[1].throttle, Some(vec![]));
        assert_eq!(s[2].throttle, Some(vec!["thermal".to_string()]));
        std::fs::write(t.join("status"), "1\n").unwrap();
        std::fs::write(t.join("reason_pl1"), "1\n").unwrap();
        assert_eq!(
            read(&mut r, &mut cards[1], now).throttle,
            Some(vec!["pl1".to_string()])
        );
    }

    #[test]
    fn enumerates_fake_xe_amdgpu_and_skips_connectors() {
        let d = tempfile::tempdir().unwrap();
        let xe = fake_card(d.path(), "card1", "0000:03:00.0", "xe", "0x8086");
        std::fs::create_dir_all(xe.join("tile0/gt0/gtidle")).unwrap();
        std::fs::create_dir_all(xe.join("tile0/gt1/gtidle")).unwrap();
        std::fs::write(xe.join("tile0/gt0/gtidle/idle_residency_ms"), "1000\n").unwrap();
        std::fs::write(xe.join("tile0/gt1/gtidle/idle_residency_ms"), "1000\n").unwrap();
        std::fs::create_dir_all(xe.join("hwmon/hwmon3")).unwrap();
        std::fs::write(xe.join("hwmon/hwmon3/energy1_input"), "1000000\n").unwrap();
        let amd = fake_card(d.path(), "card0", "0000:0b:00.0", "amdgpu", "0x1002");
        std::fs::write(amd.join("gpu_busy_percent"), "37\n").unwrap();
        std::fs::write(amd.join("mem_info_vram_used"), "1073741824\n").unwrap();
        let igpu = fake_card(d.path(), "card2", "0000:00:02.0", "i915", "0x8086");
        std::fs::create_dir_all(igpu.join("drm/card2/gt/gt0")).unwrap();
        std::fs::write(igpu.join("drm/card2/gt/gt0/rc6_residency_ms"), "5\n").unwrap();
        std::fs::create_dir_all(d.path().join("class/drm/card0-HDMI-A-1")).unwrap();
        let _ = fake_card(d.path(), "card3", "0000:05:00.0", "simpledrm", "0x1234");

        let mut r = Reader::new(Live::new(Some(d.path().into()), None));
        let mut cards = enumerate(&mut r);
        let ids: Vec<_> = cards.iter().map(|c| c.info.label.as_str()).collect();
        assert_eq!(ids, vec!["card0", "card1", "card2"]);
        assert!(cards[2].info.integrated && !cards[1].info.integrated);
        assert_eq!(cards[0].info.vendor, "amd");

        let t0 = Instant::now();
        let s0: Vec<_> = cards.iter_mut().map(|c| read(&mut r, c, t0)).collect();
        assert_eq!(
            s0[0].busy,
            Some(37.0),
            "an instantaneous percentage needs no delta"
        );
        assert_eq!(s0[0].mem, Some(1 << 30));
        assert_eq!(s0[1].busy, None, "residency needs two readings");
        // One second later gt0 was idle 250 ms, gt1 (media) idle all the time.
        std::fs::write(xe.join("tile0/gt0/gtidle/idle_residency_ms"), "1250\n").unwrap();
        std::fs::write(xe.join("tile0/gt1/gtidle/idle_residency_ms"), "2000\n").unwrap();
        std::fs::write(xe.join("hwmon/hwmon3/energy1_input"), "31000000\n").unwrap();
        let t1 = t0 + std::time::Duration::from_secs(1);
        let s1 = read(&mut r, &mut cards[1], t1);
        assert_eq!(s1.busy, Some(75.0), "the busiest GT");
        assert_eq!(s1.busy_src.as_deref(), Some("gtidle"));
        assert_eq!(s1.power, Some(30.0));
        assert_eq!(s1.energy, Some(30.0), "the counter's own joules");
        let s2 = read(&mut r, &mut cards[2], t1);
        assert_eq!(s2.busy_src.as_deref(), Some("rc6"));
    }

    #[test]
    fn a_card_without_counters_says_why() {
        let d = tempfile::tempdir().unwrap();
        fake_card(d.path(), "card0", "0000:03:00.0", "xe", "0x8086");
        let mut r = Reader::new(Live::new(Some(d.path().into()), None));
        let cards = enumerate(&mut r);
        assert!(cards[0].missing().unwrap().contains("gtidle"));
        assert!(
            enumerate(&mut Reader::new(Live::new(
                Some("/nonexistent".into()),
                None
            )))
            .is_empty()
        );
    }
}
