#!/usr/bin/env python3
"""Generate checks/amd-pci-gfx.toml: AMD PCI device id -> LLVM gfx target.

rigdoctor needs the card's *own* gfx target when rocminfo is missing, fails, or
reports the target HSA_OVERRIDE_GFX_VERSION claims instead of the real one. The
PCI device id never lies, so this table maps every AMD GPU id of a recent
pci.ids to the gfx target of its chip.

Input: a pci.ids file. The system copy (/usr/share/misc/pci.ids on Debian 12)
is from 2023 and lacks RDNA4 and Strix; the pci-ids crate 0.2.6 ships
pci.ids 2025.07.11:

    cargo fetch  # in any crate depending on pci-ids = "=0.2.6"
    python3 checks/gen-amd-pci-gfx.py \
        ~/.cargo/registry/src/index.crates.io-*/pci-ids-0.2.6/pciids/pci.ids \
        > checks/amd-pci-gfx.toml

The chip-name -> gfx mapping below is the knowledge; pci.ids supplies the ids.
Sources for the mapping (cited in the generated header):
  - LLVM AMDGPUUsage, "AMDGPU Processors" table (processor, alternative chip
    name, example products): https://llvm.org/docs/AMDGPUUsage.html#processors
    (product names for gfx1150/1151/1152 added by llvm-project PR #163717)
  - ROCm docs, "Accelerator and GPU hardware specifications" (LLVM target per
    product): https://rocm.docs.amd.com/en/latest/reference/gpu-arch-specs.html
  - Gentoo's AMDGPU_TARGETS flag descriptions (codename per target):
    https://packages.gentoo.org/useflags/amdgpu_targets_gfx1010
"""

import re
import sys

# (pattern on the pci.ids device name, chip, gfx, generation, kind).
# First match wins, so the more specific names come first ("Strix Halo"
# before "Strix"). Names not matched are not GPUs ROCm can run (pre-GCN5
# parts, bridges, audio) or chips whose target no source here confirms.
CHIPS = [
    # GCN 4 (Polaris) and GCN 3 Fiji: gfx803. ROCm dropped it; kept so a
    # Polaris card is recognised and told so rather than "unknown".
    (r"^Fiji\b", "Fiji", "gfx803", "GCN3", "discrete"),
    (r"^Ellesmere\b|^Polaris 20\b", "Polaris 10/20 (Ellesmere)", "gfx803", "GCN4", "discrete"),
    (r"^Baffin\b", "Polaris 11/21 (Baffin)", "gfx803", "GCN4", "discrete"),
    (r"^Lexa\b|^Polaris12\b", "Polaris 12 (Lexa)", "gfx803", "GCN4", "discrete"),
    (r"^Polaris 22\b", "Polaris 22 (Vega M)", "gfx803", "GCN4", "discrete"),
    # GCN 5 (Vega) and its APUs.
    (r"^Vega 10\b", "Vega 10", "gfx900", "GCN5", "discrete"),
    (r"^Raven Ridge\b|^Picasso", "Raven/Picasso", "gfx902", "GCN5", "integrated"),
    (r"^Vega 12\b", "Vega 12", "gfx904", "GCN5", "discrete"),
    (r"^Vega 20\b", "Vega 20", "gfx906", "GCN5", "discrete"),
    (r"^Renoir\b|^Cezanne\b|^Lucienne\b|^Barcelo\b", "Renoir/Cezanne/Lucienne/Barcelo", "gfx90c", "GCN5", "integrated"),
    # CDNA 1-3.
    (r"^Arcturus\b", "Arcturus", "gfx908", "CDNA1", "discrete"),
    (r"^Aldebaran\b", "Aldebaran", "gfx90a", "CDNA2", "discrete"),
    (r"^Aqua Vanjaram\b", "Aqua Vanjaram", "gfx942", "CDNA3", "discrete"),
    # RDNA 1.
    (r"^Navi 10\b", "Navi 10", "gfx1010", "RDNA1", "discrete"),
    (r"^Navi 12\b", "Navi 12", "gfx1011", "RDNA1", "discrete"),
    (r"^Navi 14\b", "Navi 14", "gfx1012", "RDNA1", "discrete"),
    (r"^Cyan Skillfish\b", "Cyan Skillfish", "gfx1013", "RDNA1", "integrated"),
    # RDNA 2 and its APUs.
    (r"^Navi 21\b", "Navi 21", "gfx1030", "RDNA2", "discrete"),
    (r"^Navi 22\b", "Navi 22", "gfx1031", "RDNA2", "discrete"),
    (r"^Navi 23\b", "Navi 23", "gfx1032", "RDNA2", "discrete"),
    (r"^VanGogh\b", "Van Gogh", "gfx1033", "RDNA2", "integrated"),
    (r"^Navi 24\b", "Navi 24", "gfx1034", "RDNA2", "discrete"),
    (r"^Rembrandt\b", "Rembrandt", "gfx1035", "RDNA2", "integrated"),
    (r"^Raphael\b|^Granite Ridge\b", "Raphael/Granite Ridge", "gfx1036", "RDNA2", "integrated"),
    # RDNA 3, 3.5 and their APUs.
    (r"^Navi 31\b", "Navi 31", "gfx1100", "RDNA3", "discrete"),
    (r"^Navi ?32\b", "Navi 32", "gfx1101", "RDNA3", "discrete"),
    (r"^Navi 33\b", "Navi 33", "gfx1102", "RDNA3", "discrete"),
    (r"^Phoenix|^HawkPoint", "Phoenix/Hawk Point", "gfx1103", "RDNA3", "integrated"),
    (r"^Strix Halo\b", "Strix Halo", "gfx1151", "RDNA3.5", "integrated"),
    (r"^Strix\b", "Strix Point", "gfx1150", "RDNA3.5", "integrated"),
    (r"^Krackan \[", "Krackan Point", "gfx1152", "RDNA3.5", "integrated"),
    # RDNA 4.
    (r"^Navi 44\b", "Navi 44", "gfx1200", "RDNA4", "discrete"),
    (r"^Navi 48\b", "Navi 48", "gfx1201", "RDNA4", "discrete"),
]

# Functions of a GPU package that are not the GPU itself.
NOT_A_GPU = re.compile(r"USB|Audio|Port|Bridge|Switch|Crypto|HDMI|I2C", re.I)


def amd_devices(path):
    """Yield (device id, name) of vendor 1002 in a pci.ids file."""
    inside = False
    version = None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = re.match(r"#\s*Version:\s*(\S+)", line)
            if m:
                version = m.group(1)
            if line.startswith("1002 "):
                inside = True
                continue
            if inside and line[:1] not in ("\t", "#", "\n"):
                break
            if inside and line.startswith("\t") and not line.startswith("\t\t"):
                dev, _, name = line.strip().partition(" ")
                yield version, dev.lower(), name.strip()


def toml_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: gen-amd-pci-gfx.py PATH/TO/pci.ids > checks/amd-pci-gfx.toml")
    groups = {}
    version = None
    for version, dev, name in amd_devices(sys.argv[1]):
        if NOT_A_GPU.search(name):
            continue
        for pat, chip, gfx, gen, kind in CHIPS:
            if re.search(pat, name):
                groups.setdefault((gfx, chip, gen, kind), []).append((dev, name))
                break
    if not groups:
        sys.exit("no AMD GPU found: is this a pci.ids file?")
    out = sys.stdout
    out.write(
        "# AMD PCI device id -> the card's own LLVM gfx target. GENERATED by\n"
        "# checks/gen-amd-pci-gfx.py from pci.ids " + str(version) + " (the copy in the pci-ids crate\n"
        "# 0.2.6); edit the script, not this file. Read by src/derive/catalog.rs.\n"
        "#\n"
        "# Why: rocminfo is missing or fails on many broken rigs, and under HSA_OVERRIDE_GFX_VERSION\n"
        "# it reports the overridden target. The PCI id is the one fact that always names the chip.\n"
        "#\n"
        "# Chip -> gfx sources: LLVM AMDGPUUsage \"AMDGPU Processors\" table\n"
        "# (https://llvm.org/docs/AMDGPUUsage.html#processors; RDNA3.5 product names from llvm-project\n"
        "# PR #163717: gfx1150 Radeon 890M, gfx1151 Radeon 8060S, gfx1152 Radeon 860M); ROCm \"Accelerator\n"
        "# and GPU hardware specifications\" (https://rocm.docs.amd.com/en/latest/reference/gpu-arch-specs.html);\n"
        "# Gentoo AMDGPU_TARGETS descriptions (codename per target).\n"
        "# Not here: chips no source above pins (Mendocino, Krackan2, consoles), MI350/MI355X (gfx950,\n"
        "# not in this pci.ids), pre-GCN3 parts ROCm never ran.\n"
    )
    total = 0
    for (gfx, chip, gen, kind), devs in sorted(groups.items(), key=lambda kv: (kv[0][2], kv[0][0])):
        out.write("\n[[chip]]\n")
        out.write(f"chip = {toml_str(chip)}\n")
        out.write(f"gfx = {toml_str(gfx)}\n")
        out.write(f"generation = {toml_str(gen)}\n")
        out.write(f"kind = {toml_str(kind)}\n")
        out.write("ids = [\n")
        for dev, name in sorted(devs):
            out.write(f"  \"0x{dev}\",  # {name}\n")
            total += 1
        out.write("]\n")
    sys.stderr.write(f"{total} ids in {len(groups)} chips\n")


if __name__ == "__main__":
    main()
