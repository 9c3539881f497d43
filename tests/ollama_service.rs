//! The ollama service probe: what record stores (the computed output
//! `ollama-service`) is what the producer makes of the unit files, so a
//! rig's stored output is checked against its own files here; and the rule
//! fires on the shell-only variable, not once the drop-in sets it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use common::*;
use rigdoctor::source::replay::Replay;

#[test]
fn the_stored_output_is_what_the_producer_reads_from_the_units() {
    for rig in ["ollama-svc-shell-override", "ollama-svc-dropin-override"] {
        let src = Replay::open(&rigs_dir().join(rig)).unwrap();
        let made = rigdoctor::probe::ollama_service::produce(&src);
        let stored =
            std::fs::read_to_string(rigs_dir().join(rig).join("cmd/ollama-service.out")).unwrap();
        assert_eq!(String::from_utf8_lossy(&made.stdout), stored, "{rig}");
    }
}

#[test]
fn secrets_in_a_unit_never_reach_the_output() {
    let t = tempfile::tempdir().unwrap();
    let src_rig = rigs_dir().join("ollama-svc-dropin-override");
    let dst = t.path().join("rig");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(&src_rig)
        .arg(&dst)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::write(
        dst.join("root/etc/systemd/system/ollama.service.d/secrets.conf"),
        "[Service]\nEnvironment=\"HF_TOKEN=hf_abcdef\" \"OLLAMA_API_KEY=sk-1\" HOME=/root OLLAMA_NUM_PARALLEL=2\nEnvironmentFile=/etc/ollama/secret.env\n",
    )
    .unwrap();
    let src = Replay::open(&dst).unwrap();
    let out = String::from_utf8_lossy(&rigdoctor::probe::ollama_service::produce(&src).stdout)
        .into_owned();
    assert!(
        !out.contains("hf_abcdef") && !out.contains("sk-1") && !out.contains("HOME"),
        "{out}"
    );
    assert!(out.contains("service-env OLLAMA_NUM_PARALLEL=2"), "{out}");
    assert!(
        out.contains("environment-file /etc/ollama/secret.env"),
        "{out}"
    );
}
