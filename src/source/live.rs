//! The live face: this machine. `--sysfs` and `--procfs` move `/sys` and
//! `/proc` (the node_exporter convention), so tests point at fake trees.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use super::{
    CmdOutput, CmdSpec, Deadline, EnvFilter, Listing, MAX_FILE_BYTES, Mode, Producer, Read, Source,
    command, devfs::NodeStat,
};

#[derive(Debug, Clone)]
pub struct Live {
    pub sysfs: Option<PathBuf>,
    pub procfs: Option<PathBuf>,
    /// `--devfs`: where `/dev` is (tests point it at a tree of fake nodes).
    pub devfs: Option<PathBuf>,
    /// `--deadline`: every command is cut to what is left of the run.
    pub deadline: Option<Deadline>,
    /// The runtime variables a probe tool inherits (command::ToolEnv).
    pub tool_env: command::EnvPass,
}

impl Default for Live {
    fn default() -> Live {
        Live::new(None, None)
    }
}

impl Live {
    pub fn new(sysfs: Option<PathBuf>, procfs: Option<PathBuf>) -> Live {
        Live {
            sysfs,
            procfs,
            devfs: None,
            deadline: None,
            tool_env: command::no_runtime_vars,
        }
    }

    /// Let probe tools inherit the variables `pass` names (the GPU runtime
    /// allowlist, `probe::env::allowed`) besides PATH, LD_LIBRARY_PATH, HOME
    /// and the C locale. Without it they get only those.
    pub fn with_tool_env(mut self, pass: command::EnvPass) -> Live {
        self.tool_env = pass;
        self
    }

    /// Look for device nodes below `devfs` instead of `/dev`.
    pub fn with_devfs(mut self, devfs: Option<PathBuf>) -> Live {
        self.devfs = devfs;
        self
    }

    /// Bound every command this source runs by `deadline` (the run's end).
    pub fn with_deadline(mut self, deadline: Option<Deadline>) -> Live {
        self.deadline = deadline;
        self
    }

    /// Where a logical path lives on this machine.
    pub fn map(&self, logical: &str) -> PathBuf {
        for (prefix, root) in [
            ("/sys", &self.sysfs),
            ("/proc", &self.procfs),
            ("/dev", &self.devfs),
        ] {
            if let Some(root) = root {
                if logical == prefix {
                    return root.clone();
                }
                if let Some(rest) = logical.strip_prefix(prefix) {
                    if rest.starts_with('/') {
                        return root.join(rest.trim_start_matches('/'));
                    }
                }
            }
        }
        PathBuf::from(logical)
    }
}

pub(crate) fn read_path(p: &Path) -> Read {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: a FIFO planted where a probe reads (an ICD directory named
    // by OCL_ICD_VENDORS) must not hang the run; only regular files are read.
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_flags())
        .open(p);
    match opened {
        Ok(f) if !f.metadata().map(|m| m.is_file()).unwrap_or(false) => {
            Read::Failed("not a regular file".into())
        }
        Ok(f) => {
            let mut buf = Vec::new();
            match f.take(MAX_FILE_BYTES).read_to_end(&mut buf) {
                Ok(_) => Read::Ok(buf),
                Err(e) => io_to_read(e),
            }
        }
        Err(e) => io_to_read(e),
    }
}

fn libc_flags() -> i32 {
    (nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_NOCTTY).bits()
}

fn io_to_read(e: std::io::Error) -> Read {
    match e.kind() {
        std::io::ErrorKind::NotFound => Read::Missing,
        std::io::ErrorKind::PermissionDenied => Read::Denied,
        // Reading a directory or a sysfs attribute the driver refuses.
        _ => Read::Failed(e.to_string()),
    }
}

pub(crate) fn list_path(p: &Path) -> Listing {
    match std::fs::read_dir(p) {
        Ok(rd) => {
            let mut names: Vec<String> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            Listing::Ok(names)
        }
        Err(e) => match e.kind() {
            std::io::ErrorKind::NotFound => Listing::Missing,
            std::io::ErrorKind::PermissionDenied => Listing::Denied,
            _ => Listing::Failed(e.to_string()),
        },
    }
}

/// The allowlisted environment of this process. Names are checked before
/// values are looked at; values that are not UTF-8 are kept lossily, and
/// secrets inside them are redacted (super::redact) before anything sees them.
pub(crate) fn process_env(allow: EnvFilter<'_>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let k = k.to_str()?.to_string();
            if !allow(&k) {
                return None;
            }
            Some((k, super::redact::redact(&v.to_string_lossy())))
        })
        .collect();
    out.sort();
    out
}

impl Source for Live {
    fn mode(&self) -> Mode {
        Mode::Live
    }

    fn read(&self, path: &str) -> Read {
        read_path(&self.map(path))
    }

    fn list(&self, path: &str) -> Listing {
        list_path(&self.map(path))
    }

    fn link(&self, path: &str) -> Option<String> {
        std::fs::read_link(self.map(path))
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    }

    fn stat(&self, path: &str) -> NodeStat {
        // Device nodes are judged against the GPUs on the bus: with /sys moved
        // to another machine's tree and /dev not, they would be this
        // machine's nodes judged against that bus.
        if self.sysfs.is_some() && self.devfs.is_none() && path.starts_with("/dev/") {
            return NodeStat::Unknown("--sysfs moved /sys but /dev was not moved (--devfs)".into());
        }
        super::devfs::stat_path(&self.map(path))
    }

    fn env_vars(&self, allow: EnvFilter<'_>) -> Vec<(String, String)> {
        process_env(allow)
    }

    fn run(&self, spec: &CmdSpec) -> CmdOutput {
        let env = command::ToolEnv::from_process(self.tool_env);
        match self.deadline {
            Some(d) => {
                let mut cut = spec.clone();
                cut.timeout = d.clamp(spec.timeout);
                command::run(&cut, &env)
            }
            None => command::run(spec, &env),
        }
    }

    fn computed(&self, _name: &str, produce: Producer<'_>) -> CmdOutput {
        produce(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_sysfs_and_procfs_roots() {
        let l = Live::new(Some("/tmp/fake-sys".into()), Some("/tmp/fake-proc".into()));
        assert_eq!(
            l.map("/sys/bus/pci"),
            PathBuf::from("/tmp/fake-sys/bus/pci")
        );
        assert_eq!(l.map("/sys"), PathBuf::from("/tmp/fake-sys"));
        assert_eq!(
            l.map("/proc/meminfo"),
            PathBuf::from("/tmp/fake-proc/meminfo")
        );
        assert_eq!(l.map("/system"), PathBuf::from("/system"));
        assert_eq!(l.map("/etc/os-release"), PathBuf::from("/etc/os-release"));
    }

    #[test]
    fn missing_and_directory_reads_do_not_panic() {
        let l = Live::default();
        assert_eq!(l.read("/nonexistent/rigdoctor/file"), Read::Missing);
        assert!(matches!(l.read("/"), Read::Failed(_)));
        assert_eq!(l.list("/nonexistent/rigdoctor"), Listing::Missing);
    }
}
