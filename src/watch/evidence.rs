//! Evidence that does not depend on how verbose the engine is: which GPU
//! runtimes the watched tree has mapped (`/proc/PID/maps`), which GPU
//! device nodes it holds open (`/proc/PID/fd/*` links), and the GPU flags on
//! its command lines (`/proc/PID/cmdline`). Current llama.cpp prints its
//! offload lines only at `-lv 4`; these say the same at any verbosity: a
//! tree that mapped no GPU runtime cannot have anything on a GPU.
//!
//! Pure parsers; the sampler reads the files (at tree re-discovery, not
//! every sample) and reports a [`super::sample::TreeEvidence`] when it changes.

/// The libraries whose presence means GPU work is possible: llama.cpp's
/// backends and the driver-level runtimes every GPU build ends up mapping
/// (the CUDA driver, Level Zero, HIP, the Vulkan loader), statically linked
/// backends included. `libsycl` and `libOpenCL` are left out: they drive
/// CPU devices as well, so they prove nothing alone.
pub const GPU_RUNTIMES: [&str; 8] = [
    "libggml-cuda",
    "libggml-sycl",
    "libggml-vulkan",
    "libggml-hip",
    "libcuda",
    "libze_loader",
    "libamdhip64",
    "libvulkan",
];

/// The path of one `/proc/PID/maps` line, None for anonymous mappings and
/// `[heap]`-like pseudo-paths. maps(5): address perms offset dev inode path;
/// the path is the rest of the line (it may hold spaces) and a file removed
/// after mapping ends in ` (deleted)`.
pub fn maps_path(line: &str) -> Option<&str> {
    let mut rest = line;
    for _ in 0..5 {
        rest = rest.trim_start();
        let end = rest.find(char::is_whitespace)?;
        rest = &rest[end..];
    }
    let path = rest.trim();
    let path = path.strip_suffix(" (deleted)").unwrap_or(path);
    path.starts_with('/').then_some(path)
}

/// Which GPU runtime a mapped file is, by its file name: `libcuda.so.1`,
/// `libcuda.so.550.90.07` and `libggml-vulkan.so` are; `libcudart.so.12`,
/// `libcuda_stub.so` and `libvulkan_radeon.so` (a Mesa driver the loader
/// maps, never mapped without it) are not.
pub fn gpu_runtime(path: &str) -> Option<&'static str> {
    let name = path.rsplit('/').next().unwrap_or(path);
    GPU_RUNTIMES.iter().copied().find(|lib| {
        name.strip_prefix(lib)
            .and_then(|r| r.strip_prefix(".so"))
            .is_some_and(|r| r.is_empty() || r.starts_with('.'))
    })
}

/// A GPU device node an fd link points at: DRM nodes (`/dev/dri/renderD128`,
/// `/dev/dri/card1`), NVIDIA's (`/dev/nvidia0`, `/dev/nvidiactl`,
/// `/dev/nvidia-uvm`) and ROCm's `/dev/kfd`.
pub fn gpu_device(link: &str) -> Option<&str> {
    let ok = link
        .strip_prefix("/dev/dri/")
        .is_some_and(|n| !n.is_empty() && !n.contains('/'))
        || link
            .strip_prefix("/dev/nvidia")
            .is_some_and(|n| !n.contains('/'))
        || link == "/dev/kfd";
    ok.then_some(link)
}

/// `/proc/PID/cmdline`: NUL-separated arguments (lossy UTF-8, at most 256).
pub fn parse_cmdline(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .take(256)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// llama.cpp's (and llama-server's, ollama runner's) GPU layer flags.
const NGL: [&str; 3] = ["-ngl", "--n-gpu-layers", "--gpu-layers"];
/// llama.cpp's device selection flags.
const DEVICE: [&str; 2] = ["--device", "-dev"];

/// The GPU flags of one command line, as typed: `["-ngl", "99", "--device",
/// "Vulkan0"]`. Both `-ngl 99` and `--n-gpu-layers=99` forms; a flag without
/// a value is kept alone. Arguments after `--` belong to someone else.
pub fn gpu_flags(argv: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 1;
    while i < argv.len() {
        let a = argv[i].as_str();
        if a == "--" {
            break;
        }
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with('-') => (f, Some(v)),
            _ => (a, None),
        };
        if NGL.contains(&flag) || DEVICE.contains(&flag) {
            out.push(flag.to_string());
            match inline {
                Some(v) => out.push(v.to_string()),
                None => {
                    if let Some(v) = argv.get(i + 1).filter(|v| !v.starts_with("--")) {
                        out.push(v.clone());
                        i += 1;
                    }
                }
            }
        }
        i += 1;
    }
    out
}

/// The model file a llama.cpp-style command line names: the last `-m FILE`,
/// `--model FILE` or `--model=FILE`, as typed (relative to the process's
/// working directory). Arguments after `--` belong to someone else.
pub fn model_path(argv: &[String]) -> Option<String> {
    let mut found = None;
    let mut i = 1;
    while i < argv.len() {
        let a = argv[i].as_str();
        if a == "--" {
            break;
        }
        if let Some(v) = a.strip_prefix("--model=") {
            found = Some(v.to_string());
        } else if a == "-m" || a == "--model" {
            // `python3 -m module` is not a model: `-m` counts with a GGUF
            // name or an ollama blob; `--model` with anything.
            let looks = |v: &str| {
                a == "--model"
                    || v.to_ascii_lowercase().ends_with(".gguf")
                    || v.contains("/blobs/sha256")
            };
            if let Some(v) = argv.get(i + 1).filter(|v| !v.starts_with('-') && looks(v)) {
                found = Some(v.clone());
                i += 1;
            }
        }
        i += 1;
    }
    found.filter(|p| !p.is_empty() && p.len() <= 4096)
}

/// The value of the last GPU-layers flag in `flags` (what the engine uses).
pub fn ngl_value(flags: &[String]) -> Option<&str> {
    flags
        .iter()
        .enumerate()
        .rev()
        .find(|(_, f)| NGL.contains(&f.as_str()))
        .and_then(|(i, _)| flags.get(i + 1))
        .map(String::as_str)
        .filter(|v| !v.starts_with('-') || v.parse::<i64>().is_ok())
}

/// The value of the last device flag.
pub fn device_value(flags: &[String]) -> Option<&str> {
    flags
        .iter()
        .enumerate()
        .rev()
        .find(|(_, f)| DEVICE.contains(&f.as_str()))
        .and_then(|(i, _)| flags.get(i + 1))
        .map(String::as_str)
}

/// Does this GPU-layers value ask for every layer? `99`/`999` (the usual
/// "all"), anything at least the model's layer count (`layers`, -1 when
/// unknown), and `all`.
pub fn ngl_is_all(value: &str, layers: i64) -> bool {
    match value.parse::<i64>() {
        Ok(n) => n >= 99 || (layers > 0 && n >= layers),
        Err(_) => value.eq_ignore_ascii_case("all"),
    }
}

/// `fix` without advice to pass a flag the user already passed: a line
/// whose command asks for `-ngl 99` when the command line already asks for
/// every layer loses the `-ngl 99`; a line that advised nothing else becomes
/// a comment saying it is already there.
pub fn without_passed_ngl(fix: &str, user_flag: &str) -> String {
    fix.lines()
        .map(|line| {
            let (cmd, comment) = match line.find('#') {
                Some(i) => (&line[..i], &line[i..]),
                None => (line, ""),
            };
            if line.trim_start().starts_with('#') || !cmd.contains(" -ngl 99") {
                return line.to_string();
            }
            let rest = cmd.replacen(" -ngl 99", "", 1);
            let rest = rest.trim_end();
            // `llama-server -m model.gguf` alone advises nothing.
            let advised: Vec<&str> = rest
                .split_whitespace()
                .skip(1)
                .filter(|w| *w != "-m" && !w.ends_with(".gguf"))
                .collect();
            if advised.is_empty() {
                format!("# `{user_flag}` is already on the command line: every layer was asked for")
            } else {
                let pad = cmd.len().saturating_sub(rest.len()).max(1);
                format!("{rest}{}{comment}", " ".repeat(pad))
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<String> {
        let text = std::fs::read_to_string(format!(
            "{}/fixtures/outputs/procfs/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap_or_default();
        assert!(
            text.starts_with("# source:"),
            "{name} keeps its source line"
        );
        text.lines().skip(3).map(String::from).collect()
    }

    #[test]
    fn real_maps_lines() {
        let lines = fixture("maps-python-ctypes-libvulkan.txt");
        assert!(lines.len() > 100);
        let paths: Vec<&str> = lines.iter().filter_map(|l| maps_path(l)).collect();
        assert!(
            paths.contains(&"/tmp/wd/my model (1).gguf"),
            "spaces and parentheses"
        );
        assert!(paths.contains(&"/tmp/wd/gone.bin"), "(deleted) is cut");
        assert!(
            !paths.iter().any(|p| p.starts_with('[')),
            "pseudo-paths are not files"
        );
        let rts: Vec<&str> = paths.iter().filter_map(|p| gpu_runtime(p)).collect();
        assert_eq!(rts.len(), 5, "the loader's five segments: {rts:?}");
        assert!(rts.iter().all(|r| *r == "libvulkan"));
        // The python binary, libc, libffi: no GPU runtime.
        assert_eq!(
            lines
                .iter()
                .filter_map(|l| maps_path(l))
                .filter(|p| p.contains("libffi") || p.contains("libc.so"))
                .filter_map(gpu_runtime)
                .count(),
            0
        );
        // Anonymous mappings and garbage.
        assert_eq!(
            maps_path("7f72459ee000-7f7245b21000 rw-p 00000000 00:00 0 "),
            None
        );
        for bad in ["", "garbage", "1 2 3 4", "a b c d e relative/path"] {
            assert_eq!(maps_path(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn gpu_library_paths_from_public_logs() {
        let mut seen = Vec::new();
        for line in fixture("gpu-library-paths.txt") {
            let (path, src) = line.split_once('\t').unwrap_or((&line, ""));
            assert!(src.contains("http") || src.contains("fixtures/"), "{line}");
            seen.push((
                path.rsplit('/').next().unwrap_or("").to_string(),
                gpu_runtime(path),
            ));
        }
        let want: Vec<(&str, Option<&str>)> = vec![
            ("libggml-cuda.so", Some("libggml-cuda")),
            ("libggml-vulkan.so", Some("libggml-vulkan")),
            ("libggml-hip.so", Some("libggml-hip")),
            ("libcuda.so.550.90.07", Some("libcuda")),
            ("libcuda.so.1", Some("libcuda")),
            ("libamdhip64.so.6", Some("libamdhip64")),
            ("libsycl.so.8", None),
            ("libnccl.so.2", None),
        ];
        let got: Vec<(&str, Option<&str>)> = seen.iter().map(|(n, r)| (n.as_str(), *r)).collect();
        assert_eq!(got, want);
        // Names that only start like a runtime.
        for not in [
            "/usr/lib/libcudart.so.12",
            "/usr/lib/x86_64-linux-gnu/libvulkan_radeon.so",
            "/x/libcuda_stub.so",
            "/x/libvulkan",
            "/x/libggml-cpu-haswell.so",
            "/x/libggml-base.so",
        ] {
            assert_eq!(gpu_runtime(not), None, "{not}");
        }
        assert_eq!(
            gpu_runtime("/usr/lib64/libze_loader.so.1.17.44"),
            Some("libze_loader")
        );
    }

    #[test]
    fn device_nodes() {
        for yes in [
            "/dev/dri/renderD128",
            "/dev/dri/card1",
            "/dev/nvidia0",
            "/dev/nvidiactl",
            "/dev/nvidia-uvm",
            "/dev/kfd",
        ] {
            assert_eq!(gpu_device(yes), Some(yes));
        }
        for no in [
            "/dev/null",
            "socket:[12345]",
            "/dev/dri/",
            "/dev/nvidia-caps/nvidia-cap1",
            "/home/x/dev/kfd",
            "pipe:[7]",
        ] {
            assert_eq!(gpu_device(no), None, "{no}");
        }
    }

    fn argv(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn model_file_on_the_command_line() {
        assert_eq!(
            model_path(&argv(&["llama-server", "-m", "m.gguf", "-ngl", "99"])).as_deref(),
            Some("m.gguf")
        );
        assert_eq!(
            model_path(&argv(&["llama-cli", "--model=/a/b.gguf"])).as_deref(),
            Some("/a/b.gguf")
        );
        assert_eq!(model_path(&argv(&["llama-cli", "-m"])), None);
        assert_eq!(model_path(&argv(&["python3", "-m", "http.server"])), None);
        assert_eq!(model_path(&argv(&["x", "--", "-m", "m.gguf"])), None);
        assert_eq!(
            model_path(&argv(&["-m", "m.gguf"])),
            None,
            "argv[0] is the program"
        );
    }

    #[test]
    fn command_line_flags() {
        let a = parse_cmdline(b"llama-server\0-m\0model.gguf\0-ngl\x0099\0--device\0Vulkan0\0");
        let f = gpu_flags(&a);
        assert_eq!(f, argv(&["-ngl", "99", "--device", "Vulkan0"]));
        assert_eq!(ngl_value(&f), Some("99"));
        assert_eq!(device_value(&f), Some("Vulkan0"));
        let f = gpu_flags(&argv(&["llama-cli", "--n-gpu-layers=20", "-ngl", "33"]));
        assert_eq!(ngl_value(&f), Some("33"), "the last one wins");
        assert_eq!(gpu_flags(&argv(&["x", "-ngl"])), argv(&["-ngl"]));
        assert_eq!(ngl_value(&argv(&["-ngl"])), None);
        assert_eq!(ngl_value(&argv(&["-ngl", "-1"])), Some("-1"));
        assert!(gpu_flags(&argv(&["sh", "-c", "llama-server -ngl 99"])).is_empty());
        assert!(gpu_flags(&argv(&["x", "--", "-ngl", "99"])).is_empty());
        assert!(
            gpu_flags(&argv(&["-ngl", "99"])).is_empty(),
            "argv[0] is the program"
        );
        assert!(ngl_is_all("99", -1) && ngl_is_all("33", 33) && ngl_is_all("all", -1));
        assert!(!ngl_is_all("20", 49) && !ngl_is_all("0", -1) && !ngl_is_all("-1", 33));
        assert!(parse_cmdline(b"").is_empty());
    }

    #[test]
    fn a_fix_never_asks_for_a_flag_already_passed() {
        let fix = "llama-server -m model.gguf -ngl 99          # every layer on the GPU\n\
llama-server -m model.gguf -ngl 99 -c 4096  # does not fit? a smaller context\n\
# ollama: a smaller num_ctx";
        let out = without_passed_ngl(fix, "-ngl 99");
        assert!(!out.contains(" -ngl 99 "), "{out}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "# `-ngl 99` is already on the command line: every layer was asked for"
        );
        assert!(
            lines[1].starts_with("llama-server -m model.gguf -c 4096 "),
            "{out}"
        );
        assert!(
            lines[1].ends_with("# does not fit? a smaller context"),
            "{out}"
        );
        assert_eq!(lines[2], "# ollama: a smaller num_ctx");
        assert_eq!(
            without_passed_ngl("rigdoctor check", "-ngl 99"),
            "rigdoctor check"
        );
    }
}
