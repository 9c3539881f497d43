//! `nvidia-smi topo -m` (how each GPU pair is connected) and
//! `nvidia-smi topo -p2p r` (whether the driver allows peer-to-peer reads).
//!
//! Both print a matrix with a `GPU0 GPU1 ...` header and one row per GPU.
//! What people paste around it varies a lot (corpus nvidia-amd/INDEX.md,
//! "Format notes" 1 and 2): tabs or 8-wide space columns, ` X ` or `X` on the
//! diagonal, a leading space on every row, the header on the same line as the
//! command, NIC rows and columns named `NIC0` or `mlx5_0`, affinity columns
//! that are present, absent or empty, fused tokens (`SYSSYS`), rows cut off
//! mid-line, legends in three wordings or none. So the parser keys on the
//! `GPUn` row labels, reads the GPU cells by position after the label, stops
//! a row at the first token that is not a link code, and never needs the
//! legend.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;

use crate::text::{regex, strip_ansi};

static GPU_LABEL: LazyLock<Regex> = LazyLock::new(|| regex(r"^GPU(\d{1,3})$"));
static GPU_IN_HEADER: LazyLock<Regex> = LazyLock::new(|| regex(r"GPU(\d{1,3})"));
static TOPO_CODE: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^(X|SYS|NODE|PHB|PXB|PIX|SOC|NV\d{1,2})$"));
/// A NIC cell, possibly several fused by a paste that lost whitespace (`SYSSYS`).
static TOPO_CODES_FUSED: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^(X|SYS|NODE|PHB|PXB|PIX|SOC|NV\d{1,2})+$"));
static P2P_CODE: LazyLock<Regex> = LazyLock::new(|| regex(r"^(X|OK|NS|CNS|GNS|TNS|DR|U)$"));
static NV_COUNT: LazyLock<Regex> = LazyLock::new(|| regex(r"^NV(\d{1,2})$"));

/// One matrix as printed: GPU cells per GPU row, and what followed them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Matrix {
    /// GPU columns named by the header (0 when no header was found).
    pub header_gpus: usize,
    /// Row label index -> the GPU cells of that row (possibly cut short).
    pub rows: BTreeMap<u32, Vec<String>>,
    /// Row label index -> the tokens after the GPU cells (NIC cells, affinity).
    pub rest: BTreeMap<u32, Vec<String>>,
    /// Trailing header columns present: `CPU Affinity`, `NUMA Affinity`, `GPU NUMA ID`.
    pub trailing: Vec<String>,
}

impl Matrix {
    /// The number of GPUs the matrix speaks of.
    pub fn gpu_count(&self) -> usize {
        let from_rows = self.rows.keys().next_back().map(|k| *k as usize + 1);
        self.header_gpus.max(from_rows.unwrap_or(0))
    }

    /// The cell for the pair (a, b): row a column b, else row b column a.
    pub fn cell(&self, a: u32, b: u32) -> Option<&str> {
        let get = |r: u32, c: u32| {
            self.rows
                .get(&r)
                .and_then(|cells| cells.get(c as usize))
                .map(String::as_str)
        };
        get(a, b).or_else(|| get(b, a)).filter(|c| *c != "X")
    }
}

/// Remove what a paste adds to a line: ANSI sequences (also the ones whose ESC
/// byte was lost, `[4m`), markdown quote markers and stray backticks.
fn clean(raw: &str) -> String {
    let s = strip_ansi(raw);
    let s = s.replace("[4m", " ").replace("[0m", " ");
    let mut t = s.trim();
    while let Some(r) = t.strip_prefix('>') {
        t = r.trim_start();
    }
    t.trim_matches('`').trim().to_string()
}

fn parse_matrix(text: &str, is_code: &Regex) -> Matrix {
    let mut m = Matrix::default();
    for raw in text.lines() {
        let line = clean(raw);
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let Some(first) = tokens.first() else {
            continue;
        };
        if let Some(c) = GPU_LABEL.captures(first) {
            let second_is_code = tokens.get(1).is_some_and(|t| is_code.is_match(t));
            if second_is_code {
                let Ok(idx) = c[1].parse::<u32>() else {
                    continue;
                };
                let n = if m.header_gpus > 0 {
                    m.header_gpus
                } else {
                    usize::MAX
                };
                let cells: Vec<String> = tokens[1..]
                    .iter()
                    .take(n)
                    .take_while(|t| is_code.is_match(t))
                    .map(|t| t.to_string())
                    .collect();
                let used = cells.len();
                m.rest.insert(
                    idx,
                    tokens[1 + used..].iter().map(|t| t.to_string()).collect(),
                );
                // The first time a row appears wins (a paste may repeat the matrix).
                m.rows.entry(idx).or_insert(cells);
                continue;
            }
        }
        // A header: `GPU0 GPU1 ...` (possibly after the command on the same line).
        if m.header_gpus == 0 {
            if let Some(pos) = line.find("GPU0") {
                let head = &line[pos..];
                let after_first: Vec<&str> = head.split_whitespace().skip(1).take(1).collect();
                let looks_like_row = after_first.first().is_some_and(|t| is_code.is_match(t));
                if !looks_like_row {
                    let gpu_cols = head
                        .split_whitespace()
                        .take_while(|t| GPU_LABEL.is_match(t))
                        .count();
                    // Fused headers (`GPU0GPU1`) still name their GPUs.
                    let fused = GPU_IN_HEADER
                        .find_iter(head.split("CPU").next().unwrap_or(head))
                        .count();
                    m.header_gpus = gpu_cols.max(if gpu_cols == 0 { fused } else { 0 });
                    for label in ["CPU Affinity", "NUMA Affinity", "GPU NUMA ID"] {
                        if head.contains(label) {
                            m.trailing.push(label.to_string());
                        }
                    }
                }
            }
        }
    }
    m
}

/// One GPU row of `topo -m`: its cells and affinity.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopoRow {
    pub cpu_affinity: Option<String>,
    pub numa_affinity: Option<String>,
}

/// What `nvidia-smi topo -m` says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Topology {
    pub matrix: Matrix,
    pub affinity: BTreeMap<u32, TopoRow>,
}

impl Topology {
    /// `(a, b, kind)` for each GPU pair the matrix names, `a < b`.
    pub fn pairs(&self) -> Vec<(u32, u32, String)> {
        let n = self.matrix.gpu_count() as u32;
        let mut out = Vec::new();
        for a in 0..n {
            for b in a + 1..n {
                if let Some(k) = self.matrix.cell(a, b) {
                    out.push((a, b, k.to_string()));
                }
            }
        }
        out
    }
}

/// Number of bonded NVLinks in a `topo -m` code (`NV4` -> 4, PCIe paths -> 0).
pub fn nvlinks_of(kind: &str) -> u32 {
    NV_COUNT
        .captures(kind)
        .and_then(|c| c[1].parse().ok())
        .unwrap_or(0)
}

fn affinity_value(s: &str) -> Option<String> {
    (s != "N/A" && !s.is_empty()).then(|| s.to_string())
}

/// Parse `nvidia-smi topo -m` (also `-mp` and the `GPU Topology:` section of
/// vLLM's collect_env).
pub fn parse_topo(text: &str) -> Topology {
    let matrix = parse_matrix(text, &TOPO_CODE);
    let mut affinity = BTreeMap::new();
    for (idx, rest) in &matrix.rest {
        let values: Vec<&str> = rest
            .iter()
            .map(String::as_str)
            .skip_while(|t| TOPO_CODES_FUSED.is_match(t))
            .collect();
        let cols = &matrix.trailing;
        let mut row = TopoRow::default();
        if !cols.is_empty() && !values.is_empty() {
            // Empty cells (affinity unknown in a VM) leave fewer values than
            // columns; the ones printed are the rightmost.
            let skip = cols.len().saturating_sub(values.len());
            for (col, v) in cols.iter().skip(skip).zip(values.iter()) {
                match col.as_str() {
                    "CPU Affinity" => row.cpu_affinity = affinity_value(v),
                    "NUMA Affinity" => row.numa_affinity = affinity_value(v),
                    _ => {}
                }
            }
        } else if cols.is_empty() {
            // No header: the first value after the cells is the CPU affinity.
            row.cpu_affinity = values.first().and_then(|v| affinity_value(v));
        }
        affinity.insert(*idx, row);
    }
    Topology { matrix, affinity }
}

/// Parse `nvidia-smi topo -p2p r` (any of the modes r, w, rw, n, a, p).
pub fn parse_p2p(text: &str) -> Matrix {
    parse_matrix(text, &P2P_CODE)
}

/// `(a, b, code)` for each GPU pair of a p2p matrix, `a < b`.
pub fn p2p_pairs(m: &Matrix) -> Vec<(u32, u32, String)> {
    let n = m.gpu_count() as u32;
    let mut out = Vec::new();
    for a in 0..n {
        for b in a + 1..n {
            if let Some(k) = m.cell(a, b) {
                out.push((a, b, k.to_string()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tab_separated_with_affinity_and_gpu_numa_id() {
        let t = parse_topo(
            "\tGPU0\tGPU1\tCPU Affinity\tNUMA Affinity\tGPU NUMA ID\nGPU0\t X \tSYS\t0-7,16-23\t\tN/A\t\tN/A\nGPU1\tSYS\t X \t8-15,24-31\t1\t\tN/A\n",
        );
        assert_eq!(t.pairs(), vec![(0, 1, "SYS".to_string())]);
        assert_eq!(t.affinity[&0].cpu_affinity.as_deref(), Some("0-7,16-23"));
        assert_eq!(t.affinity[&0].numa_affinity, None);
        assert_eq!(t.affinity[&1].numa_affinity.as_deref(), Some("1"));
    }

    #[test]
    fn header_on_the_command_line_and_nv_counts() {
        let t = parse_topo(
            "nvidia-smi topo -m                   GPU0    GPU1    CPU Affinity    NUMA Affinity   GPU NUMA ID\nGPU0     X      NV4     0-23    0               N/A\nGPU1    NV4      X      0-23    0               N/A\n\n NV#  = Connection traversing a bonded set of # NVLinks\n",
        );
        assert_eq!(t.matrix.header_gpus, 2);
        assert_eq!(t.pairs(), vec![(0, 1, "NV4".to_string())]);
        assert_eq!(nvlinks_of("NV4"), 4);
        assert_eq!(nvlinks_of("PHB"), 0);
        assert_eq!(t.affinity[&1].cpu_affinity.as_deref(), Some("0-23"));
    }

    #[test]
    fn empty_affinity_cells_and_nic_columns() {
        let t = parse_topo(
            "        GPU0    GPU1    NIC0    NIC1    CPU Affinity    NUMA Affinity   GPU NUMA ID\nGPU0     X      NV12    SYS     PXB                             N/A\nGPU1    NV12     X      SYS     PXB                             N/A\nNIC0    SYS     SYS      X      PIX\n",
        );
        assert_eq!(t.pairs(), vec![(0, 1, "NV12".to_string())]);
        assert_eq!(t.affinity[&0], TopoRow::default());
    }

    #[test]
    fn truncated_rows_keep_what_they_have() {
        let t = parse_topo(
            "GPU0    GPU1    GPU2\nGPU0     X      NV18    NV18\nGPU1    NV18     X      NV1",
        );
        assert_eq!(t.matrix.gpu_count(), 3);
        assert_eq!(t.pairs().len(), 3);
        let t = parse_topo("GPU0    GPU1\nGPU0     X      NV18\nGPU1    NV");
        assert_eq!(t.pairs(), vec![(0, 1, "NV18".to_string())]);
    }

    #[test]
    fn p2p_matrix_with_leading_spaces_and_trailing_tabs() {
        let m = parse_p2p(
            " \tGPU0\tGPU1\t\n GPU0\tX\tOK\t\n GPU1\tOK\tX\t\n\nLegend:\n\n  X    = Self\n  OK   = Status Ok\n",
        );
        assert_eq!(p2p_pairs(&m), vec![(0, 1, "OK".to_string())]);
        let m = parse_p2p(
            "          GPU0 GPU1\n     GPU0        X       NS\n     GPU1        NS      X\n",
        );
        assert_eq!(p2p_pairs(&m), vec![(0, 1, "NS".to_string())]);
    }

    #[test]
    fn garbage_does_not_panic() {
        for s in [
            "",
            "GPU0",
            "GPU0 X",
            "GPU999999 X NV4",
            "GPU0\u{0}X",
            "GPU1 X\nGPU0 NV",
        ] {
            let _ = parse_topo(s).pairs();
            let _ = p2p_pairs(&parse_p2p(s));
        }
    }
}
