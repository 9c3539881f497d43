//! Per-process GPU time from DRM fdinfo (`/proc/PID/fdinfo/FD` of an fd open
//! on `/dev/dri/*`): kernel Documentation/gpu/drm-usage-stats.rst, domain.md §9.2.
//!
//! - i915 and amdgpu report busy nanoseconds per engine class
//!   (`drm-engine-render: 9288864723 ns`);
//! - xe reports busy cycles against a GPU timestamp
//!   (`drm-cycles-rcs` / `drm-total-cycles-rcs`): utilisation is
//!   Δcycles / Δtotal-cycles, independent of the CPU clock.
//!
//! Always two samples and a delta (nvtop's rules): a counter that goes
//! backwards is not used (the kernel doc says to "stay with that larger
//! previous value"), and a busy time longer than the wall time (times the
//! engine capacity) is rejected. Fds that share one DRM client (dup'ed, or
//! the same file in a parent and a child) are counted once: the key is
//! `drm-pdev` + `drm-client-id`.
//!
//! A GPU's busy % for the tree is the busiest engine class, summed over the
//! tree's clients and clamped to 100; like nvtop it is not divided by the
//! engine capacity, so one busy compute engine out of four reads as busy.
//! This module owns the parsing and the arithmetic; which fds to read comes
//! from the sampler.

use std::collections::HashMap;

/// One engine class of one client.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Engine {
    pub class: String,
    /// `drm-engine-<class>` in ns (i915, amdgpu).
    pub ns: Option<u64>,
    /// `drm-cycles-<class>` (xe).
    pub cycles: Option<u64>,
    /// `drm-total-cycles-<class>` (xe).
    pub total_cycles: Option<u64>,
    /// `drm-engine-capacity-<class>`, default 1.
    pub capacity: u32,
}

/// One DRM client as its fdinfo describes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Client {
    pub driver: String,
    pub pdev: Option<String>,
    pub client_id: Option<String>,
    pub engines: Vec<Engine>,
    /// Device-local memory (vram*/local*) resident for this client, bytes.
    pub vram: Option<u64>,
}

/// `23992 KiB`, `16 MiB`, `0` -> bytes.
pub fn parse_size(v: &str) -> Option<u64> {
    let mut it = v.split_whitespace();
    let n: u64 = it.next()?.parse().ok()?;
    let mult = match it.next() {
        None | Some("B") => 1,
        Some("KiB") | Some("kB") | Some("KB") => 1024,
        Some("MiB") | Some("MB") => 1024 * 1024,
        Some("GiB") | Some("GB") => 1024 * 1024 * 1024,
        Some(_) => return None,
    };
    n.checked_mul(mult)
}

/// Parse one fdinfo file. None when it is not a DRM client (no `drm-driver`).
pub fn parse(text: &str) -> Option<Client> {
    let mut c = Client::default();
    let mut engines: Vec<Engine> = Vec::new();
    // (preference, region) -> bytes; resident beats the deprecated
    // `drm-memory-` alias, which beats total.
    let mut mem: HashMap<String, (u8, u64)> = HashMap::new();
    fn engine<'a>(engines: &'a mut Vec<Engine>, class: &str) -> &'a mut Engine {
        if let Some(i) = engines.iter().position(|e| e.class == class) {
            &mut engines[i]
        } else {
            engines.push(Engine {
                class: class.to_string(),
                capacity: 1,
                ..Engine::default()
            });
            let last = engines.len() - 1;
            &mut engines[last]
        }
    }
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let k = k.trim();
        let v = v.trim();
        if !k.starts_with("drm-") {
            continue;
        }
        let num = || {
            v.split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
        };
        if k == "drm-driver" {
            c.driver = v.to_string();
        } else if k == "drm-pdev" {
            c.pdev = Some(v.to_string());
        } else if k == "drm-client-id" {
            c.client_id = Some(v.to_string());
        } else if let Some(class) = k.strip_prefix("drm-engine-capacity-") {
            engine(&mut engines, class).capacity = num().map(|n| n.max(1) as u32).unwrap_or(1);
        } else if let Some(class) = k.strip_prefix("drm-engine-") {
            engine(&mut engines, class).ns = num();
        } else if let Some(class) = k.strip_prefix("drm-total-cycles-") {
            engine(&mut engines, class).total_cycles = num();
        } else if let Some(class) = k.strip_prefix("drm-cycles-") {
            engine(&mut engines, class).cycles = num();
        } else {
            for (prefix, pref) in [
                ("drm-resident-", 3u8),
                ("drm-memory-", 2),
                ("drm-total-", 1),
            ] {
                if let Some(region) = k.strip_prefix(prefix) {
                    if region.starts_with("vram") || region.starts_with("local") {
                        if let Some(bytes) = parse_size(v) {
                            let slot = mem.entry(region.to_string()).or_insert((0, 0));
                            if pref > slot.0 {
                                *slot = (pref, bytes);
                            }
                        }
                    }
                }
            }
        }
    }
    if c.driver.is_empty() {
        return None;
    }
    c.engines = engines;
    if !mem.is_empty() {
        c.vram = Some(mem.values().map(|(_, b)| *b).sum());
    }
    Some(c)
}

/// Why a delta was not used.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Delta {
    /// Busy fraction of the interval, 0.0..=capacity.
    Busy(f64),
    /// The counter went backwards: keep the larger previous value.
    Backwards,
    /// More busy time than wall time allows.
    TooLong,
    /// No time passed (or no total-cycles advance).
    NoTime,
}

/// Busy fraction from two ns readings `wall_ns` apart.
pub fn ns_delta(prev: u64, cur: u64, wall_ns: u64, capacity: u32) -> Delta {
    if cur < prev {
        return Delta::Backwards;
    }
    if wall_ns == 0 {
        return Delta::NoTime;
    }
    let d = cur - prev;
    // 5 % slack: the two reads are not atomic with the wall clock.
    if d as f64 > wall_ns as f64 * capacity.max(1) as f64 * 1.05 {
        return Delta::TooLong;
    }
    Delta::Busy(d as f64 / wall_ns as f64)
}

/// Busy fraction from two (cycles, total-cycles) readings (xe).
pub fn cycles_delta(prev: (u64, u64), cur: (u64, u64), capacity: u32) -> Delta {
    if cur.0 < prev.0 || cur.1 < prev.1 {
        return Delta::Backwards;
    }
    let total = cur.1 - prev.1;
    if total == 0 {
        return Delta::NoTime;
    }
    let d = cur.0 - prev.0;
    if d as f64 > total as f64 * capacity.max(1) as f64 * 1.05 {
        return Delta::TooLong;
    }
    Delta::Busy(d as f64 / total as f64)
}

#[derive(Debug, Clone, Copy)]
enum Counter {
    Ns(u64),
    Cycles(u64, u64),
}

/// The tree's use of one GPU in one interval.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuUse {
    /// Busiest engine class, percent; None if no delta could be used.
    pub busy: Option<f64>,
    pub vram: Option<u64>,
    /// Deltas rejected this interval (backwards / too long).
    pub rejected: u32,
}

/// Keeps the previous counters of every (pdev, client, class).
#[derive(Default)]
pub struct Tracker {
    prev: HashMap<(String, String, String), Counter>,
}

impl Tracker {
    /// Fold this sample's clients (already de-duplicated or not: duplicates
    /// are dropped here) into per-GPU use. `wall_ns` is the time since the
    /// previous call. The key of the result is `drm-pdev` (or `?`).
    pub fn update(&mut self, clients: &[Client], wall_ns: u64) -> HashMap<String, GpuUse> {
        let mut out: HashMap<String, GpuUse> = HashMap::new();
        // (pdev, class) -> summed busy fraction
        let mut per_class: HashMap<(String, String), f64> = HashMap::new();
        let mut next: HashMap<(String, String, String), Counter> = HashMap::new();
        let mut seen_clients: Vec<(String, String)> = Vec::new();
        for c in clients {
            let pdev = c.pdev.clone().unwrap_or_else(|| "?".into());
            let client = c.client_id.clone().unwrap_or_default();
            if !client.is_empty() {
                let key = (pdev.clone(), client.clone());
                if seen_clients.contains(&key) {
                    continue;
                }
                seen_clients.push(key);
            }
            let slot = out.entry(pdev.clone()).or_default();
            if let Some(v) = c.vram {
                slot.vram = Some(slot.vram.unwrap_or(0) + v);
            }
            for e in &c.engines {
                let cur = match (e.ns, e.cycles, e.total_cycles) {
                    (_, Some(cy), Some(tot)) => Counter::Cycles(cy, tot),
                    (Some(ns), _, _) => Counter::Ns(ns),
                    _ => continue,
                };
                let key = (pdev.clone(), client.clone(), e.class.clone());
                let d = match (self.prev.get(&key), cur) {
                    (Some(Counter::Ns(p)), Counter::Ns(c)) => {
                        Some(ns_delta(*p, c, wall_ns, e.capacity))
                    }
                    (Some(Counter::Cycles(p, pt)), Counter::Cycles(c, ct)) => {
                        Some(cycles_delta((*p, *pt), (c, ct), e.capacity))
                    }
                    _ => None,
                };
                let keep = match d {
                    Some(Delta::Busy(f)) => {
                        *per_class
                            .entry((pdev.clone(), e.class.clone()))
                            .or_insert(0.0) += f;
                        cur
                    }
                    Some(Delta::Backwards) => {
                        slot.rejected += 1;
                        // Stay with the larger previous value.
                        self.prev.get(&key).copied().unwrap_or(cur)
                    }
                    Some(Delta::TooLong) => {
                        slot.rejected += 1;
                        cur
                    }
                    Some(Delta::NoTime) | None => cur,
                };
                next.insert(key, keep);
            }
        }
        self.prev = next;
        for ((pdev, _class), f) in per_class {
            let slot = out.entry(pdev).or_default();
            let pct = (f * 100.0).clamp(0.0, 100.0);
            slot.busy = Some(slot.busy.map_or(pct, |b: f64| b.max(pct)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel-doc example carries a C comment prefix (` * \t`) and uses
    /// spaces after the colon; real fdinfo has a tab. Strip the prefix only.
    fn corpus(name: &str) -> String {
        let text = std::fs::read_to_string(format!(
            "{}/fixtures/outputs/fdinfo/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.trim_start_matches(" * ").trim_start_matches('\t'))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn xe_kernel_doc_example() {
        let c = parse(&corpus("kernel-xe-drm-client-fdinfo-example-dg2.txt")).unwrap();
        assert_eq!(c.driver, "xe");
        assert_eq!(c.pdev.as_deref(), Some("0000:03:00.0"));
        assert_eq!(c.client_id.as_deref(), Some("3"));
        let rcs = c.engines.iter().find(|e| e.class == "rcs").unwrap();
        assert_eq!(rcs.cycles, Some(28257900));
        assert_eq!(rcs.total_cycles, Some(7655183225));
        let ccs = c.engines.iter().find(|e| e.class == "ccs").unwrap();
        assert_eq!(ccs.capacity, 4);
        // drm-resident-vram0: 23992 KiB
        assert_eq!(c.vram, Some(23992 * 1024));
        assert_eq!(c.engines.len(), 5);
    }

    #[test]
    fn i915_and_amdgpu_keys() {
        // Key shapes from Documentation/gpu/i915.rst and amdgpu's usage-stats (domain.md §9.2).
        let i915 = "pos:\t0\nflags:\t02100002\nmnt_id:\t26\ndrm-driver:\ti915\ndrm-pdev:\t0000:03:00.0\ndrm-client-id:\t7\ndrm-engine-render:\t9288864723 ns\ndrm-engine-copy:\t2035071108 ns\ndrm-engine-video:\t0 ns\ndrm-engine-capacity-video:\t2\ndrm-engine-video-enhance:\t0 ns\ndrm-total-local0:\t512 MiB\ndrm-resident-local0:\t256 MiB\ndrm-total-system0:\t4 KiB\n";
        let c = parse(i915).unwrap();
        assert_eq!(c.driver, "i915");
        assert_eq!(c.engines.len(), 4);
        let video = c.engines.iter().find(|e| e.class == "video").unwrap();
        assert_eq!((video.ns, video.capacity), (Some(0), 2));
        assert_eq!(
            c.vram,
            Some(256 << 20),
            "resident beats total; system is not VRAM"
        );
        let amd = "drm-driver:\tamdgpu\ndrm-pdev:\t0000:0b:00.0\ndrm-client-id:\t42\ndrm-memory-vram:\t1024 KiB\ndrm-memory-gtt:\t8 KiB\ndrm-engine-gfx:\t123456 ns\ndrm-engine-compute:\t0 ns\n";
        let c = parse(amd).unwrap();
        assert_eq!(c.vram, Some(1 << 20));
        assert!(
            parse("pos:\t0\nflags:\t0100002\n").is_none(),
            "not a DRM fd"
        );
        assert!(parse("").is_none());
    }

    #[test]
    fn deltas_reject_backwards_and_too_long() {
        assert_eq!(ns_delta(100, 600, 1000, 1), Delta::Busy(0.5));
        assert_eq!(ns_delta(600, 100, 1000, 1), Delta::Backwards);
        assert_eq!(ns_delta(0, 2000, 1000, 1), Delta::TooLong);
        assert_eq!(ns_delta(0, 2000, 1000, 2), Delta::Busy(2.0));
        assert_eq!(ns_delta(0, 0, 0, 1), Delta::NoTime);
        assert_eq!(cycles_delta((0, 0), (50, 100), 1), Delta::Busy(0.5));
        assert_eq!(cycles_delta((50, 100), (10, 200), 1), Delta::Backwards);
        assert_eq!(cycles_delta((0, 100), (10, 100), 1), Delta::NoTime);
        assert_eq!(cycles_delta((0, 0), (300, 100), 1), Delta::TooLong);
    }

    fn xe(client: &str, rcs: u64, total: u64) -> Client {
        Client {
            driver: "xe".into(),
            pdev: Some("0000:03:00.0".into()),
            client_id: Some(client.into()),
            engines: vec![Engine {
                class: "rcs".into(),
                cycles: Some(rcs),
                total_cycles: Some(total),
                capacity: 1,
                ..Engine::default()
            }],
            vram: Some(1 << 30),
        }
    }

    #[test]
    fn tracker_dedupes_shared_clients_and_survives_going_backwards() {
        let mut t = Tracker::default();
        let first = t.update(&[xe("3", 0, 1000), xe("3", 0, 1000)], 1_000_000);
        assert_eq!(first["0000:03:00.0"].busy, None, "one reading is no rate");
        assert_eq!(first["0000:03:00.0"].vram, Some(1 << 30), "counted once");
        let second = t.update(&[xe("3", 400, 2000), xe("3", 400, 2000)], 1_000_000);
        assert_eq!(second["0000:03:00.0"].busy, Some(40.0));
        // The counter goes backwards: no value, and the larger one is kept...
        let third = t.update(&[xe("3", 100, 3000)], 1_000_000);
        assert_eq!(third["0000:03:00.0"].busy, None);
        assert_eq!(third["0000:03:00.0"].rejected, 1);
        // ...so the next delta is measured from 400/2000, not 100/3000.
        let fourth = t.update(&[xe("3", 900, 3000)], 1_000_000);
        assert_eq!(fourth["0000:03:00.0"].busy, Some(50.0));
    }

    #[test]
    fn two_clients_add_up_and_clamp() {
        let mut t = Tracker::default();
        t.update(&[xe("1", 0, 0), xe("2", 0, 0)], 1);
        let u = t.update(&[xe("1", 70, 100), xe("2", 60, 100)], 1);
        assert_eq!(u["0000:03:00.0"].busy, Some(100.0));
    }
}
