//! The GGUF header reader on real files written by gguf-py (llama.cpp's own
//! writer): `fixtures/gguf/mkgguf.py` wrote each model, kept its header
//! (`NAME.head`) and gguf-py's reading of the whole file (`NAME.json`).
//! Then hostile mutations of those headers: never a panic, always a clean
//! answer.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on purpose"
)]

use rigdoctor::model::gguf;
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/gguf")
}

fn fixtures() -> Vec<(String, Vec<u8>, serde_json::Value)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "head") {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            let head = std::fs::read(&p).unwrap();
            let seen: serde_json::Value =
                serde_json::from_slice(&std::fs::read(p.with_extension("json")).unwrap()).unwrap();
            out.push((name, head, seen));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 6, "fixtures/gguf has {} headers", out.len());
    out
}

#[test]
fn headers_read_as_gguf_py_reads_them() {
    for (name, head, seen) in fixtures() {
        let len = seen["file_len"].as_u64().unwrap();
        let g = gguf::parse(&head[..], Some(len)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            g.tensors.len() as u64,
            seen["tensors"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(g.kv.len() as u64, seen["kv"].as_u64().unwrap(), "{name}");
        assert_eq!(
            g.data_offset,
            seen["data_offset"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            g.weights_bytes(),
            seen["weights_bytes"].as_u64().unwrap(),
            "{name}"
        );
        let mut types: Vec<&str> = g
            .tensors
            .iter()
            .map(|t| gguf::type_traits(t.ggml_type).unwrap().0)
            .collect();
        types.sort_unstable();
        types.dedup();
        let want: Vec<&str> = seen["types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(types, want, "{name}");
        // One short of the data: the file is truncated.
        let e = gguf::parse(&head[..], Some(len - 1)).unwrap_err();
        assert!(e.0.contains("truncated"), "{name}: {e}");
    }
}

#[test]
fn a_real_file_reads_and_a_fifo_or_directory_is_refused() {
    let (_, head, seen) = fixtures().remove(0);
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("m.gguf");
    std::fs::write(&p, &head).unwrap();
    // Sparse: the data section is a hole, fit never reads it.
    std::fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(seen["file_len"].as_u64().unwrap())
        .unwrap();
    let g = gguf::read_file(&p).unwrap();
    assert_eq!(g.weights_bytes(), seen["weights_bytes"].as_u64().unwrap());
    let fifo = t.path().join("fifo");
    nix::unistd::mkfifo(
        &fifo,
        nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
    )
    .unwrap();
    assert!(
        gguf::read_file(&fifo)
            .unwrap_err()
            .0
            .contains("not a regular file")
    );
    assert!(gguf::read_file(t.path()).is_err());
    assert!(
        gguf::read_file(&t.path().join("absent"))
            .unwrap_err()
            .0
            .contains("cannot open")
    );
}

#[test]
fn every_truncation_is_a_clean_error() {
    let (name, head, _) = fixtures().into_iter().min_by_key(|f| f.1.len()).unwrap();
    // The last few bytes are padding to the data alignment, not read.
    for n in (0..head.len() - 32).step_by(97) {
        let e = gguf::parse(&head[..n], None).unwrap_err();
        assert!(e.0.contains("truncated"), "{name} at {n}: {e}");
    }
}

#[test]
fn flipped_bytes_never_panic() {
    let (_, head, seen) = fixtures().into_iter().min_by_key(|f| f.1.len()).unwrap();
    let len = seen["file_len"].as_u64().unwrap();
    // Every byte of the fixed header and the first key/values (the vocabulary: scores, types), and a
    // stride through the rest (the tensor infos), set to 0xff and to 0x7f:
    // each either still reads or is an error; never a panic, never a huge
    // allocation (the caps fail first).
    let positions = (0..1024).chain((1024..head.len()).step_by(211));
    for i in positions {
        for b in [0xffu8, 0x7f, 0x00] {
            let mut m = head.clone();
            m[i] = b;
            let _ = gguf::parse(&m[..], Some(len));
        }
    }
}

#[test]
fn a_header_past_the_budget_is_refused() {
    let (_, head, _) = fixtures().remove(0);
    let e = gguf::parse_with_budget(&head[..], None, 1024).unwrap_err();
    assert!(e.0.contains("larger than"), "{e}");
}
