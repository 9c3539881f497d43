//! Containers: does rigdoctor run inside one, and what did it get?
//!
//! Read through the Source: `/proc/self/mountinfo` (proc(5)), of which only
//! the lines of the mount points judged here are kept and recorded (the
//! computed output `container-mounts`: a host's mount table names every
//! disk, share and home directory, and can run to thousands of lines),
//! `/proc/self/cgroup` (cgroups(7)), whether `/.dockerenv` (Docker) and
//! `/run/.containerenv` (Podman) exist (by `lstat`, so their content is
//! neither read nor stored), and the allowlisted variable `container`. What
//! it means (inside or not, which engine) is derive::container.

use crate::rig::{Container, ProbeReport};
use crate::source::devfs::NodeStat;
use crate::source::{CmdOutput, CmdStatus, Mode, Read, Source};

pub const PROBE: &str = "container";

/// The computed output that holds the judged mountinfo lines.
pub const MOUNTS: &str = "container-mounts";

/// The mount points whose lines are kept: the root and `/dev` filesystems
/// tell a container from a host, `/dev/shm` is what NCCL and oneCCL share,
/// and the three files Docker and Podman bind into every container.
pub const JUDGED: &[&str] = &[
    "/",
    "/dev",
    "/dev/shm",
    "/etc/hostname",
    "/etc/hosts",
    "/etc/resolv.conf",
];

/// At most this many lines are kept (a mount point mounted over again and
/// again must not grow the capture without bound).
const MAX_LINES: usize = 64;

/// A mount point as the kernel writes it: space, tab, newline and backslash
/// as octal escapes (`\040`).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = oct.iter().fold(0u32, |a, c| a * 8 + u32::from(c - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount point of one mountinfo line (its fifth field), unescaped.
fn mount_point(line: &str) -> Option<String> {
    line.split_ascii_whitespace().nth(4).map(unescape)
}

/// The lines of `mountinfo` whose mount point is one of [`JUDGED`], in
/// their order, each with its newline.
pub fn judged_lines(mountinfo: &str) -> String {
    let mut out = String::new();
    for line in mountinfo
        .lines()
        .filter(|l| mount_point(l).is_some_and(|m| JUDGED.contains(&m.as_str())))
        .take(MAX_LINES)
    {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// One mountinfo line (proc(5)): `36 35 98:0 /mnt1 /mnt2 rw,noatime
/// master:1 - ext3 /dev/root rw,errors=continue`: after the optional
/// fields and the `-` separator come the filesystem type, the source and
/// the superblock options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub point: String,
    pub fs_type: String,
    pub source: String,
    pub super_options: String,
}

pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_ascii_whitespace().collect();
            if f.len() < 10 || !f[0].bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let sep = f.iter().skip(6).position(|w| *w == "-")? + 6;
            let fs_type = f.get(sep + 1)?;
            Some(Mount {
                point: unescape(f[4]),
                fs_type: fs_type.to_string(),
                source: f.get(sep + 2)?.to_string(),
                super_options: f.get(sep + 3).copied().unwrap_or("").to_string(),
            })
        })
        .collect()
}

/// The mount in effect at `point`: the last one listed (a mount over
/// another is listed after it).
pub fn mounted_at<'m>(mounts: &'m [Mount], point: &str) -> Option<&'m Mount> {
    mounts.iter().rev().find(|m| m.point == point)
}

/// The size a tmpfs was given (`size=65536k`; the kernel prints it in
/// KiB, a mount command may give `m`/`g` or plain bytes). None when absent
/// (the default, half of RAM) or a percentage.
pub fn tmpfs_size(options: &str) -> Option<u64> {
    let v = options.split(',').find_map(|o| o.strip_prefix("size="))?;
    let (digits, mult) = match v.as_bytes().last()? {
        b'k' | b'K' => (&v[..v.len() - 1], 1u64 << 10),
        b'm' | b'M' => (&v[..v.len() - 1], 1 << 20),
        b'g' | b'G' => (&v[..v.len() - 1], 1 << 30),
        b'0'..=b'9' => (v, 1),
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

/// The cgroup paths of `/proc/self/cgroup` (`hierarchy:controllers:path`).
pub fn cgroup_paths(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim_end().splitn(3, ':');
            let (_, _, path) = (f.next()?, f.next()?, f.next()?);
            path.starts_with('/').then(|| path.to_string())
        })
        .collect()
}

/// The engine a cgroup path names. Kubernetes first: its pods sit under
/// `kubepods` whatever runtime (docker, containerd, CRI-O) runs them.
/// `docker.service` (the daemon itself on a host) is not a container.
pub fn cgroup_engine(paths: &[String]) -> Option<&'static str> {
    let has = |f: &dyn Fn(&str) -> bool| paths.iter().any(|p| p.split('/').any(f));
    if has(&|s| s == "kubepods" || s.starts_with("kubepods-") || s.starts_with("kubepods.")) {
        return Some("kubernetes");
    }
    if has(&|s| s.starts_with("libpod-") || s == "libpod_parent") {
        return Some("podman");
    }
    let docker_dir = paths.iter().any(|p| {
        let segs: Vec<&str> = p.split('/').collect();
        segs.windows(2).any(|w| {
            w[0] == "docker" && w[1].len() >= 12 && w[1].bytes().all(|b| b.is_ascii_hexdigit())
        })
    });
    if docker_dir || has(&|s| s.starts_with("docker-") && s.ends_with(".scope")) {
        return Some("docker");
    }
    if has(&|s| s == "lxc" || s.starts_with("lxc.payload")) {
        return Some("lxc");
    }
    None
}

/// The judged lines of this machine's mountinfo, as a computed output:
/// live, only these are kept; recorded, only these are stored.
fn produce(live: &dyn Source) -> CmdOutput {
    match live.read("/proc/self/mountinfo") {
        Read::Ok(b) => CmdOutput {
            status: CmdStatus::Exit(0),
            stdout: judged_lines(&String::from_utf8_lossy(&b)).into_bytes(),
            stderr: Vec::new(),
            duration_ms: 0,
            truncated: false,
        },
        Read::Missing => CmdOutput::with_status(CmdStatus::Missing),
        Read::Denied => CmdOutput::with_status(CmdStatus::Failed("permission denied".into())),
        Read::Failed(m) => CmdOutput::with_status(CmdStatus::Failed(m)),
    }
}

/// Exists (true), absent (false), or could not be told (None: an old
/// capture, a denied directory).
fn exists(st: NodeStat) -> Option<bool> {
    match st {
        NodeStat::Ok(_) => Some(true),
        NodeStat::Missing => Some(false),
        _ => None,
    }
}

pub fn probe(src: &dyn Source) -> (Container, ProbeReport) {
    let mut c = Container {
        dockerenv: exists(src.stat("/.dockerenv")),
        containerenv: exists(src.stat("/run/.containerenv")),
        ..Container::default()
    };
    if let Some(t) = src.read("/proc/self/cgroup").text() {
        c.cgroup_engine = cgroup_engine(&cgroup_paths(&t)).map(String::from);
    }
    let out = src.computed(MOUNTS, &produce);
    let (status, detail) = match &out.status {
        CmdStatus::Exit(0) => {
            let mounts = parse_mountinfo(&out.stdout_text());
            let root = mounted_at(&mounts, "/");
            let dev = mounted_at(&mounts, "/dev");
            c.root_fs = root.map(|m| m.fs_type.clone());
            c.dev_fs = dev.map(|m| m.fs_type.clone());
            c.shm_bytes = mounted_at(&mounts, "/dev/shm")
                .filter(|m| m.fs_type == "tmpfs")
                .and_then(|m| tmpfs_size(&m.super_options));
            if root.is_none() {
                (
                    "unparsed",
                    format!(
                        "/proc/self/mountinfo has no line for / ({} judged lines read)",
                        mounts.len()
                    ),
                )
            } else {
                let fs = |v: &Option<String>| v.clone().unwrap_or_else(|| "not mounted".into());
                (
                    "ok",
                    format!("/ is {}, /dev is {}", fs(&c.root_fs), fs(&c.dev_fs)),
                )
            }
        }
        CmdStatus::Missing if src.mode() == Mode::Replay => (
            "missing",
            "the capture holds no container-mounts (made before rigdoctor recorded them)".into(),
        ),
        CmdStatus::Missing => ("missing", "/proc/self/mountinfo is missing".into()),
        CmdStatus::Failed(m) if m.contains("permission denied") => (
            "denied",
            "/proc/self/mountinfo could not be read: permission denied".into(),
        ),
        CmdStatus::Failed(m) => (
            "failed",
            format!("/proc/self/mountinfo could not be read: {m}"),
        ),
        other => (
            "failed",
            format!(
                "/proc/self/mountinfo could not be read ({})",
                other.to_record()
            ),
        ),
    };
    (c, ProbeReport::new(PROBE, status, 0, detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// /proc/self/mountinfo of a Docker container (cgroup v2, overlay2):
    /// elastic/apm-agent-java, apm-agent-core/src/test/resources/json-specs/
    /// container_metadata_discovery.json (case `cgroup_v2`), commit 6d5768eb.
    const DOCKER: &str = "3984 3905 0:73 / / rw,relatime shared:1863 master:1733 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/KEX7CWLHQCXQY2RHPGTXJ3C26N:/var/lib/docker/overlay2/l/2PVS7JRTRSTVZS4KSUAFML3BIV:/var/lib/docker/overlay2/l/52M7ARM4JDVHCJAYUI6JIKBO4B,upperdir=/var/lib/docker/overlay2/267f825fb89e584605bf161177451879c0ba8b15f7df9b51fb7843c7beb9ed25/diff,workdir=/var/lib/docker/overlay2/267f825fb89e584605bf161177451879c0ba8b15f7df9b51fb7843c7beb9ed25/work
3985 3984 0:77 / /proc rw,nosuid,nodev,noexec,relatime shared:1864 - proc proc rw
3986 3984 0:78 / /dev rw,nosuid shared:1865 - tmpfs tmpfs rw,size=65536k,mode=755,inode64
3987 3986 0:79 / /dev/pts rw,nosuid,noexec,relatime shared:1866 - devpts devpts rw,gid=5,mode=620,ptmxmode=666
3988 3984 0:80 / /sys ro,nosuid,nodev,noexec,relatime shared:1870 - sysfs sysfs ro
3989 3988 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:1871 - cgroup2 cgroup rw
3990 3986 0:76 / /dev/mqueue rw,nosuid,nodev,noexec,relatime shared:1867 - mqueue mqueue rw
3991 3986 0:81 / /dev/shm rw,nosuid,nodev,noexec,relatime shared:1868 - tmpfs shm rw,size=65536k,inode64
3992 3984 253:1 /var/lib/docker/volumes/9d18ce5b36572d85358fa936afe5a4bf95cca5c822b04941aa08c6118f6e0d33/_data /var rw,relatime shared:1872 master:1 - ext4 /dev/mapper/vgubuntu-root rw,errors=remount-ro
3993 3984 0:82 / /run rw,nosuid,nodev,noexec,relatime shared:1873 - tmpfs tmpfs rw,inode64
3994 3984 0:83 / /tmp rw,nosuid,nodev,noexec,relatime shared:1874 - tmpfs tmpfs rw,inode64
3995 3984 253:1 /usr/lib/modules /usr/lib/modules ro,relatime shared:1875 - ext4 /dev/mapper/vgubuntu-root rw,errors=remount-ro
3996 3984 253:1 /var/lib/docker/containers/6548c6863fb748e72d1e2a4f824fde92f720952d062dede1318c2d6219a672d6/resolv.conf /etc/resolv.conf rw,relatime shared:1876 - ext4 /dev/mapper/vgubuntu-root rw,errors=remount-ro
3997 3984 253:1 /var/lib/docker/containers/6548c6863fb748e72d1e2a4f824fde92f720952d062dede1318c2d6219a672d6/hostname /etc/hostname rw,relatime shared:1877 - ext4 /dev/mapper/vgubuntu-root rw,errors=remount-ro
3998 3984 253:1 /var/lib/docker/containers/6548c6863fb748e72d1e2a4f824fde92f720952d062dede1318c2d6219a672d6/hosts /etc/hosts rw,relatime shared:1878 - ext4 /dev/mapper/vgubuntu-root rw,errors=remount-ro
";

    /// The rigdoctor development VM (2026-12-04): /.dockerenv exists, but
    /// / is ext4 on a virtual disk and /dev the kernel's devtmpfs; /dev/shm
    /// is mounted twice, the second over the first.
    const VM: &str = "22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12334076k,nr_inodes=3083519,mode=755
25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24683664k
26 24 0:24 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534
29 26 0:26 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000
30 25 0:27 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24683664k
";

    #[test]
    fn keeps_only_the_judged_mount_points() {
        let kept = judged_lines(DOCKER);
        let points: Vec<String> = kept.lines().filter_map(mount_point).collect();
        assert_eq!(
            points,
            [
                "/",
                "/dev",
                "/dev/shm",
                "/etc/resolv.conf",
                "/etc/hostname",
                "/etc/hosts"
            ]
        );
        assert!(!kept.contains("/usr/lib/modules") && !kept.contains("_data /var"));
        // Kept lines are the input's, byte for byte.
        assert!(kept.lines().all(|l| DOCKER.lines().any(|d| d == l)));
        let kept = judged_lines(VM);
        assert_eq!(kept.lines().count(), 4);
        assert!(!kept.contains("/dev/pts") && !kept.contains("/proc"));
        assert_eq!(judged_lines(""), "");
        assert_eq!(judged_lines("garbage\n\n1 2 3\n"), "");
    }

    #[test]
    fn mounts_of_a_docker_container() {
        let m = parse_mountinfo(DOCKER);
        assert_eq!(m.len(), 15);
        assert_eq!(
            mounted_at(&m, "/").map(|m| m.fs_type.as_str()),
            Some("overlay")
        );
        let dev = mounted_at(&m, "/dev").unwrap();
        assert_eq!(
            (dev.fs_type.as_str(), dev.source.as_str()),
            ("tmpfs", "tmpfs")
        );
        let shm = mounted_at(&m, "/dev/shm").unwrap();
        assert_eq!(shm.source, "shm");
        assert_eq!(tmpfs_size(&shm.super_options), Some(64 << 20));
    }

    #[test]
    fn mounts_of_the_vm() {
        let m = parse_mountinfo(VM);
        assert_eq!(
            mounted_at(&m, "/").map(|m| m.fs_type.as_str()),
            Some("ext4")
        );
        assert_eq!(
            mounted_at(&m, "/dev").map(|m| m.fs_type.as_str()),
            Some("devtmpfs")
        );
        // The mount on top (listed last) is the one in effect.
        let shm = mounted_at(&m, "/dev/shm").unwrap();
        assert_eq!(tmpfs_size(&shm.super_options), Some(24683664 << 10));
    }

    #[test]
    fn mountinfo_lines_that_do_not_parse() {
        // proc(5)'s example, with two optional fields.
        let m = parse_mountinfo(
            "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 shared:2 - ext3 /dev/root rw,errors=continue\n",
        );
        assert_eq!(m[0].fs_type, "ext3");
        assert_eq!(m[0].point, "/mnt2");
        assert!(
            parse_mountinfo("36 35 98:0 /mnt1 /mnt2 rw,noatime ext3 /dev/root rw\n").is_empty()
        );
        assert!(parse_mountinfo("x y z\n\u{0}\n- - - - - - - -\n").is_empty());
        assert!(parse_mountinfo("36 35 98:0 / / rw - overlay\n").is_empty());
        // An escaped space in a mount point.
        let m = parse_mountinfo("594 575 8:1 /x /root/My\\040Documents rw - ext4 /dev/sda1 rw\n");
        assert_eq!(m[0].point, "/root/My Documents");
        assert_eq!(unescape("a\\"), "a\\");
        assert_eq!(unescape("\\999x"), "\\999x");
    }

    #[test]
    fn tmpfs_sizes() {
        assert_eq!(tmpfs_size("rw,size=65536k,inode64"), Some(65536 << 10));
        assert_eq!(tmpfs_size("rw,nosuid,nodev,size=16777216k"), Some(16 << 30));
        assert_eq!(tmpfs_size("rw,size=16g"), Some(16 << 30));
        assert_eq!(tmpfs_size("rw,size=1048576"), Some(1 << 20));
        assert_eq!(tmpfs_size("rw,size=50%"), None);
        assert_eq!(tmpfs_size("rw,seclabel"), None);
        assert_eq!(tmpfs_size("size=k"), None);
        assert_eq!(tmpfs_size("size=99999999999999999999k"), None);
        assert_eq!(tmpfs_size("size=18446744073709551615k"), None);
    }

    #[test]
    fn engines_from_real_cgroup_files() {
        let e = |t: &str| cgroup_engine(&cgroup_paths(t));
        // neuvector/neuvector share/system/cgroup_test.go (commit 0553cd33):
        // TestDockerIDUbuntu, TestDockerIDCentOS, TestDockerIDKubepods2,
        // TestHostProcess, TestNsEnterProcess.
        assert_eq!(
            e(
                "12:name=systemd:/docker/31cb02944da7a12196a193cf0e0f6c226d7c453a1db62e65ba98287593a2ee30\n5:devices:/docker/31cb02944da7a12196a193cf0e0f6c226d7c453a1db62e65ba98287593a2ee30\n"
            ),
            Some("docker")
        );
        assert_eq!(
            e(
                "10:devices:/system.slice/docker-9ec39b91f3d70e1beff50a308f77067065ea6be0d91a3378375056cd4422cf3d.scope\n"
            ),
            Some("docker")
        );
        assert_eq!(
            e(
                "9:devices:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod045b1e35_7f13_11e7_ac42_0050568ffca0.slice/docker-b5b6f2da8008be266864f896f93789762b2ce50792114a5c5f2cc3315af0bc70.scope\n"
            ),
            Some("kubernetes")
        );
        assert_eq!(
            e(
                "11:devices:/kubepods/besteffort/pod74ba62da-1a3d-11e7-bb11-080027cb0e22/cb1eadb7abe3a6545e9856411207073277838e1bdc003337c2f8685faeedc32c\n"
            ),
            Some("kubernetes")
        );
        assert_eq!(
            e("14:name=dsystemd:/\n13:name=systemd:/\n6:devices:/\n1:cpuset:/"),
            None
        );
        assert_eq!(
            e("13:name=systemd:/user/1000.user/c2.session\n6:devices:/user/1000.user/c2.session\n"),
            None
        );
        // elastic/apm-agent-java container_metadata_discovery.json: a GNOME
        // terminal on Ubuntu (cgroup_v1_ubuntu) and cgroup v2 inside Docker
        // with its own cgroup namespace (cgroup_v2), which names nothing.
        assert_eq!(
            e(
                "1:name=systemd:/user.slice/user-1000.slice/user@1000.service/apps.slice/apps-org.gnome.Terminal.slice/vte-spawn-75bc72bd-6642-4cf5-b62c-0674e11bfc84.scope\n"
            ),
            None
        );
        assert_eq!(e("0::/\n"), None);
        // The development VM's own file.
        assert_eq!(
            e("9:name=systemd:/\n4:memory:/process_api/868d94254ab4f0b00956ff2e651ce7d1\n0::/\n"),
            None
        );
        // The daemon's own unit on a host is not a container.
        assert_eq!(e("0::/system.slice/docker.service\n"), None);
        assert_eq!(e("0::/system.slice/docker\n"), None);
        assert_eq!(e(""), None);
        assert_eq!(e("no colons here\n::\n"), None);
    }
}
