//! Cheap reads of procfs/sysfs for the sampler: logical paths mapped through
//! `--sysfs` / `--procfs` (`Live::map`), bounded, into one reused buffer.
//! The watcher reads a few dozen small files per second, so it skips the
//! Source trait's per-read allocation and recording; `check` keeps using Source.

use std::borrow::Cow;
use std::io::Read as _;

use crate::source::live::Live;

/// procfs/sysfs files the watcher reads are small; fdinfo of a busy client is
/// about 2 KiB. Anything past this is not ours to parse.
const MAX_READ: u64 = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadErr {
    Missing,
    Denied,
    Failed,
}

pub struct Reader {
    live: Live,
    buf: Vec<u8>,
}

impl Reader {
    pub fn new(live: Live) -> Reader {
        Reader {
            live,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Read a whole (small) file as text.
    pub fn read(&mut self, logical: &str) -> Result<Cow<'_, str>, ReadErr> {
        self.buf.clear();
        let f = std::fs::File::open(self.live.map(logical)).map_err(kind)?;
        f.take(MAX_READ).read_to_end(&mut self.buf).map_err(kind)?;
        Ok(String::from_utf8_lossy(&self.buf))
    }

    /// Each line of a file that may be large (`/proc/PID/maps` of a PyTorch
    /// process runs to megabytes): streamed, at most `max` bytes, each line
    /// at most 4 KiB (longer ones are cut). Stops early when `f` says so.
    pub fn for_each_line(
        &mut self,
        logical: &str,
        max: u64,
        mut f: impl FnMut(&str) -> bool,
    ) -> Result<(), ReadErr> {
        use std::io::BufRead as _;
        let file = std::fs::File::open(self.live.map(logical)).map_err(kind)?;
        let mut rd = std::io::BufReader::with_capacity(16 * 1024, file.take(max));
        loop {
            self.buf.clear();
            let n = (&mut rd)
                .take(4096)
                .read_until(b'\n', &mut self.buf)
                .map_err(kind)?;
            if n == 0 {
                return Ok(());
            }
            if self.buf.last() != Some(&b'\n') && n == 4096 {
                // The rest of an over-long line is skipped, not read as lines.
                let mut sink = Vec::new();
                rd.read_until(b'\n', &mut sink).map_err(kind)?;
            }
            if !f(String::from_utf8_lossy(&self.buf).trim_end()) {
                return Ok(());
            }
        }
    }

    /// Read a file holding one number (a sysfs attribute).
    pub fn read_u64(&mut self, logical: &str) -> Option<u64> {
        self.read(logical).ok()?.trim().parse().ok()
    }

    /// Directory entries, unsorted.
    pub fn list(&self, logical: &str) -> Result<Vec<String>, ReadErr> {
        let rd = std::fs::read_dir(self.live.map(logical)).map_err(kind)?;
        Ok(rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect())
    }

    /// The target of a symbolic link as stored.
    pub fn link(&self, logical: &str) -> Result<String, ReadErr> {
        std::fs::read_link(self.live.map(logical))
            .map(|p| p.to_string_lossy().into_owned())
            .map_err(kind)
    }

    pub fn exists(&self, logical: &str) -> bool {
        self.live.map(logical).exists()
    }
}

fn kind(e: std::io::Error) -> ReadErr {
    match e.kind() {
        std::io::ErrorKind::NotFound => ReadErr::Missing,
        std::io::ErrorKind::PermissionDenied => ReadErr::Denied,
        _ => {
            // ESRCH from /proc/PID/* of a process that just ended reads as missing.
            if e.raw_os_error() == Some(nix::libc::ESRCH) {
                ReadErr::Missing
            } else {
                ReadErr::Failed
            }
        }
    }
}

pub use crate::text::basename;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_through_the_mapped_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("class/drm/card0")).unwrap();
        std::fs::write(dir.path().join("class/drm/card0/x"), "42\n").unwrap();
        let mut r = Reader::new(Live::new(Some(dir.path().into()), None));
        assert_eq!(r.read_u64("/sys/class/drm/card0/x"), Some(42));
        assert_eq!(
            r.read("/sys/class/drm/card0/nope").err(),
            Some(ReadErr::Missing)
        );
        assert_eq!(r.list("/sys/class/drm").unwrap(), vec!["card0"]);
        assert_eq!(
            basename("../../devices/pci0000:00/0000:03:00.0"),
            "0000:03:00.0"
        );
    }
}
