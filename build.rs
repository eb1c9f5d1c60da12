// SPDX-License-Identifier: GPL-3.0-only
//! Generates the C header with cbindgen into `target/xcsave.h.generated` (and OUT_DIR).
//!
//! `scripts/check-header.sh` (run by `make check`) fails when the committed
//! `include/xcsave.h` differs from that fresh copy. Build with `XCSAVE_UPDATE_HEADER=1` to
//! refresh `include/xcsave.h` in place, then commit it.

use std::path::PathBuf;

fn main() {
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=XCSAVE_UPDATE_HEADER");
    println!("cargo:rustc-link-lib=xenguest");
    println!("cargo:rustc-link-lib=xenctrl");

    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml parses");
    let generated = out_dir.join("xcsave.h");
    cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write_to_file(&generated);
    let fresh = std::fs::read(&generated).expect("generated header is readable");

    let target = crate_dir.join("target");
    std::fs::create_dir_all(&target).expect("target/ can be created");
    std::fs::write(target.join("xcsave.h.generated"), &fresh)
        .expect("target/xcsave.h.generated is writable");

    if std::env::var_os("XCSAVE_UPDATE_HEADER").is_some_and(|v| v != "0") {
        std::fs::create_dir_all(crate_dir.join("include")).expect("include/ can be created");
        std::fs::write(crate_dir.join("include/xcsave.h"), &fresh)
            .expect("include/xcsave.h is writable");
    }
}
