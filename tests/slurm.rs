//! contrib/slurm/rigdoctor-healthcheck against a real one-node Slurm
//! (Debian's slurm-wlm and munge, issue 10 §3): munged, slurmctld and
//! slurmd are started here on 127.0.0.1 with a generated slurm.conf in a
//! temp dir, and slurmd itself runs the health check every few seconds, as
//! on a cluster. A fake nvidia-smi prints a real "GPU is lost" text (then
//! the real healthy outputs of a fixture rig): the node must be drained with
//! "rigdoctor: NV-GPU-LOST", then resumed; an admin's own drain must stay.
//! Needs root (the daemons run as root, as CI does); skipped with a message
//! otherwise. With RIGDOCTOR_CI=1 a missing Slurm fails.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on purpose"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const DAEMONS: [&str; 4] = [
    "/usr/sbin/munged",
    "/usr/sbin/slurmctld",
    "/usr/sbin/slurmd",
    "/usr/bin/scontrol",
];

/// The daemons we started, stopped (by their own pids) however the test ends.
struct Daemons(Vec<(&'static str, Child)>);

impl Drop for Daemons {
    fn drop(&mut self) {
        // slurmd first: it runs the health check.
        for (_, c) in self.0.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn short_hostname() -> String {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    h.trim().split('.').next().unwrap().to_string()
}

struct Cluster {
    dir: PathBuf,
    node: String,
    // Dropped in this order: the daemons stop, then their directory goes.
    _daemons: Daemons,
    _tmp: tempfile::TempDir,
}

impl Cluster {
    fn scontrol(&self, args: &[&str]) -> String {
        let out = Command::new("/usr/bin/scontrol")
            .args(args)
            .env("SLURM_CONF", self.dir.join("slurm.conf"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn node_line(&self) -> String {
        self.scontrol(&["-o", "show", "node", &self.node])
    }

    /// How many times slurmd has run the health check so far.
    fn checks_run(&self) -> usize {
        std::fs::read_to_string(self.dir.join("runs"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for f in ["hc.log", "slurmd.log", "slurmctld.log", "munged.log"] {
            let text = std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            out.push_str(&format!("--- {f} (last lines)\n"));
            for l in tail.iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    /// Poll until `ok` holds for the node's line (generous: a loaded 2-core box).
    fn wait_for(&self, what: &str, secs: u64, ok: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            let line = self.node_line();
            if ok(&line) {
                return line;
            }
            if Instant::now() > end {
                panic!("{what}: not within {secs} s; node: {line}\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

fn state(line: &str) -> &str {
    line.split(' ')
        .find_map(|w| w.strip_prefix("State="))
        .unwrap_or("")
}

fn reason(line: &str) -> &str {
    line.split_once(" Reason=").map(|(_, r)| r).unwrap_or("")
}

fn write_exec(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The fake nvidia-smi: the real "GPU is lost" text (exit 15, nvidia-smi's
/// code for a GPU off the bus) while `broken` exists, else the real outputs
/// of the nv-2x3090-nvlink rig for each command rigdoctor runs.
fn fake_nvidia_smi(dir: &Path) -> String {
    let lost =
        root().join("fixtures/outputs/nvidia-smi-errors/owod-81-device-handle-gpu-is-lost.txt");
    let cmd = rigs_dir().join("nv-2x3090-nvlink/cmd");
    format!(
        r##"#!/bin/sh
# PATH holds only this directory: builtins and absolute paths only.
if [ -e {broken} ]; then
    while IFS= read -r l; do case $l in "# ---") break ;; esac; done
    /bin/cat
    exit 15
fi < {lost}
case "$*" in
"") f=nvidia-smi ;;
"-q") f=nvidia-smi-q ;;
"topo -m") f=nvidia-smi-topo-m ;;
"topo -p2p r") f=nvidia-smi-topo-p2p ;;
"nvlink -s") f=nvidia-smi-nvlink ;;
*) exit 2 ;;
esac
/bin/cat {cmd}/$f.out
read -r s < {cmd}/$f.status
exit "$s"
"##,
        broken = dir.join("broken").display(),
        lost = lost.display(),
        cmd = cmd.display(),
    )
}

fn start() -> Option<Cluster> {
    let ci = std::env::var_os("RIGDOCTOR_CI").is_some();
    if let Some(missing) = DAEMONS.iter().find(|p| !Path::new(p).exists()) {
        assert!(
            !ci,
            "{missing} is missing: .ci/run installs slurm-wlm and munge"
        );
        eprintln!("SKIP slurm test: {missing} is missing (apt-get install slurm-wlm munge)");
        return None;
    }
    if !nix::unistd::Uid::effective().is_root() {
        assert!(!ci, "the Slurm test needs root (CI runs as root)");
        eprintln!("SKIP slurm test: munged/slurmctld/slurmd are started as root; not root here");
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for sub in ["munge", "state", "spool", "bin"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    let node = short_hostname();
    let rig = rigs_dir().join("nv-2x3090-nvlink/root");

    // munge: a fresh key, our own socket.
    let key: Vec<u8> = (0..1024).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(d.join("munge/munge.key"), key).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.join("munge"), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(
            d.join("munge/munge.key"),
            std::fs::Permissions::from_mode(0o400),
        )
        .unwrap();
    }
    let sock = d.join("munge/sock");

    // The health check as an admin installs it: a wrapper that sets what
    // slurmd does not pass (it runs the program with an empty environment).
    write_exec(&d.join("bin/nvidia-smi"), &fake_nvidia_smi(d));
    std::os::unix::fs::symlink("/usr/bin/scontrol", d.join("bin/scontrol")).unwrap();
    write_exec(
        &d.join("healthcheck"),
        &format!(
            "#!/bin/sh\necho run >> {runs}\nexport PATH={bin} SLURM_CONF={conf} RIGDOCTOR={rd} \
             RIGDOCTOR_ARGS='--sysfs {sys} --procfs {proc_}' RIGDOCTOR_DEADLINE=20\n\
             exec {script} >> {log} 2>&1\n",
            runs = d.join("runs").display(),
            bin = d.join("bin").display(),
            conf = d.join("slurm.conf").display(),
            rd = bin(),
            sys = rig.join("sys").display(),
            proc_ = rig.join("proc").display(),
            script = root().join("contrib/slurm/rigdoctor-healthcheck").display(),
            log = d.join("hc.log").display(),
        ),
    );
    let conf = format!(
        "ClusterName=rigdoctortest\n\
         SlurmctldHost={node}(127.0.0.1)\n\
         SlurmctldPort={cport}\n\
         SlurmdPort={dport}\n\
         AuthType=auth/munge\n\
         AuthInfo=socket={sock}\n\
         CredType=cred/munge\n\
         SlurmUser=root\n\
         SlurmdUser=root\n\
         StateSaveLocation={dir}/state\n\
         SlurmdSpoolDir={dir}/spool\n\
         SlurmctldPidFile={dir}/slurmctld.pid\n\
         SlurmdPidFile={dir}/slurmd.pid\n\
         SlurmctldLogFile={dir}/slurmctld.log\n\
         SlurmdLogFile={dir}/slurmd.log\n\
         ProctrackType=proctrack/linuxproc\n\
         TaskPlugin=task/none\n\
         MpiDefault=none\n\
         SwitchType=switch/none\n\
         JobAcctGatherType=jobacct_gather/none\n\
         AccountingStorageType=accounting_storage/none\n\
         ReturnToService=2\n\
         HealthCheckProgram={dir}/healthcheck\n\
         HealthCheckInterval=3\n\
         HealthCheckNodeState=ANY\n\
         NodeName={node} NodeAddr=127.0.0.1 CPUs=1 RealMemory=100 State=UNKNOWN\n\
         PartitionName=debug Nodes={node} Default=YES State=UP\n",
        cport = free_port(),
        dport = free_port(),
        sock = sock.display(),
        dir = d.display(),
    );
    std::fs::write(d.join("slurm.conf"), conf).unwrap();

    let spawn = |argv: &[&str], log: &str| -> Child {
        let out = std::fs::File::create(d.join(log)).unwrap();
        Command::new(argv[0])
            .args(&argv[1..])
            .env("SLURM_CONF", d.join("slurm.conf"))
            .current_dir(d)
            .stdin(Stdio::null())
            .stderr(out.try_clone().unwrap())
            .stdout(out)
            .spawn()
            .unwrap()
    };
    let p = |x: &Path| x.display().to_string();
    let mut daemons = Daemons(Vec::new());
    daemons.0.push((
        "munged",
        spawn(
            &[
                "/usr/sbin/munged",
                "-F",
                "-f",
                &format!("--socket={}", p(&sock)),
                &format!("--key-file={}", p(&d.join("munge/munge.key"))),
                &format!("--pid-file={}", p(&d.join("munge/pid"))),
                &format!("--seed-file={}", p(&d.join("munge/seed"))),
                &format!("--log-file={}", p(&d.join("munge/log"))),
            ],
            "munged.log",
        ),
    ));
    let end = Instant::now() + Duration::from_secs(60);
    while !sock.exists() {
        if let Ok(Some(st)) = daemons.0[0].1.try_wait() {
            let log = std::fs::read_to_string(d.join("munged.log")).unwrap_or_default();
            panic!("munged could not start ({st}):\n{log}");
        }
        assert!(Instant::now() < end, "munged made no socket in 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let conf = p(&d.join("slurm.conf"));
    daemons.0.push((
        "slurmctld",
        spawn(&["/usr/sbin/slurmctld", "-D", "-f", &conf], "slurmctld.out"),
    ));
    daemons.0.push((
        "slurmd",
        spawn(&["/usr/sbin/slurmd", "-D", "-f", &conf], "slurmd.out"),
    ));
    let c = Cluster {
        dir: d.to_path_buf(),
        node,
        _daemons: daemons,
        _tmp: tmp,
    };
    c.wait_for("the node registers with slurmctld", 120, |l| {
        state(l).starts_with("IDLE")
    });
    Some(c)
}

#[test]
fn healthcheck_drains_a_broken_node_and_resumes_it() {
    let started = Instant::now();
    let Some(c) = start() else { return };

    // A GPU off the bus: slurmd's next health check drains the node.
    std::fs::write(c.dir.join("broken"), "").unwrap();
    let line = c.wait_for("drained by rigdoctor", 120, |l| state(l).contains("DRAIN"));
    assert!(
        reason(&line).starts_with("rigdoctor: NV-GPU-LOST"),
        "reason: {line}\n{}",
        c.logs()
    );
    let sinfo = Command::new("/usr/bin/sinfo")
        .args(["-R", "-h", "-o", "%E|%N"])
        .env("SLURM_CONF", c.dir.join("slurm.conf"))
        .output()
        .unwrap();
    let sinfo = String::from_utf8_lossy(&sinfo.stdout);
    assert!(
        sinfo.contains(&format!("rigdoctor: NV-GPU-LOST|{}", c.node)),
        "sinfo -R: {sinfo}"
    );

    // The GPU is back: the next check resumes the node it drained.
    std::fs::remove_file(c.dir.join("broken")).unwrap();
    let line = c.wait_for("resumed by rigdoctor", 120, |l| !state(l).contains("DRAIN"));
    assert!(state(&line).starts_with("IDLE"), "{line}");

    // Issue 12: `watch` inside a Slurm job. scancel signals every process of
    // the step, so the program got SIGTERM from slurmstepd already:
    // rigdoctor must not send it a second one (llama-server would answer
    // "Received second interrupt" and exit 1).
    signal_from_slurm_reaches_the_program_once(&c);

    // An admin's drain is never undone, though the check is clean.
    c.scontrol(&[
        "update",
        &format!("NodeName={}", c.node),
        "State=DRAIN",
        "Reason=bios update",
    ]);
    c.wait_for("drained by the admin", 60, |l| state(l).contains("DRAIN"));
    let seen = c.checks_run();
    let end = Instant::now() + Duration::from_secs(120);
    while c.checks_run() < seen + 2 {
        assert!(
            Instant::now() < end,
            "slurmd stopped running the check\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let line = c.node_line();
    assert!(
        state(&line).contains("DRAIN") && reason(&line).starts_with("bios update"),
        "{line}\n{}",
        c.logs()
    );
    eprintln!(
        "slurm test: {:.1} s, {} health checks run by slurmd",
        started.elapsed().as_secs_f64(),
        c.checks_run()
    );
    drop(c);
}

fn signal_from_slurm_reaches_the_program_once(c: &Cluster) {
    let d = c.dir.join("sig");
    std::fs::create_dir_all(&d).unwrap();
    // The program counts the TERMs it gets and who sent each (sigwaitinfo:
    // the sender's pid, its comm read at once); it ends 2 s after the first
    // one, and after 60 s in any case: nothing outlives the test.
    let program = format!(
        r#"import os, signal, time
signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGTERM}})
open("{ready}", "w").write("up")
end = time.time() + 60
while time.time() < end:
    info = signal.sigtimedwait({{signal.SIGTERM}}, 0.1)
    if info is None:
        continue
    try:
        comm = open("/proc/%d/comm" % info.si_pid).read().strip()
    except OSError:
        comm = "?"
    open("{terms}", "a").write("TERM from %s\n" % comm)
    end = min(end, time.time() + 2)
"#,
        terms = d.join("terms").display(),
        ready = d.join("ready").display(),
    );
    std::fs::write(d.join("program.py"), program).unwrap();
    write_exec(
        &d.join("job.sh"),
        &format!(
            "#!/bin/sh\nexec {rd} watch --interval 0.5 --format json --output {out} -- python3 {prog}\n",
            rd = bin(),
            out = d.join("watch.jsonl").display(),
            prog = d.join("program.py").display(),
        ),
    );
    let sbatch = Command::new("/usr/bin/sbatch")
        .args(["--parsable", "-o"])
        .arg(d.join("job.out"))
        .arg(d.join("job.sh"))
        .env("SLURM_CONF", c.dir.join("slurm.conf"))
        .current_dir(&d)
        .output()
        .unwrap();
    let job = String::from_utf8_lossy(&sbatch.stdout).trim().to_string();
    assert!(
        sbatch.status.success() && !job.is_empty(),
        "sbatch: {}{}",
        String::from_utf8_lossy(&sbatch.stderr),
        c.logs()
    );
    let end = Instant::now() + Duration::from_secs(120);
    while !d.join("ready").exists() {
        assert!(
            Instant::now() < end,
            "the job did not start in 120 s\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Both rigdoctor and the program are processes of the batch step.
    let st = Command::new("/usr/bin/scancel")
        .args(["--signal=TERM", "--full", &job])
        .env("SLURM_CONF", c.dir.join("slurm.conf"))
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "scancel {job}: {}\njob output:\n{}\n{}",
        String::from_utf8_lossy(&st.stderr),
        std::fs::read_to_string(d.join("job.out")).unwrap_or_default(),
        c.logs()
    );
    // The job ends 2 s after the first TERM; its watch summary is the end.
    let end = Instant::now() + Duration::from_secs(120);
    let summary = loop {
        let text = std::fs::read_to_string(d.join("watch.jsonl")).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| l.contains("\"type\":\"summary\"")) {
            break l.to_string();
        }
        assert!(
            Instant::now() < end,
            "no watch summary in 120 s\n{}\n{}",
            std::fs::read_to_string(d.join("job.out")).unwrap_or_default(),
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let terms = std::fs::read_to_string(d.join("terms")).unwrap_or_default();
    let out = std::fs::read_to_string(d.join("job.out")).unwrap_or_default();
    assert_eq!(
        terms.lines().collect::<Vec<_>>(),
        ["TERM from slurmstepd"],
        "the program gets SIGTERM once, from Slurm\njob output:\n{out}"
    );
    assert!(
        out.contains("not forwarded: slurmstepd"),
        "rigdoctor says why it did not forward: {out}"
    );
    let v: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(
        v["exit"], 0,
        "the program ended on its own terms: {summary}"
    );
}
