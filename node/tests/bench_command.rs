//! `liaison bench ARGS` runs the `liaison-bench` executable beside `liaison` with the same
//! arguments and fails as it fails; without it, the error names the build command.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

/// A copy of `liaison` alone in a fresh directory.
fn lone_liaison(dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).expect("a directory");
    let exe = dir.join("liaison");
    std::fs::copy(env!("CARGO_BIN_EXE_liaison"), &exe).expect("copy liaison");
    exe
}

#[test]
fn bench_runs_liaison_bench_beside_it_or_names_the_build_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(lone_liaison(dir.path()))
        .args(["bench", "--quick"])
        .output()
        .expect("run liaison bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "succeeded without liaison-bench");
    assert!(
        stderr.contains("cargo build --release -p liaison-bench"),
        "the error does not name the build command: {stderr}"
    );

    // With a stand-in beside it: the same arguments, and its outcome. (One test, so that no
    // other test thread forks while these executables are being written.)
    let exe = lone_liaison(&dir.path().join("with"));
    let stand_in = exe.with_file_name("liaison-bench");
    std::fs::write(
        &stand_in,
        "#!/bin/sh\necho \"args: $*\"\n[ \"$1\" != --fail ]\n",
    )
    .expect("write a stand-in");
    std::fs::set_permissions(&stand_in, std::fs::Permissions::from_mode(0o755))
        .expect("make it executable");

    let out = Command::new(&exe)
        .args(["bench", "--quick", "--scale", "2000", "--help"])
        .output()
        .expect("run liaison bench");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "args: --quick --scale 2000 --help\n"
    );

    let failed = Command::new(&exe)
        .args(["bench", "--fail"])
        .output()
        .expect("run liaison bench");
    assert!(
        !failed.status.success(),
        "a failed benchmark must fail the command"
    );
}
