//! A GPU's name from the PCI ID Repository (pci.ids, embedded by the
//! `pci-ids` crate), for the cards checks/devices.toml does not list: the
//! hand list stays the source of what pci.ids lacks (VRAM, NVLink, gfx
//! targets), pci.ids only names the card.

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
    let dev = pci_ids::Device::from_vid_pid(vid, did)?;
    let vendor = short_vendor(vid, dev.vendor().name());
    // Only a board of the chip vendor itself: a partner's subsystem name
    // ("Red Devil AMD Radeon RX 6900 XT") is a brand, not the card.
    let own_board = match (
        subsystem_vendor_id.and_then(hex16),
        subsystem_device_id.and_then(hex16),
    ) {
        (Some(sv), Some(sd)) if sv == vid => dev
            .subsystems()
            .find(|s| s.subvendor() == sv && s.subdevice() == sd)
            .map(|s| s.name()),
        _ => None,
    };
    let name = own_board.unwrap_or_else(|| marketing(dev.name()));
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
    fn unknown_or_malformed_ids_have_no_name() {
        assert_eq!(lookup("0x10de", "0xfffe", None, None), None);
        assert_eq!(lookup("0x10de", "", None, None), None);
        assert_eq!(lookup("0x10de", "0x1eb8x", None, None), None);
        assert_eq!(lookup("0x10de", "0x11eb8", None, None), None);
        assert_eq!(lookup("zz", "0x1eb8", None, None), None);
    }
}
