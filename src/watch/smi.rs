//! The streaming CSV of `nvidia-smi --query-gpu=... --format=csv,nounits
//! -lms N` and `xpu-smi dump -d ... -m 0,1 -i N`: one long-lived child each
//! (see `stream`), parsed here. Both parsers follow the header line, so the
//! columns may come in any order, with or without units (`35 %`, `678 MiB`,
//! `memory.used [MiB]`), and `N/A` / `[Not Supported]` read as unknown, never 0.
//! Without an index column a row's index is its position since the header.

use super::stream::{LineParser, SmiRow, field_name, fields, normalize_pci, number};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Col {
    Index,
    Pci,
    Util,
    MemMib,
    Power,
    Other,
}

fn nvidia_col(name: &str) -> Option<Col> {
    Some(match name {
        "index" => Col::Index,
        "pci.bus_id" => Col::Pci,
        "utilization.gpu" => Col::Util,
        "memory.used" => Col::MemMib,
        "power.draw" => Col::Power,
        n if n.contains('.') || n == "name" || n == "uuid" || n == "timestamp" => Col::Other,
        n if n == "compute_cap" || n == "driver_version" || n == "pstate" => Col::Other,
        _ => return None,
    })
}

fn xpu_col(name: &str) -> Option<Col> {
    Some(match name {
        "DeviceId" => Col::Index,
        "GPU Utilization" => Col::Util,
        "GPU Power" => Col::Power,
        "GPU Memory Used" => Col::MemMib,
        "Timestamp" => Col::Other,
        n if n.starts_with("GPU ") => Col::Other,
        _ => return None,
    })
}

/// The header-following CSV parser shared by both tools.
pub struct SmiCsv {
    col: fn(&str) -> Option<Col>,
    cols: Vec<Col>,
    pos: u32,
}

impl SmiCsv {
    fn header(&self, f: &[&str]) -> Option<Vec<Col>> {
        // A header names its columns; a data row has at least one number.
        if f.iter().any(|v| number(v).is_some()) {
            return None;
        }
        let cols: Vec<Col> = f
            .iter()
            .map(|v| (self.col)(field_name(v)))
            .collect::<Option<_>>()?;
        cols.iter()
            .any(|c| matches!(c, Col::Util | Col::MemMib | Col::Index))
            .then_some(cols)
    }
}

impl LineParser for SmiCsv {
    fn line(&mut self, line: &str) -> Option<SmiRow> {
        let f = fields(line);
        if let Some(cols) = self.header(&f) {
            self.cols = cols;
            self.pos = 0;
            return None;
        }
        if f.len() != self.cols.len() {
            return None;
        }
        let mut row = SmiRow {
            index: self.pos,
            ..SmiRow::default()
        };
        let mut index = None;
        for (c, v) in self.cols.iter().zip(&f) {
            match c {
                Col::Index => index = v.parse::<u32>().ok(),
                Col::Pci => row.pci = normalize_pci(v),
                Col::Util => row.util = number(v).map(|u| u.clamp(0.0, 100.0)),
                Col::MemMib => {
                    row.mem_bytes = number(v)
                        .filter(|m| *m >= 0.0)
                        .map(|m| (m * 1048576.0) as u64)
                }
                Col::Power => row.power_w = number(v).filter(|p| *p >= 0.0),
                Col::Other => {}
            }
        }
        if self.cols.contains(&Col::Index) {
            row.index = index?;
        }
        self.pos = self.pos.saturating_add(1);
        (row.util.is_some() || row.mem_bytes.is_some() || row.power_w.is_some()).then_some(row)
    }
}

/// The parser for our own nvidia-smi query (which also prints its header).
pub fn nvidia_parser() -> SmiCsv {
    SmiCsv {
        col: nvidia_col,
        cols: vec![Col::Index, Col::Pci, Col::Util, Col::MemMib, Col::Power],
        pos: 0,
    }
}

pub fn xpu_parser() -> SmiCsv {
    SmiCsv {
        col: xpu_col,
        cols: Vec::new(),
        pos: 0,
    }
}

/// `nvidia-smi --query-gpu=index,pci.bus_id,utilization.gpu,memory.used,power.draw
/// --format=csv,nounits -lms N`: one line per GPU every N ms, from one process.
pub fn nvidia_argv(interval_ms: u64) -> Vec<String> {
    vec![
        "nvidia-smi".into(),
        "--query-gpu=index,pci.bus_id,utilization.gpu,memory.used,power.draw".into(),
        "--format=csv,nounits".into(),
        "-lms".into(),
        interval_ms.max(100).to_string(),
    ]
}

/// `xpu-smi dump -d 0,1 -m 0,1 -i N`: GPU utilisation and power, every N
/// seconds (whole seconds; the tool's minimum is 1).
pub fn xpu_argv(devices: &[u32], interval_s: u64) -> Vec<String> {
    vec![
        "xpu-smi".into(),
        "dump".into(),
        "-d".into(),
        devices
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(","),
        "-m".into(),
        "0,1".into(),
        "-i".into(),
        interval_s.max(1).to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(parser: &mut SmiCsv, rel: &str) -> Vec<SmiRow> {
        let text = std::fs::read_to_string(format!(
            "{}/fixtures/outputs/{rel}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        assert!(text.starts_with("# source:"));
        text.lines()
            .skip(3)
            .filter_map(|l| parser.line(l))
            .collect()
    }

    #[test]
    fn nvidia_units_in_header_and_values() {
        let r = rows(
            &mut nvidia_parser(),
            "nvidia-smi-query/modded-4090-48gb-zero-util-csv.txt",
        );
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].index, 0, "no index column: position since the header");
        assert_eq!(r[0].util, Some(0.0), "0 % is a reading, not unknown");
        assert_eq!(r[0].mem_bytes, Some(678 * 1048576));
        assert_eq!(r[0].power_w, None);
    }

    #[test]
    fn nvidia_index_and_memory_without_utilisation() {
        let r = rows(
            &mut nvidia_parser(),
            "nvidia-smi-query/a10g-session-L-and-memory-csv-nearly-full.txt",
        );
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].index, r[0].util), (0, None));
        assert_eq!(r[0].mem_bytes, Some(22403 * 1048576));
    }

    #[test]
    fn nvidia_rows_without_telemetry_give_nothing() {
        // index,name,memory.total,compute_cap,driver_version: nothing we use.
        assert!(
            rows(
                &mut nvidia_parser(),
                "nvidia-smi-query/prism-4xa100-index-name-memtotal-cc-driver.txt"
            )
            .is_empty()
        );
        assert!(
            rows(
                &mut nvidia_parser(),
                "nvidia-smi-query/egpu-thunderbolt-gtx1060-x4-csv.txt"
            )
            .is_empty()
        );
    }

    #[test]
    fn nvidia_our_own_query_shape() {
        let mut p = nvidia_parser();
        // What `--format=csv,nounits` prints for our query (header, then rows).
        assert!(
            p.line("index, pci.bus_id, utilization.gpu [%], memory.used [MiB], power.draw [W]")
                .is_none()
        );
        let r = p.line("1, 00000000:0F:00.0, 97, 20480, 281.50").unwrap();
        assert_eq!(r.index, 1);
        assert_eq!(r.pci.as_deref(), Some("0000:0f:00.0"));
        assert_eq!((r.util, r.power_w), (Some(97.0), Some(281.5)));
        let r = p.line("0, 00000000:01:00.0, [N/A], 0, [N/A]").unwrap();
        assert_eq!((r.util, r.mem_bytes, r.power_w), (None, Some(0), None));
        assert!(
            p.line("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.")
                .is_none()
        );
        assert!(p.line("").is_none());
    }

    #[test]
    fn xpu_smi_dump() {
        let r = rows(&mut xpu_parser(), "xpu-smi/doc-smi-guide-dump-d0-m012.txt");
        assert_eq!(r.len(), 5);
        assert_eq!(
            (r[0].index, r[0].util, r[0].power_w),
            (0, Some(0.0), Some(14.61))
        );
        let r = rows(
            &mut xpu_parser(),
            "xpu-smi/xpum98-max1550-aurora-dump-6dev-util-na.txt",
        );
        assert!(r.len() >= 6);
        assert_eq!(r[5].index, 5);
        assert_eq!(r[0].util, None, "N/A is unknown, not idle");
        assert_eq!(r[0].power_w, Some(281.13));
    }

    #[test]
    fn argv_is_one_long_lived_command() {
        let a = nvidia_argv(1000);
        assert_eq!(a[0], "nvidia-smi");
        assert!(a.contains(&"-lms".to_string()) && a.contains(&"1000".to_string()));
        assert_eq!(xpu_argv(&[0, 1], 1)[3], "0,1");
    }
}
