//! Records the commit the `lavit` binary is built from (`lavit_cli::BUILD_COMMIT`): `git
//! describe --always --dirty --abbrev=40`, so a run's report names the code that made it
//! (`-dirty` when tracked files differed from that commit), or `unknown` outside a checkout.

use std::process::Command;

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(&root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["describe", "--always", "--dirty", "--abbrev=40"])
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=LAVIT_BUILD_COMMIT={commit}");
    // Rebuild the string when HEAD moves or a source file changes. Not when the index file
    // changes: `describe --dirty` itself rewrites it in a fresh clone (even with git's
    // --no-optional-locks), and every later cargo command would rebuild this crate. Only files
    // that exist are watched: cargo counts a missing one as changed on every build (a checkout
    // whose refs were never packed has no `packed-refs`; a packed branch has no loose ref).
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        let dir = std::path::Path::new(&dir);
        let head = git(&["symbolic-ref", "-q", "HEAD"]);
        let watched = ["HEAD", "packed-refs"].into_iter().chain(head.as_deref());
        for f in watched.map(|f| dir.join(f)).filter(|f| f.exists()) {
            println!("cargo:rerun-if-changed={}", f.display());
        }
    }
    for src in [
        "core/src",
        "backends/src",
        "cli/src",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(src).display());
    }
}
