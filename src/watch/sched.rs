//! Demand, not share: how much CPU the watched tree *wants*, from the
//! scheduler's own accounting, next to how much it got.
//!
//! `/proc/PID/task/TID/schedstat` holds three numbers per thread: time on a
//! CPU (ns), time waiting on a run queue (ns), and timeslices run (proc(5),
//! Documentation/scheduler/sched-stats.rst). Over an interval, (Δon-cpu +
//! Δwaiting) / Δwall is the share of the interval the thread was runnable:
//! 1.0 for a thread that never sleeps, however little of a CPU it was given.
//! Summed over the tree's threads it is the cores the run would keep busy on
//! an idle machine, so a CPU-bound run on a loaded box (or pinned to one CPU)
//! is still seen as CPU-bound. Machine load (`/proc/loadavg`) is shown beside
//! it so a person sees why the share is low.
//!
//! Pure: the sampler reads the files, these functions do the arithmetic.

/// One thread's `schedstat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedStat {
    /// Time spent on a CPU, ns.
    pub run_ns: u64,
    /// Time spent runnable but waiting for a CPU, ns.
    pub wait_ns: u64,
    /// Timeslices run.
    pub slices: u64,
}

/// Parse `/proc/PID/task/TID/schedstat` (`"243542689 813994446 70\n"`).
/// Anything but three unsigned numbers is None.
pub fn parse_schedstat(text: &str) -> Option<SchedStat> {
    let mut it = text.split_whitespace().map(|s| s.parse::<u64>().ok());
    let st = SchedStat {
        run_ns: it.next()??,
        wait_ns: it.next()??,
        slices: it.next()??,
    };
    // A fourth field is not the format we know.
    it.next().is_none().then_some(st)
}

/// A thread runnable at least this share of an interval counts as runnable
/// all the time: CPU-bound, whatever share of a CPU it got.
pub const SATURATED: f64 = 0.9;

/// One thread over one interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThreadDemand {
    /// Cores received (Δrun / Δwall).
    pub cpu: f64,
    /// Cores wanted (Δ(run + wait) / Δwall), at most 1: a thread is on one
    /// CPU at a time; above 1 is only the skew of reading the files at
    /// slightly different times than the wall clock.
    pub demand: f64,
}

/// One thread's use between two readings `wall_ns` apart. None when a
/// counter went backwards (a reused thread id) or no time passed.
pub fn thread_demand(prev: SchedStat, cur: SchedStat, wall_ns: u64) -> Option<ThreadDemand> {
    if wall_ns == 0 || cur.run_ns < prev.run_ns || cur.wait_ns < prev.wait_ns {
        return None;
    }
    let wall = wall_ns as f64;
    let run = (cur.run_ns - prev.run_ns) as f64;
    let wait = (cur.wait_ns - prev.wait_ns) as f64;
    Some(ThreadDemand {
        cpu: (run / wall).min(1.0),
        demand: ((run + wait) / wall).min(1.0),
    })
}

/// The tree over one interval: the sum over its threads.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TreeDemand {
    /// Cores received, by the scheduler's clock.
    pub cpu: f64,
    /// Cores wanted.
    pub demand: f64,
    /// Threads runnable at least [`SATURATED`] of the interval.
    pub saturated: u32,
    /// Threads with a delta (those seen in both readings).
    pub threads: u32,
}

impl TreeDemand {
    pub fn add(&mut self, t: ThreadDemand) {
        self.cpu += t.cpu;
        self.demand += t.demand;
        self.threads += 1;
        if t.demand >= SATURATED {
            self.saturated += 1;
        }
    }
}

/// `/proc/loadavg`: the 1-minute load and the runnable count of this instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadAvg {
    pub load1: f64,
    /// Runnable scheduling entities now (the `R` of `R/T`).
    pub runnable: u32,
}

/// Parse `/proc/loadavg` (`"4.37 1.80 0.76 8/120 23165\n"`).
pub fn parse_loadavg(text: &str) -> Option<LoadAvg> {
    let f: Vec<&str> = text.split_whitespace().collect();
    if f.len() != 5 {
        return None;
    }
    let load1 = f[0]
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)?;
    let (r, _) = f[3].split_once('/')?;
    Some(LoadAvg {
        load1,
        runnable: r.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real readings from this project's 2-core test VM (kernel
    /// 6.18.44): two `sh -c 'while :; do :; done'` loops pinned to CPU 0
    /// with `taskset -c 0`, and a `sleep 30`, read 2.15 s apart
    /// (`fixtures/outputs/procfs/schedstat-two-loops-pinned-cpu0.txt`).
    fn fixture() -> Vec<String> {
        let text = std::fs::read_to_string(format!(
            "{}/fixtures/outputs/procfs/schedstat-two-loops-pinned-cpu0.txt",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap_or_default();
        assert!(
            text.starts_with("# source:"),
            "the fixture keeps its source line"
        );
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(String::from)
            .collect()
    }

    /// `pid comm run wait slices utime stime` -> the schedstat part.
    fn stat_of(line: &str) -> SchedStat {
        let f: Vec<&str> = line.split_whitespace().collect();
        parse_schedstat(&f[2..5].join(" ")).unwrap_or(SchedStat {
            run_ns: 0,
            wait_ns: 0,
            slices: 0,
        })
    }

    #[test]
    fn two_loops_sharing_one_cpu_want_a_core_each() {
        let lines = fixture();
        // t=25253.31 / three threads / loadavg, then t=25255.46 / ...
        let up = |l: &str| -> f64 {
            l.trim_start_matches("t=")
                .split_whitespace()
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0.0)
        };
        let (t0, t1) = (up(&lines[0]), up(&lines[5]));
        let wall_ns = ((t1 - t0) * 1e9).round() as u64;
        assert_eq!(wall_ns, 2_150_000_000, "uptime has 10 ms resolution");
        let mut tree = TreeDemand::default();
        for i in 1..=2 {
            let d = thread_demand(stat_of(&lines[i]), stat_of(&lines[i + 5]), wall_ns).unwrap();
            // 0.478 s on the CPU, 1.674 s waiting, of 2.15 s: a 22 % share,
            // runnable all the time.
            assert!(d.cpu > 0.15 && d.cpu < 0.3, "{d:?}");
            assert!(d.demand >= SATURATED, "{d:?}");
            tree.add(d);
        }
        assert_eq!(tree.saturated, 2);
        assert!(tree.demand > 1.9 && tree.cpu < 0.6, "{tree:?}");
        // The sleeper did not move: no demand.
        let s = thread_demand(stat_of(&lines[3]), stat_of(&lines[8]), wall_ns).unwrap();
        assert_eq!(s.demand, 0.0);
        // Machine load beside it.
        let la = parse_loadavg(&lines[4]).unwrap();
        assert_eq!((la.load1, la.runnable), (4.37, 8));
    }

    #[test]
    fn hostile_text_is_none_not_a_number() {
        assert_eq!(
            parse_schedstat("243542689 813994446 70\n"),
            Some(SchedStat {
                run_ns: 243542689,
                wait_ns: 813994446,
                slices: 70
            })
        );
        for bad in [
            "",
            "1 2",
            "1 2 3 4",
            "a b c",
            "-1 2 3",
            "1 2 99999999999999999999999",
        ] {
            assert_eq!(parse_schedstat(bad), None, "{bad:?}");
        }
        for bad in [
            "",
            "x 1 1 1/2 3",
            "1 1 1 12 3",
            "NaN 1 1 1/2 3",
            "-1 1 1 1/2 3",
        ] {
            assert_eq!(parse_loadavg(bad), None, "{bad:?}");
        }
        let a = SchedStat {
            run_ns: 10,
            wait_ns: 10,
            slices: 1,
        };
        let b = SchedStat {
            run_ns: 5,
            wait_ns: 20,
            slices: 2,
        };
        assert_eq!(thread_demand(a, b, 100), None, "backwards: a reused tid");
        assert_eq!(thread_demand(a, a, 0), None);
        // Read skew never makes one thread want more than a core.
        let c = SchedStat {
            run_ns: 10 + 80,
            wait_ns: 10 + 40,
            slices: 3,
        };
        assert_eq!(thread_demand(a, c, 100).unwrap().demand, 1.0);
    }
}
