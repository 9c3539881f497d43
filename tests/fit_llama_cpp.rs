//! fit's llama.cpp memory model against real llama.cpp: `bench/fit-oracle.sh`
//! built llama.cpp (CPU, from the llama-cpp-python 0.3.36 sdist), loaded
//! the models of `fixtures/gguf/` and kept its `-lv 4` logs in
//! `fixtures/gguf/llama-cpp/MODEL-cCTX-KVTYPE-npN.log`. The KV cache is
//! arithmetic: it must match llama.cpp's printed MiB (2 decimals) exactly,
//! cache by cache, with the same cell counts. The compute buffer is an
//! estimate: within 10 % or 64 MiB.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on purpose"
)]

use rigdoctor::fit::llama_cpp::{self, Hparams, Settings};
use rigdoctor::model::gguf;
use std::path::PathBuf;

const MIB: f64 = 1024.0 * 1024.0;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/gguf")
}

/// The MiB number after `key` on a line.
fn mib_after(line: &str, key: &str) -> Option<f64> {
    let rest = &line[line.find(key)? + key.len()..];
    rest.trim_start_matches([' ', '='])
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

struct Logged {
    model: f64,
    mapped: f64,
    /// (MiB, cells, layers) per KV cache, in log order (non-SWA first).
    kv: Vec<(f64, u64, u64)>,
    compute: f64,
    ubatch: u64,
}

fn read_log(text: &str) -> Logged {
    let mut l = Logged {
        model: 0.0,
        mapped: 0.0,
        kv: Vec::new(),
        compute: 0.0,
        ubatch: 0,
    };
    for line in text.lines() {
        if line.contains("model buffer size") {
            let m = mib_after(line, "model buffer size").unwrap();
            l.model += m;
            if line.contains("CPU_Mapped") {
                l.mapped += m;
            }
        } else if line.contains("llama_kv_cache: size =") {
            let m = mib_after(line, "size =").unwrap();
            let inner = &line[line.find('(').unwrap() + 1..];
            let mut w = inner.split_whitespace();
            let cells: u64 = w.next().unwrap().parse().unwrap();
            w.next();
            let layers: u64 = w.next().unwrap().parse().unwrap();
            l.kv.push((m, cells, layers));
        } else if line.contains("compute buffer size") {
            l.compute += mib_after(line, "compute buffer size").unwrap();
        } else if line.contains("llama_context: n_ubatch") {
            l.ubatch = line.rsplit('=').next().unwrap().trim().parse().unwrap();
        }
    }
    l
}

#[test]
fn predictions_match_llama_cpp_logs() {
    let mut seen = 0;
    let mut table = String::new();
    let mut names: Vec<_> = std::fs::read_dir(dir().join("llama-cpp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    names.sort();
    for p in names {
        let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
        // MODEL-cCTX-KV-npN
        let parts: Vec<&str> = stem.rsplitn(4, '-').collect();
        let (np, kv, ctx, model) = (parts[0], parts[1], parts[2], parts[3]);
        let head = std::fs::read(dir().join(format!("{model}.head"))).unwrap();
        let g = gguf::parse(&head[..], None).unwrap();
        let h = Hparams::from_gguf(&g).unwrap();
        let logged = read_log(&std::fs::read_to_string(&p).unwrap());
        let t = gguf::type_by_name(kv).unwrap();
        let s = Settings {
            ctx: ctx.trim_start_matches('c').parse().unwrap(),
            parallel: np.trim_start_matches("np").parse().unwrap(),
            ubatch: logged.ubatch,
            type_k: t,
            type_v: t,
        };
        let kvp = llama_cpp::kv_cache(&h, &s).unwrap();
        // Split the prediction the way llama.cpp prints it: the non-SWA
        // cache, then the SWA cache.
        let mut caches = Vec::new();
        for (swa, cells) in [(false, kvp.cells), (true, kvp.cells_swa)] {
            let layers: Vec<u64> = kvp
                .layer_bytes
                .iter()
                .zip(&h.swa_layers)
                .filter(|&(_, &w)| w == swa)
                .map(|(&b, _)| b)
                .collect();
            if !layers.is_empty() {
                caches.push((layers.iter().sum::<u64>(), cells, layers.len() as u64));
            }
        }
        assert_eq!(caches.len(), logged.kv.len(), "{stem}: caches");
        for ((bytes, cells, layers), (mib, lcells, llayers)) in caches.iter().zip(&logged.kv) {
            assert_eq!(
                format!("{:.2}", *bytes as f64 / MIB),
                format!("{mib:.2}"),
                "{stem}: KV bytes"
            );
            // llama.cpp prints the cells of one stream (one per sequence).
            assert_eq!(
                (*cells / s.parallel, *layers),
                (*lcells, *llayers),
                "{stem}: KV cells per stream, layers"
            );
        }
        let comp = llama_cpp::compute_bytes(&h, &s) as f64 / MIB;
        let err = comp - logged.compute;
        assert!(
            err.abs() <= 64.0 || err.abs() <= 0.10 * logged.compute,
            "{stem}: compute {comp:.2} MiB vs llama.cpp {:.2} MiB",
            logged.compute
        );
        let w = g.weights_bytes() as f64 / MIB;
        // Without CPU repacking (a CPU-backend copy of some quant types into
        // an extra buffer, not a GPU cost) the model buffer is the tensors'
        // bytes, exactly.
        if logged.model == logged.mapped {
            assert_eq!(
                format!("{w:.2}"),
                format!("{:.2}", logged.model),
                "{stem}: weights"
            );
        }
        table.push_str(&format!(
            "{stem:40} weights {w:8.2} (mapped {:8.2}, all buffers {:8.2}) kv {:8.2} = {:8.2} compute {comp:7.2} vs {:7.2} ({:+.1} %)\n",
            logged.mapped,
            logged.model,
            kvp.bytes() as f64 / MIB,
            logged.kv.iter().map(|k| k.0).sum::<f64>(),
            logged.compute,
            100.0 * err / logged.compute
        ));
        seen += 1;
    }
    println!("{table}");
    assert_eq!(seen, 10, "the ten logged settings");
}
