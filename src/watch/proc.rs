//! The watched process tree from procfs: which processes belong to it, how
//! many cores they keep busy, their resident memory and how fast they read.
//!
//! `/proc/PID/stat` already sums all threads of a process, so the tree is the
//! root and its descendants (found through `/proc/PID/task/TID/children`, or a
//! scan of every `/proc/*/stat` for the parent pid where the kernel lacks
//! `CONFIG_PROC_CHILDREN`). The tree is re-discovered every couple of seconds,
//! not every sample, to keep the watcher's own cost low. CPU time of children
//! that ended between two samples is not counted (it lands in the parent's
//! `cutime`, which would double-count the part already seen).
//! Field layout: proc(5), `/proc/[pid]/stat`.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use super::reader::{ReadErr, Reader};
use super::sample::ProcSample;
use super::sched::{self, SchedStat, TreeDemand};

/// The fields of `/proc/PID/stat` the watcher uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Stat {
    pub comm: String,
    pub state: char,
    pub ppid: i32,
    /// utime + stime, clock ticks.
    pub ticks: u64,
    pub threads: u32,
    /// Start time after boot, clock ticks: tells a reused pid from the old one.
    pub starttime: u64,
    pub rss_pages: u64,
}

/// Parse `/proc/PID/stat`. The command name may hold spaces and parentheses,
/// so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state); field k is rest[k - 3].
    let field = |k: usize| rest.get(k - 3).copied();
    let num = |k: usize| field(k).and_then(|s| s.parse::<u64>().ok());
    Some(Stat {
        comm,
        state: field(3)?.chars().next()?,
        ppid: field(4)?.parse().ok()?,
        ticks: num(14)?.checked_add(num(15)?)?,
        threads: num(20)? as u32,
        starttime: num(22)?,
        // rss is signed in the kernel's format string; negative means zero.
        rss_pages: field(24)?.parse::<i64>().ok()?.max(0) as u64,
    })
}

/// `/proc/PID/io`: (`rchar`, `read_bytes`).
pub fn parse_io(text: &str) -> Option<(u64, u64)> {
    let mut rchar = None;
    let mut read_bytes = None;
    for line in text.lines() {
        let (k, v) = line.split_once(':')?;
        let v = v.trim().parse::<u64>().ok();
        match k.trim() {
            "rchar" => rchar = v,
            "read_bytes" => read_bytes = v,
            _ => {}
        }
    }
    Some((rchar?, read_bytes.unwrap_or(0)))
}

/// `/proc/PID/task/TID/children`: space-separated pids.
pub fn parse_children(text: &str) -> Vec<i32> {
    text.split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// At most this many processes are followed (a fork bomb is not ours to count).
const MAX_PIDS: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Prev {
    starttime: u64,
    ticks: u64,
    io: Option<u64>,
}

/// What one sample of the tree gave.
#[derive(Debug, Clone)]
pub struct Reading {
    /// The root process still exists (and is not a zombie).
    pub alive: bool,
    pub sample: ProcSample,
    /// `/proc/PID/io` could not be read (another user's process).
    pub io_denied: bool,
}

pub struct ProcTracker {
    root: i32,
    pids: Vec<i32>,
    prev: HashMap<i32, Prev>,
    last: Option<Instant>,
    clk_tck: f64,
    page: u64,
    since_scan: u32,
    rescan_every: u32,
    /// Set once `task/*/children` turned out to be missing.
    scan_all: bool,
    samples: u32,
    /// Each thread's last schedstat, by (pid, tid), with its process's starttime.
    sched_prev: HashMap<(i32, u32), (u64, SchedStat)>,
}

impl ProcTracker {
    /// `rescan_every`: re-discover the tree every this many samples.
    pub fn new(root: i32, rescan_every: u32) -> ProcTracker {
        use nix::unistd::{SysconfVar, sysconf};
        let clk = sysconf(SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100);
        let page = sysconf(SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .unwrap_or(4096);
        ProcTracker {
            root,
            pids: vec![root],
            prev: HashMap::new(),
            last: None,
            clk_tck: clk.max(1) as f64,
            page: page.max(1) as u64,
            since_scan: u32::MAX,
            rescan_every: rescan_every.max(1),
            scan_all: false,
            samples: 0,
            sched_prev: HashMap::new(),
        }
    }

    pub fn pids(&self) -> &[i32] {
        &self.pids
    }

    /// Did the tree change in the last sample (so fds should be looked at again)?
    pub fn rescanned(&self) -> bool {
        self.since_scan == 0
    }

    /// The root's stat, if it is readable: used to check `--pid` before starting.
    pub fn root_stat(r: &mut Reader, pid: i32) -> Result<Stat, ReadErr> {
        let text = r.read(&format!("/proc/{pid}/stat"))?;
        parse_stat(&text).ok_or(ReadErr::Failed)
    }

    fn discover(&mut self, r: &mut Reader) {
        let mut seen: HashSet<i32> = HashSet::new();
        let mut out = vec![self.root];
        seen.insert(self.root);
        if !self.scan_all {
            let mut i = 0;
            while i < out.len() && out.len() < MAX_PIDS {
                let pid = out[i];
                i += 1;
                let Ok(tids) = r.list(&format!("/proc/{pid}/task")) else {
                    continue;
                };
                for tid in tids {
                    match r.read(&format!("/proc/{pid}/task/{tid}/children")) {
                        Ok(text) => {
                            for c in parse_children(&text) {
                                if seen.insert(c) {
                                    out.push(c);
                                }
                            }
                        }
                        Err(ReadErr::Missing) if pid == self.root => {
                            // No CONFIG_PROC_CHILDREN (or the thread just ended):
                            // fall back to the full scan if the root's first
                            // thread has no children file either.
                            if tid == pid.to_string() {
                                self.scan_all = true;
                            }
                        }
                        Err(_) => {}
                    }
                }
            }
        }
        if self.scan_all {
            out = self.scan(r);
        }
        self.pids = out;
    }

    /// Every process's parent from `/proc/*/stat`, then the root's descendants.
    fn scan(&self, r: &mut Reader) -> Vec<i32> {
        let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
        for name in r.list("/proc").unwrap_or_default() {
            let Ok(pid) = name.parse::<i32>() else {
                continue;
            };
            if let Ok(text) = r.read(&format!("/proc/{pid}/stat")) {
                if let Some(st) = parse_stat(&text) {
                    children.entry(st.ppid).or_default().push(pid);
                }
            }
        }
        let mut out = vec![self.root];
        let mut i = 0;
        while i < out.len() && out.len() < MAX_PIDS {
            if let Some(c) = children.get(&out[i]) {
                out.extend(c.iter().copied().filter(|p| *p != self.root));
            }
            i += 1;
        }
        out
    }

    /// Read the tree once. `now` is the time of this sample.
    pub fn sample(&mut self, r: &mut Reader, now: Instant) -> Reading {
        self.since_scan = self.since_scan.saturating_add(1);
        self.samples = self.samples.saturating_add(1);
        // A program that just started forks its workers now: look every
        // sample during the first rescan period, then every `rescan_every`.
        if self.since_scan >= self.rescan_every || self.samples <= self.rescan_every {
            self.discover(r);
            self.since_scan = 0;
        }
        let dt = self.last.map(|l| now.duration_since(l).as_secs_f64());
        self.last = Some(now);

        let mut alive = false;
        let mut ticks_delta: u64 = 0;
        let mut io_delta: u64 = 0;
        let mut io_seen = false;
        let mut io_denied = false;
        let mut rss_pages: u64 = 0;
        let mut threads: u32 = 0;
        let mut live_pids = Vec::with_capacity(self.pids.len());
        let mut next_prev = HashMap::with_capacity(self.pids.len());
        let wall_ns = dt.map(|d| (d * 1e9) as u64).unwrap_or(0);
        let mut demand = TreeDemand::default();
        let mut next_sched = HashMap::with_capacity(self.sched_prev.len());
        for &pid in &self.pids {
            let st = match r.read(&format!("/proc/{pid}/stat")) {
                Ok(text) => parse_stat(&text),
                Err(_) => None,
            };
            let Some(st) = st else { continue };
            if st.state == 'Z' || st.state == 'X' {
                continue;
            }
            if pid == self.root {
                alive = true;
            }
            live_pids.push(pid);
            threads = threads.saturating_add(st.threads);
            rss_pages = rss_pages.saturating_add(st.rss_pages);
            let io = match r.read(&format!("/proc/{pid}/io")) {
                Ok(text) => parse_io(&text).map(|(rchar, rb)| rchar.max(rb)),
                Err(ReadErr::Denied) => {
                    io_denied = true;
                    None
                }
                Err(_) => None,
            };
            if let Some(p) = self.prev.get(&pid) {
                if p.starttime == st.starttime {
                    // A counter that went backwards contributes nothing.
                    ticks_delta += st.ticks.saturating_sub(p.ticks);
                    if let (Some(a), Some(b)) = (p.io, io) {
                        io_delta += b.saturating_sub(a);
                        io_seen = true;
                    }
                }
            }
            self.sched_threads(r, pid, st.starttime, wall_ns, &mut demand, &mut next_sched);
            next_prev.insert(
                pid,
                Prev {
                    starttime: st.starttime,
                    ticks: st.ticks,
                    io,
                },
            );
        }
        self.prev = next_prev;
        self.sched_prev = next_sched;
        if live_pids.len() != self.pids.len() {
            // Someone left; look again next time (they may have been replaced).
            self.since_scan = self.rescan_every;
        }
        self.pids = if alive { live_pids } else { vec![self.root] };

        let (cores, read_bps) = match dt {
            Some(dt) if dt > 0.0 => (
                Some(ticks_delta as f64 / self.clk_tck / dt),
                io_seen.then(|| io_delta as f64 / dt),
            ),
            _ => (None, None),
        };
        Reading {
            alive,
            io_denied,
            sample: ProcSample {
                pids: self.prev.len() as u32,
                threads,
                cores,
                rss: Some(rss_pages.saturating_mul(self.page)),
                read_bps,
                // No thread with a delta: unknown, not "wants nothing".
                demand: (demand.threads > 0 && wall_ns > 0).then_some(demand.demand),
                saturated: (demand.threads > 0 && wall_ns > 0).then_some(demand.saturated),
            },
        }
    }

    /// Every thread of `pid`: its schedstat, and its demand since the last
    /// sample. A thread seen for the first time gives no delta (the time
    /// before it was seen is not known); threads that ended are not counted.
    fn sched_threads(
        &self,
        r: &mut Reader,
        pid: i32,
        starttime: u64,
        wall_ns: u64,
        demand: &mut TreeDemand,
        next: &mut HashMap<(i32, u32), (u64, SchedStat)>,
    ) {
        let Ok(tids) = r.list(&format!("/proc/{pid}/task")) else {
            return;
        };
        for tid in tids.iter().take(MAX_THREADS) {
            let Ok(tid) = tid.parse::<u32>() else {
                continue;
            };
            let Some(cur) = r
                .read(&format!("/proc/{pid}/task/{tid}/schedstat"))
                .ok()
                .and_then(|t| sched::parse_schedstat(&t))
            else {
                continue;
            };
            if let Some((start, prev)) = self.sched_prev.get(&(pid, tid)) {
                if *start == starttime {
                    if let Some(d) = sched::thread_demand(*prev, cur, wall_ns) {
                        demand.add(d);
                    }
                }
            }
            next.insert((pid, tid), (starttime, cur));
        }
    }
}

/// At most this many threads per process are read for demand.
const MAX_THREADS: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_and_parens_in_the_name() {
        let text = "1234 (my (odd) prog) R 1 1234 1234 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 7 0 987654 123456789 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 3 0 0 0 0 0\n";
        let st = parse_stat(text).unwrap();
        assert_eq!(st.comm, "my (odd) prog");
        assert_eq!(st.state, 'R');
        assert_eq!(st.ppid, 1);
        assert_eq!(st.ticks, 300);
        assert_eq!(st.threads, 7);
        assert_eq!(st.starttime, 987654);
        assert_eq!(st.rss_pages, 2560);
        assert!(parse_stat("garbage").is_none());
        assert!(parse_stat("1 (x) R 1").is_none());
    }

    #[test]
    fn io_and_children() {
        let io = "rchar: 1000\nwchar: 5\nsyscr: 1\nsyscw: 1\nread_bytes: 4096\nwrite_bytes: 0\ncancelled_write_bytes: 0\n";
        assert_eq!(parse_io(io), Some((1000, 4096)));
        assert_eq!(parse_io(""), None);
        assert_eq!(parse_children("12 13 \n"), vec![12, 13]);
        assert!(parse_children("").is_empty());
    }

    #[test]
    fn own_process_is_alive_and_counted() {
        let mut r = Reader::new(crate::source::live::Live::default());
        let me = std::process::id() as i32;
        let mut t = ProcTracker::new(me, 1);
        let t0 = Instant::now();
        let first = t.sample(&mut r, t0);
        assert!(first.alive);
        assert_eq!(first.sample.cores, None, "no rate from one sample");
        // Burn a little CPU so the delta is positive.
        let mut x = 0u64;
        while t0.elapsed().as_millis() < 60 {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let second = t.sample(&mut r, Instant::now());
        assert!(second.sample.cores.unwrap() >= 0.0);
        assert!(second.sample.rss.unwrap() > 0);
        assert!(second.sample.pids >= 1 && x > 0);
    }

    #[test]
    fn missing_process_is_not_alive() {
        let mut r = Reader::new(crate::source::live::Live::default());
        let mut t = ProcTracker::new(i32::MAX - 7, 1);
        let rd = t.sample(&mut r, Instant::now());
        assert!(!rd.alive);
    }
}
