//! Embeds the OpenAPI documents under `data/` (generated from a real
//! kube-apiserver, see data/README.md) into the binary: one static per file,
//! so the server needs no files at run time.

use std::fmt::Write;
use std::path::Path;

fn main() {
    // Read at run time, not `env!`: cargo may reuse this build script's
    // binary for a checkout at another path, whose data it must embed.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let data = Path::new(&manifest_dir).join("data");
    println!("cargo:rerun-if-changed={}", data.display());
    let mut out = String::new();
    let v2 = data.join("openapi-v2.json");
    println!("cargo:rerun-if-changed={}", v2.display());
    if v2.exists() {
        writeln!(out, "/// `/openapi/v2`.\npub static OPENAPI_V2: Option<&[u8]> = Some(include_bytes!({:?}));", v2.display()).unwrap();
    } else {
        writeln!(
            out,
            "/// `/openapi/v2` (not generated yet).\npub static OPENAPI_V2: Option<&[u8]> = None;"
        )
        .unwrap();
    }
    let v3_dir = data.join("openapi-v3");
    println!("cargo:rerun-if-changed={}", v3_dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&v3_dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    writeln!(out, "/// `/openapi/v3/<path>` documents by path (`apis/apps/v1`).\npub static OPENAPI_V3: &[(&str, &[u8])] = &[").unwrap();
    for f in &files {
        let stem = f.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        if f.extension().and_then(|e| e.to_str()) != Some("json") || stem == "index" {
            continue;
        }
        writeln!(
            out,
            "    ({:?}, include_bytes!({:?})),",
            stem.replace("__", "/"),
            f.display()
        )
        .unwrap();
    }
    writeln!(out, "];").unwrap();
    let out_dir = std::env::var("OUT_DIR").expect("OUT_DIR");
    std::fs::write(Path::new(&out_dir).join("openapi_data.rs"), out)
        .expect("write openapi_data.rs");
}
