//! The container image: `scripts/build-image` writes a valid OCI image layout
//! whose single layer holds a static, non-root nestkube that runs.
//!
//! Uses the layout in `NESTKUBE_IMAGE_DIR` when set (scripts/test-all builds
//! it once), else builds one (a release build for the musl target: slow the
//! first time, incremental after).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The image layout to inspect, and the temp dir keeping it alive.
fn image_dir() -> (PathBuf, Option<tempfile::TempDir>) {
    if let Some(dir) = std::env::var_os("NESTKUBE_IMAGE_DIR") {
        return (PathBuf::from(dir), None);
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("nestkube");
    let status = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-image"))
        .arg("--out")
        .arg(&out)
        .status()
        .expect("run scripts/build-image");
    assert!(status.success(), "scripts/build-image failed");
    (out, Some(tmp))
}

/// Reads a blob by descriptor, checking its size and digest.
fn blob(dir: &Path, desc: &Value) -> Vec<u8> {
    let digest = desc["digest"].as_str().expect("descriptor digest");
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    let bytes = std::fs::read(dir.join("blobs/sha256").join(hex)).expect("blob present");
    assert_eq!(
        Some(bytes.len() as u64),
        desc["size"].as_u64(),
        "size of {digest}"
    );
    assert_eq!(hex, sha256_hex(&bytes), "digest of blob");
    bytes
}

/// The sha256 of `bytes` in hex, by coreutils' `sha256sum`.
fn sha256_hex(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Whether an ELF file has a PT_INTERP program header (is dynamically linked).
fn has_interpreter(elf: &[u8]) -> bool {
    assert_eq!(&elf[..4], b"\x7fELF", "an ELF binary");
    assert_eq!(elf[4], 2, "64-bit ELF");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let p = phoff + i * phentsize;
        u32::from_le_bytes(elf[p..p + 4].try_into().unwrap()) == 3
    })
}

#[test]
fn image_is_a_valid_static_non_root_oci_image() {
    let (dir, _tmp) = image_dir();
    let layout: Value = serde_json::from_slice(&std::fs::read(dir.join("oci-layout")).unwrap())
        .expect("oci-layout is JSON");
    assert_eq!(layout["imageLayoutVersion"], "1.0.0");
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let entry = &index["manifests"][0];
    assert_eq!(
        entry["annotations"]["org.opencontainers.image.ref.name"],
        env!("CARGO_PKG_VERSION"),
        "tagged with the crate version"
    );
    let manifest: Value = serde_json::from_slice(&blob(&dir, entry)).unwrap();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let config: Value = serde_json::from_slice(&blob(&dir, &manifest["config"])).unwrap();
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");
    let user = config["config"]["User"].as_str().unwrap();
    assert!(
        !user.is_empty() && !user.starts_with("0") && !user.starts_with("root"),
        "runs as a non-root user, got {user:?}"
    );
    assert_eq!(config["config"]["Entrypoint"][0], "/nestkube");
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "one layer");
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 1);

    // Unpack the layer with the system tar and inspect the root filesystem.
    let rootfs = tempfile::tempdir().unwrap();
    let layer = rootfs.path().join("layer.tar.gz");
    std::fs::write(&layer, blob(&dir, &layers[0])).unwrap();
    let fs = rootfs.path().join("fs");
    std::fs::create_dir(&fs).unwrap();
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(&layer)
        .arg("-C")
        .arg(&fs)
        .status()
        .unwrap();
    assert!(status.success(), "the layer is a gzip tar");
    let passwd = std::fs::read_to_string(fs.join("etc/passwd")).unwrap();
    let uid = user.split(':').next().unwrap();
    assert!(
        passwd.lines().any(|l| l.split(':').nth(2) == Some(uid)),
        "/etc/passwd names user {uid}"
    );
    let binary = fs.join("nestkube");
    let elf = std::fs::read(&binary).unwrap();
    assert!(
        !has_interpreter(&elf),
        "the binary is static (no ELF interpreter)"
    );
    let out = Command::new(&binary).arg("--version").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(
        version.contains(env!("CARGO_PKG_VERSION")),
        "version: {version}"
    );
    eprintln!(
        "image: layer {:.1} MB compressed, binary {:.1} MB",
        layers[0]["size"].as_f64().unwrap() / 1e6,
        elf.len() as f64 / 1e6
    );
}
