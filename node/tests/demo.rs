//! `liaison demo --exit` runs the four-node federation and succeeds.

#[test]
fn demo_exit_succeeds() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_liaison"))
        .args(["demo", "--exit"])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("All steps succeeded"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
}
