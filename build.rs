//! Build info for `roster --version`: the git commit and its date, the compiler, the
//! target and the profile. Outside a git checkout (a Docker build of a source archive)
//! the commit is "unknown".

use std::path::Path;
use std::process::Command;

fn output(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn main() {
    let commit =
        output("git", &["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let date = output("git", &["log", "-1", "--format=%cs"]).unwrap_or_else(|| "unknown".into());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc = output(&rustc, &["--version"]).unwrap_or_else(|| "rustc unknown".into());
    println!("cargo:rustc-env=ROSTER_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=ROSTER_BUILD_DATE={date}");
    println!("cargo:rustc-env=ROSTER_BUILD_RUSTC={rustc}");
    println!(
        "cargo:rustc-env=ROSTER_BUILD_TARGET={}",
        std::env::var("TARGET").unwrap_or_default()
    );
    println!(
        "cargo:rustc-env=ROSTER_BUILD_PROFILE={}",
        std::env::var("PROFILE").unwrap_or_default()
    );
    // A new commit moves HEAD or the branch it names; only paths that exist are watched,
    // so a build without .git does not run this again every time.
    for path in [".git/HEAD", ".git/refs/heads"] {
        if Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    // The migrations are embedded by `sqlx::migrate!`: a new one must rebuild.
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=build.rs");
}
