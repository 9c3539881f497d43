//! `--format npd`: node-problem-detector's custom plugin protocol. NPD runs
//! the plugin, maps its exit code to a condition (0 OK, 1 NonOK, 2 Unknown)
//! and keeps the first line of stdout as the condition's message, cut at
//! its default `max_output_length` of 80 bytes. So: one line, at most 80
//! bytes, the most severe ids first, and what did not fit counted (`+3`).
//! The decision is [`report::health`](crate::diagnose::report::health);
//! this module only words it.

use crate::diagnose::report::{Health, HealthReport};

/// NPD's default `max_output_length`.
pub const MAX_BYTES: usize = 80;

/// Join `items` with `sep` into at most `max` bytes; what does not fit is
/// counted at the end (` +N`). An item is never cut in the middle unless it
/// alone is longer than the line.
fn fit(prefix: &str, items: &[String], sep: &str, max: usize) -> String {
    let mut out = prefix.to_string();
    for (i, item) in items.iter().enumerate() {
        let rest = items.len() - i - 1;
        let tail = if rest > 0 {
            format!(" +{rest}").len()
        } else {
            0
        };
        let sep_here = if i == 0 { "" } else { sep };
        if out.len() + sep_here.len() + item.len() + tail <= max {
            out.push_str(sep_here);
            out.push_str(item);
            continue;
        }
        let more = format!(" +{}", items.len() - i);
        if i == 0 {
            // Not even the first fits: cut it, on a character boundary.
            let room = max.saturating_sub(out.len() + more.len());
            let mut cut = room.min(item.len());
            while !item.is_char_boundary(cut) {
                cut -= 1;
            }
            out.push_str(&item[..cut]);
        }
        out.push_str(&more);
        break;
    }
    out
}

/// The line NPD shows as the condition's message.
pub fn line(h: &HealthReport) -> String {
    let text = match h.health {
        Health::Ok => "ok: no node problem found".to_string(),
        Health::Problem => fit("", &h.ids, " ", MAX_BYTES),
        Health::Unknown => {
            let mut items: Vec<String> = h.ids.clone();
            items.extend(h.blind.iter().cloned());
            fit("could not look: ", &items, " ", MAX_BYTES)
        }
    };
    // One line, whatever the items held.
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    out.truncate(MAX_BYTES);
    out
}

/// The exit code NPD reads.
pub fn exit_code(h: &HealthReport) -> u8 {
    match h.health {
        Health::Ok => 0,
        Health::Problem => 1,
        Health::Unknown => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("SYCL-SELECTOR-NO-GPU-{i:02}"))
            .collect()
    }

    #[test]
    fn lines_fit_80_bytes_and_count_what_did_not_fit() {
        for n in 0..40 {
            let h = HealthReport {
                health: Health::Problem,
                ids: ids(n),
                blind: vec![],
            };
            let l = line(&h);
            assert!(l.len() <= MAX_BYTES, "{n}: {l:?} is {} bytes", l.len());
            if n > 3 {
                assert!(l.ends_with(&format!(" +{}", n - 3)), "{n}: {l:?}");
            }
        }
        let h = HealthReport {
            health: Health::Problem,
            ids: vec!["NV-SMI-HANG".into(), "PCI-LINK-DEGRADED".into()],
            blind: vec![],
        };
        assert_eq!(line(&h), "NV-SMI-HANG PCI-LINK-DEGRADED");
        assert_eq!(exit_code(&h), 1);
    }

    #[test]
    fn unknown_names_what_could_not_look() {
        let h = HealthReport {
            health: Health::Unknown,
            ids: vec!["NV-SMI-HANG".into()],
            blind: vec!["nvidia-smi (timeout)".into()],
        };
        assert_eq!(line(&h), "could not look: NV-SMI-HANG nvidia-smi (timeout)");
        assert_eq!(exit_code(&h), 2);
        let long = HealthReport {
            health: Health::Unknown,
            ids: vec![],
            blind: vec!["x".repeat(200)],
        };
        let l = line(&long);
        assert!(l.len() <= MAX_BYTES && l.ends_with(" +1"), "{l}");
    }
}
