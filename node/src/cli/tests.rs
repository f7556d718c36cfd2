//! The command line's own unit tests.

use super::terminal_safe;

#[test]
fn remote_text_cannot_drive_the_terminal() {
    assert_eq!(
        terminal_safe("\u{1b}[2K\rTLP:CLEAR"),
        "\\u{1b}[2K\\u{d}TLP:CLEAR"
    );
    assert_eq!(terminal_safe("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
    assert_eq!(
        terminal_safe("two\nlines\tand a tab"),
        "two\nlines\tand a tab"
    );
    assert!(matches!(
        terminal_safe("Saisie à Anvers"),
        std::borrow::Cow::Borrowed(_)
    ));
}

/// `--version` states the formats this build really speaks and stores.
#[test]
fn long_version_names_the_real_formats() {
    let want = format!(
        "{}\nwire format {}\nstore format {}",
        env!("CARGO_PKG_VERSION"),
        liaison_protocol::codec::WIRE_VERSION,
        crate::store::STORE_FORMAT
    );
    assert_eq!(super::args::LONG_VERSION, want);
}
