//! A GPU's name from the PCI ID Repository (checks/pci.ids, embedded as
//! text), for the cards checks/devices.toml does not list: the hand list
//! stays the source of what pci.ids lacks (VRAM, NVLink, gfx targets),
//! pci.ids only names the card.
//!
//! Embedded as one string, not as tables of structs: a table of `&str`
//! needs a relocation per pointer, which the loader applies to every page
//! at start-up (1.3 MB more RSS for every run, `watch` beside a model for
//! hours included, measured with the `pci-ids` crate). A string's pages
//! are read only when a name is looked up: in `check`, for an
//! uncatalogued card.

/// pci.ids format: `vvvv  vendor name` at the start of a line, its devices
/// under it as `\tdddd  device name`, their boards as `\t\tsv sd  name`.
static PCI_IDS: &str = include_str!("../../checks/pci.ids");

/// `vendor_id`/`device_id` as sysfs prints them (`0x10de`, `0x1eb8`); the
/// subsystem ids pick the vendor's own board name when pci.ids lists it
/// (AMD's `1002:0e3a Radeon RX 6900 XT` under the Navi 21 entry).
pub fn lookup(
    vendor_id: &str,
    device_id: &str,
    subsystem_vendor_id: Option<&str>,
    subsystem_device_id: Option<&str>,
) -> Option<String> {
    let (vid, did) = (hex16(vendor_id)?, hex16(device_id)?);
    let entry = find(PCI_IDS, vid, did)?;
    let vendor = short_vendor(vid, entry.vendor);
    // Only a board of the chip vendor itself: a partner's subsystem name
    // ("Red Devil AMD Radeon RX 6900 XT") is a brand, not the card.
    let own_board = match (
        subsystem_vendor_id.and_then(hex16),
        subsystem_device_id.and_then(hex16),
    ) {
        (Some(sv), Some(sd)) if sv == vid => entry
            .boards
            .lines()
            .find_map(|l| board(l).filter(|(v, d, _)| (*v, *d) == (sv, sd)))
            .map(|(_, _, n)| n),
        _ => None,
    };
    let name = own_board.unwrap_or_else(|| marketing(entry.device));
    let name = clean(name);
    if name.is_empty() {
        return None;
    }
    // "AMD Radeon ..." already names its vendor.
    Some(if name.starts_with(&vendor) {
        name
    } else {
        format!("{vendor} {name}")
    })
}

/// One device of pci.ids: its vendor's and its own name, and the lines of
/// its boards (`\t\tsv sd  name`).
struct Entry<'a> {
    vendor: &'a str,
    device: &'a str,
    boards: &'a str,
}

/// `vvvv  name` / `\tdddd  name`: the id and the name after two spaces.
fn id_line(l: &str) -> Option<(u16, &str)> {
    let (id, name) = l.split_once("  ")?;
    (id.len() == 4).then_some(())?;
    Some((u16::from_str_radix(id, 16).ok()?, name.trim()))
}

fn board(l: &str) -> Option<(u16, u16, &str)> {
    let l = l.strip_prefix("\t\t")?;
    let (ids, name) = l.split_once("  ")?;
    let (v, d) = ids.split_once(' ')?;
    Some((
        u16::from_str_radix(v, 16).ok()?,
        u16::from_str_radix(d, 16).ok()?,
        name.trim(),
    ))
}

/// The device `vid:did` in pci.ids text: the vendor's line at the start of
/// a line, then its block of tab-indented lines until the next vendor.
fn find(db: &str, vid: u16, did: u16) -> Option<Entry<'_>> {
    let at = db.find(&format!("\n{vid:04x}  "))? + 1;
    let block = &db[at..];
    let mut vendor: Option<&str> = None;
    let mut device: Option<(&str, usize)> = None;
    let (mut pos, mut end) = (0, block.len());
    for l in block.split_inclusive('\n') {
        let start = pos;
        pos += l.len();
        let t = l.trim_end_matches(['\n', '\r']);
        let Some(v) = vendor else {
            vendor = Some(id_line(t)?.1);
            continue;
        };
        if t.is_empty() || t.starts_with('#') || t.starts_with("\t\t") {
            continue;
        }
        if !t.starts_with('\t') {
            end = start; // the next vendor
            break;
        }
        // A device line: the one after ours ends our boards.
        if let Some((name, boards)) = device {
            return Some(Entry {
                vendor: v,
                device: name,
                boards: &block[boards..start],
            });
        }
        if let Some((id, name)) = id_line(&t[1..])
            && id == did
        {
            device = Some((name, pos));
        }
    }
    let (name, boards) = device?;
    Some(Entry {
        vendor: vendor?,
        device: name,
        boards: &block[boards..end.max(boards)],
    })
}

/// `TU104GL [Tesla T4]` → `Tesla T4`: the bracket holds the product name;
/// without one the chip's name is all there is.
fn marketing(name: &str) -> &str {
    match (name.find('['), name.rfind(']')) {
        (Some(a), Some(b)) if b > a + 1 => &name[a + 1..b],
        _ => name,
    }
}

/// Names end up on a terminal: keep printable characters, one space.
fn clean(name: &str) -> String {
    name.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn short_vendor(vid: u16, full: &str) -> String {
    match vid {
        0x10de => "NVIDIA".into(),
        0x1002 => "AMD".into(),
        0x8086 => "Intel".into(),
        // "Moore Threads Technology Co.,Ltd" → "Moore Threads": the name
        // before the legal form.
        _ => {
            let cut = full
                .find([',', '('])
                .map_or(full, |i| &full[..i])
                .trim()
                .trim_end_matches(" Co.")
                .trim_end_matches(" Technology")
                .trim_end_matches(" Corporation")
                .trim_end_matches(" Inc.");
            clean(cut)
        }
    }
}

fn hex16(s: &str) -> Option<u16> {
    let s = s.trim();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if s.is_empty() || s.len() > 4 {
        return None;
    }
    u16::from_str_radix(s, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_cards_the_hand_list_lacks() {
        // Issue 14: a Tesla T4 showed as "NVIDIA GPU 0x1eb8".
        assert_eq!(
            lookup("0x10de", "0x1eb8", None, None).as_deref(),
            Some("NVIDIA Tesla T4")
        );
        assert_eq!(
            lookup("0x10de", "0x20b5", Some("0x10de"), Some("0x1533")).as_deref(),
            Some("NVIDIA A100 PCIe 80GB")
        );
        // AMD's own board under a chip that names three cards.
        assert_eq!(
            lookup("0x1002", "0x73bf", Some("0x1002"), Some("0x0e3a")).as_deref(),
            Some("AMD Radeon RX 6900 XT")
        );
        // A partner board: the chip's product names, not the brand.
        assert_eq!(
            lookup("0x1002", "0x73bf", Some("0x148c"), Some("0x2408")).as_deref(),
            Some("AMD Radeon RX 6800/6800 XT / 6900 XT")
        );
        assert_eq!(
            lookup("0x8086", "0x56a0", None, None).as_deref(),
            Some("Intel Arc A770")
        );
    }

    #[test]
    fn the_last_device_of_a_vendor_and_its_boards() {
        let db = "# c\n1002  AMD\n\t73bf  Navi 21 [Radeon RX 6800]\n\t\t1002 0e3a  Radeon RX 6900 XT\n\t\t148c 2408  Red Devil\n10de  NVIDIA\n\t1eb8  TU104GL [Tesla T4]\n";
        let e = find(db, 0x1002, 0x73bf).unwrap();
        assert_eq!((e.vendor, e.device), ("AMD", "Navi 21 [Radeon RX 6800]"));
        assert_eq!(e.boards.lines().count(), 2);
        let e = find(db, 0x10de, 0x1eb8).unwrap();
        assert_eq!(
            (e.vendor, e.device, e.boards),
            ("NVIDIA", "TU104GL [Tesla T4]", "")
        );
        assert!(
            find(db, 0x10de, 0x73bf).is_none(),
            "another vendor's device"
        );
        assert!(find(db, 0x8086, 0x56a0).is_none());
    }

    #[test]
    fn unknown_or_malformed_ids_have_no_name() {
        assert_eq!(lookup("0x10de", "0xfffe", None, None), None);
        assert_eq!(lookup("0x10de", "", None, None), None);
        assert_eq!(lookup("0x10de", "0x1eb8x", None, None), None);
        assert_eq!(lookup("0x10de", "0x11eb8", None, None), None);
        assert_eq!(lookup("zz", "0x1eb8", None, None), None);
    }
}
