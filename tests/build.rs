//! Builds every test guest from source before the tests compile.
//!
//! Guests live in their own cargo workspace (`tests/guests/`) because they target
//! WebAssembly. Each member says which target it is built for in its manifest:
//!
//! ```toml
//! [package.metadata.rustmq-test]
//! target = "wasm32-wasip2"   # or wasm32-wasip1, wasm32-unknown-unknown
//! ```
//!
//! A member may list several targets (`targets = [..]`); the constant for every target
//! after the first is suffixed with the target (`GUIDE_MODULE_WASM32_UNKNOWN_UNKNOWN`).
//! A member may set `opt-level = "3"` there to be built, dependencies included, at
//! that level instead of the guest workspace's `"s"`: the guide's module is, because
//! the guide's manifest sets no profile, so a user's `cargo build --release` builds
//! it at cargo's default, 3.
//! The guest template (`guest-template/`) is built too, for `wasm32-wasip2`. Guests
//! written with the SDK (`guest-sdk/`) depend on it by path; its copy of the contract
//! must be the broker's `wit/1.2.0/etl.wit`, which is checked here.
//! The nested cargo uses its own target directory, so it never waits on the outer
//! build's lock.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let guests_dir = manifest_dir.join("guests");
    let template_dir = root.join("guest-template");
    let sdk_dir = root.join("guest-sdk");
    let target_dir = root.join("target").join("guests");
    println!("cargo:rerun-if-changed={}", guests_dir.display());
    println!("cargo:rerun-if-changed={}", template_dir.display());
    println!("cargo:rerun-if-changed={}", sdk_dir.display());
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    println!(
        "cargo:rerun-if-changed={}",
        root.join("batch-buffer").display()
    );

    // The SDK generates its bindings from its own copy of the contract, so that it
    // builds wherever it is copied; a stale copy would build guests for another world.
    let contract = std::fs::read(root.join("wit/1.2.0/etl.wit")).unwrap();
    let sdk_copy = std::fs::read(sdk_dir.join("wit/etl.wit")).unwrap();
    assert!(
        contract == sdk_copy,
        "guest-sdk/wit/etl.wit differs from wit/1.2.0/etl.wit: copy the broker's file into the SDK"
    );

    let mut by_target: BTreeMap<Build, Vec<(String, String)>> = BTreeMap::new();
    let mut members: Vec<PathBuf> = std::fs::read_dir(&guests_dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    members.sort();
    for dir in members {
        let manifest = dir.join("Cargo.toml");
        if !manifest.is_file() || dir == guests_dir {
            continue;
        }
        let text = std::fs::read_to_string(&manifest).unwrap();
        let name = package_name(&text)
            .unwrap_or_else(|| panic!("no package name in {}", manifest.display()));
        for src in walk(&dir) {
            println!("cargo:rerun-if-changed={}", src.display());
        }
        for (i, target) in targets(&text).into_iter().enumerate() {
            let mut konst = name.to_uppercase().replace('-', "_");
            if i > 0 {
                konst.push('_');
                konst.push_str(&target.to_uppercase().replace('-', "_"));
            }
            by_target
                .entry((target, opt_level(&text)))
                .or_default()
                .push((konst, name.clone()));
        }
    }

    let mut out = String::new();
    for ((target, opt_level), crates) in &by_target {
        let mut cmd = cargo();
        cmd.arg("build").arg("--release");
        if let Some(level) = opt_level {
            // TOML: 0..=3 are integers, "s" and "z" strings.
            let value = if level.bytes().all(|b| b.is_ascii_digit()) {
                level.clone()
            } else {
                format!("{level:?}")
            };
            cmd.arg("--config")
                .arg(format!("profile.release.opt-level={value}"));
        }
        cmd.arg("--target")
            .arg(target)
            .arg("--manifest-path")
            .arg(guests_dir.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir);
        for (_, krate) in crates {
            cmd.arg("-p").arg(krate);
        }
        run(cmd, &format!("test guests for {target}"));
        for (konst, krate) in crates {
            let wasm = target_dir
                .join(target)
                .join("release")
                .join(format!("{}.wasm", krate.replace('-', "_")));
            assert!(
                wasm.is_file(),
                "guest {krate} did not produce {}",
                wasm.display()
            );
            writeln!(
                out,
                "/// `{krate}` built for `{target}`.\npub const {konst}: &str = {:?};",
                wasm.display().to_string()
            )
            .unwrap();
        }
    }

    if template_dir.join("Cargo.toml").is_file() {
        for src in walk(&template_dir) {
            println!("cargo:rerun-if-changed={}", src.display());
        }
        let mut cmd = cargo();
        cmd.arg("build")
            .arg("--release")
            .arg("--target")
            .arg("wasm32-wasip2")
            .arg("--manifest-path")
            .arg(template_dir.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir);
        run(cmd, "the guest template");
        let name = package_name(&std::fs::read_to_string(template_dir.join("Cargo.toml")).unwrap())
            .unwrap();
        let wasm = target_dir
            .join("wasm32-wasip2")
            .join("release")
            .join(format!("{}.wasm", name.replace('-', "_")));
        writeln!(out, "/// The guest template, built for `wasm32-wasip2`.\npub const GUEST_TEMPLATE: &str = {:?};", wasm.display().to_string()).unwrap();
        writeln!(out, "/// The guest template's source directory.\npub const GUEST_TEMPLATE_DIR: &str = {:?};", template_dir.display().to_string()).unwrap();
    }

    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("guests.rs");
    std::fs::write(dest, out).unwrap();
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    // Do not leak the outer build's settings (target, rustflags, profile) into the
    // guest builds.
    for (k, _) in std::env::vars() {
        if k.starts_with("CARGO_") && k != "CARGO_HOME"
            || matches!(
                k.as_str(),
                "RUSTFLAGS"
                    | "RUSTC_WRAPPER"
                    | "RUSTC_WORKSPACE_WRAPPER"
                    | "CLIPPY_ARGS"
                    | "CLIPPY_CONF_DIR"
            )
        {
            cmd.env_remove(k);
        }
    }
    cmd
}

fn run(mut cmd: Command, what: &str) {
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("could not run cargo for {what}: {e}"));
    assert!(status.success(), "building {what} failed (is the wasm target installed? run `rustup target add wasm32-wasip2 wasm32-wasip1 wasm32-unknown-unknown`)");
}

fn package_name(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package && line.starts_with("name") {
            return line.split('"').nth(1).map(str::to_string);
        }
    }
    None
}

/// How a group of guests is built: (target, opt-level override); each maps to its
/// members' (constant name, crate name).
type Build = (String, Option<String>);

/// The member's `opt-level` override in `[package.metadata.rustmq-test]`, if any.
fn opt_level(manifest: &str) -> Option<String> {
    let mut in_meta = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_meta = line == "[package.metadata.rustmq-test]";
        } else if in_meta && line.starts_with("opt-level") {
            let value = line.split('=').nth(1)?.trim().trim_matches('"');
            return Some(value.to_string());
        }
    }
    None
}

fn targets(manifest: &str) -> Vec<String> {
    let mut in_meta = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_meta = line == "[package.metadata.rustmq-test]";
        } else if in_meta
            && (line.starts_with("target ")
                || line.starts_with("target=")
                || line.starts_with("targets"))
        {
            return line
                .split('"')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect();
        }
    }
    vec!["wasm32-wasip2".to_string()]
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            let name = e.file_name();
            if name == "target" || name == "Cargo.lock" {
                continue;
            }
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
