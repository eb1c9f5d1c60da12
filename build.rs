// SPDX-License-Identifier: GPL-3.0-only
//! Chooses the Xen release the library is built for, and generates the C header with cbindgen
//! into `target/xcsave.h.generated` (and OUT_DIR).
//!
//! The Xen release is `XCSAVE_XEN_VERSION` (e.g. `4.20`, set by `make XEN=4.20`) or else
//! `pkg-config --modversion xenguest` (major.minor). Everything that depends on it follows from
//! it here, in one place (docs/decisions.md, "One tree, two Xen releases"):
//! - `XCSAVE_XEN_VERSION` and `XCSAVE_XEN_NODE` (the symbol version node of stock's
//!   `xc_domain_save`: `VERS_4.17.0` up to 4.17, `libxenguest_<major>.<minor>.0` from 4.18) as
//!   compile-time environment for `src/xen/version.rs`;
//! - `cfg(xen = "4.17")` or `cfg(xen = "4.20")` for the few API differences (`src/xen/dominfo.rs`);
//! - the linker version script `<target>/<profile>/xcsave.map`, from `xcsave.map.in`, which
//!   `scripts/link-so.sh` links with, and `<target>/<profile>/xcsave-xen.txt` naming the release.
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
    xen_release(&crate_dir, &out_dir);

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

/// The Xen releases this tree is built and tested against.
const SUPPORTED: [&str; 2] = ["4.17", "4.20"];

/// Pick the Xen release, export it to the crate, and write the version script for it.
fn xen_release(crate_dir: &std::path::Path, out_dir: &std::path::Path) {
    println!("cargo:rerun-if-env-changed=XCSAVE_XEN_VERSION");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-changed=xcsave.map.in");
    println!(
        "cargo:rustc-check-cfg=cfg(xen, values({}))",
        SUPPORTED.map(|v| format!("\"{v}\"")).join(", ")
    );
    let installed = installed_xen();
    let (version, source) = match std::env::var("XCSAVE_XEN_VERSION") {
        Ok(v) if !v.is_empty() => (v, "XCSAVE_XEN_VERSION"),
        _ => (
            installed.clone().unwrap_or_else(|e| {
                panic!("xcsave: {e}: install libxen-dev and pkgconf, or set XCSAVE_XEN_VERSION")
            }),
            "pkg-config --modversion xenguest",
        ),
    };
    // The override is for headers pkg-config cannot see; it must not contradict those it sees,
    // or the bindings (4.17's or 4.20's xenctrl.h) and the node would disagree.
    if let Ok(seen) = &installed {
        assert!(
            *seen == version,
            "xcsave: XCSAVE_XEN_VERSION={version}, but the installed Xen headers are {seen} \
             (pkg-config --modversion xenguest); build for {version} where its libxen-dev is \
             installed (make check-420 uses the Debian 13 root)"
        );
    }
    assert!(
        SUPPORTED.contains(&version.as_str()),
        "xcsave: Xen {version} (from {source}) is not supported; supported: {}",
        SUPPORTED.join(", ")
    );
    // Xen 4.18 renamed libxenguest's node from VERS_x.y.0 to libxenguest_x.y.0 (libs.mk).
    let node = if version == "4.17" {
        "VERS_4.17.0".to_string()
    } else {
        format!("libxenguest_{version}.0")
    };
    println!("cargo:rustc-env=XCSAVE_XEN_VERSION={version}");
    println!("cargo:rustc-env=XCSAVE_XEN_NODE={node}");
    println!("cargo:rustc-cfg=xen=\"{version}\"");

    let template = std::fs::read_to_string(crate_dir.join("xcsave.map.in"))
        .expect("xcsave.map.in is readable");
    let map = template.replace("@XEN_NODE@", &node);
    // OUT_DIR is <target>/<profile>/build/xcsave-<hash>/out: the script goes to <target>/<profile>,
    // next to libxcsave.a, where scripts/link-so.sh finds it.
    let profile_dir = out_dir
        .ancestors()
        .nth(3)
        .expect("OUT_DIR is under the target directory");
    std::fs::write(profile_dir.join("xcsave.map"), map).expect("the version script is writable");
    std::fs::write(
        profile_dir.join("xcsave-xen.txt"),
        format!("{version} {node}\n"),
    )
    .expect("xcsave-xen.txt is writable");
}

/// `major.minor` of the installed libxenguest, from pkg-config.
fn installed_xen() -> Result<String, String> {
    let out = std::process::Command::new("pkg-config")
        .args(["--modversion", "xenguest"])
        .output()
        .map_err(|e| format!("pkg-config cannot run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "pkg-config --modversion xenguest failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let full = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok(full.split('.').take(2).collect::<Vec<_>>().join("."))
}
