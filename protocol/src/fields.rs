//! The exact rules for the text fields of wire objects.
//!
//! These are consensus rules: a node refuses a control event, a descriptor, a roster or a
//! message content whose fields break them, so two implementations that disagree on one name
//! would disagree on the state of a group. WIRE.md §2.3 states the same rules in prose; every
//! check below is the only place its rule is implemented.
//!
//! | field                         | rule                                                  |
//! |-------------------------------|-------------------------------------------------------|
//! | node name                     | [`check_node_name`]: 1–64 bytes of `a-z 0-9 . - _`, first a letter or digit |
//! | group name, organisation, federation | [`check_printable`], 1–128 bytes                |
//! | officer name                  | [`check_printable`], 1–128 bytes                      |
//! | address                       | [`check_address`]: `HOST:PORT`, at most 256 bytes     |
//! | country                       | [`check_country`]: two ASCII capital letters          |

/// A text field that breaks its rule: which rule, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FieldError(pub &'static str);

/// The longest node name, in bytes.
pub const MAX_NODE_NAME_LEN: usize = 64;
/// The longest group name, organisation, federation name or officer name, in bytes.
pub const MAX_TEXT_LEN: usize = 128;
/// The longest address, in bytes.
pub const MAX_ADDRESS_LEN: usize = 256;

/// A node name: 1 to [`MAX_NODE_NAME_LEN`] bytes, each an ASCII lowercase letter, digit, `.`,
/// `-` or `_`, the first a letter or digit. Names compare bytewise; with only lowercase letters
/// allowed, two names that look alike are equal.
pub fn check_node_name(name: &str) -> Result<(), FieldError> {
    const RULE: &str =
        "a node name is 1 to 64 of a-z, 0-9, '.', '-', '_', starting with a letter or digit";
    let bytes = name.as_bytes();
    let Some(first) = bytes.first() else {
        return Err(FieldError(RULE));
    };
    if bytes.len() > MAX_NODE_NAME_LEN
        || !(first.is_ascii_lowercase() || first.is_ascii_digit())
        || !bytes.iter().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        })
    {
        return Err(FieldError(RULE));
    }
    Ok(())
}

/// Whether `c` is refused in printable text: the C0 and C1 control characters and DEL
/// (Unicode category Cc: U+0000–U+001F, U+007F–U+009F), the line and paragraph separators
/// U+2028 and U+2029, and the bidirectional formatting characters U+061C, U+200E, U+200F,
/// U+202A–U+202E and U+2066–U+2069 (which can make text display in another order than it
/// is stored).
pub fn is_refused_char(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{2028}' | '\u{2029}'
        | '\u{61c}' | '\u{200e}' | '\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}')
}

/// Printable text of `min` to `max` bytes (UTF-8 is already guaranteed by the codec): no
/// character for which [`is_refused_char`] holds.
pub fn check_printable(text: &str, min: usize, max: usize) -> Result<(), FieldError> {
    if text.len() < min || text.len() > max {
        return Err(FieldError("text length out of range"));
    }
    if text.chars().any(is_refused_char) {
        return Err(FieldError(
            "text holds a control, line-separator or bidirectional formatting character",
        ));
    }
    Ok(())
}

/// A group name: printable text of 1 to [`MAX_TEXT_LEN`] bytes.
pub fn check_group_name(name: &str) -> Result<(), FieldError> {
    check_printable(name, 1, MAX_TEXT_LEN)
        .map_err(|_| FieldError("a group name is 1 to 128 bytes of printable text"))
}

/// An officer name in a message's content: printable text of 1 to [`MAX_TEXT_LEN`] bytes.
pub fn check_officer_name(name: &str) -> Result<(), FieldError> {
    check_printable(name, 1, MAX_TEXT_LEN)
        .map_err(|_| FieldError("an officer name is 1 to 128 bytes of printable text"))
}

/// A country: exactly two ASCII capital letters (the shape of an ISO 3166-1 alpha-2 code; the
/// code itself is not checked against the list).
pub fn check_country(country: &str) -> Result<(), FieldError> {
    let b = country.as_bytes();
    if b.len() == 2 && b.iter().all(u8::is_ascii_uppercase) {
        Ok(())
    } else {
        Err(FieldError(
            "a country is two ASCII capital letters (ISO 3166-1 alpha-2)",
        ))
    }
}

/// An address peers dial: `HOST:PORT`, at most [`MAX_ADDRESS_LEN`] bytes, where
///
/// - PORT is 1 to 5 ASCII digits without a leading zero, with a value from 1 to 65535;
/// - HOST is one of
///   - an IPv4 address: four decimal numbers 0–255 without leading zeros (a lone `0` is
///     allowed), separated by `.`;
///   - an IPv6 address in the text form of RFC 4291 §2.2 (no zone index) between `[` and `]`;
///   - a DNS name: 1 to 253 bytes of labels separated by `.` (no trailing dot), each label 1
///     to 63 ASCII letters, digits or `-`, not starting or ending with `-`, and the last label
///     not all digits (so that a host that looks numeric must be a valid IPv4 address).
pub fn check_address(address: &str) -> Result<(), FieldError> {
    const RULE: FieldError = FieldError(
        "an address is HOST:PORT with HOST an IPv4 address, [IPv6] or a DNS name and PORT 1-65535",
    );
    if address.len() > MAX_ADDRESS_LEN {
        return Err(RULE);
    }
    let (host, port) = address.rsplit_once(':').ok_or(RULE)?;
    check_port(port).ok_or(RULE)?;
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or(RULE)?;
        return check_ipv6(inner).ok_or(RULE);
    }
    if check_ipv4(host).is_some() || check_dns_name(host).is_some() {
        Ok(())
    } else {
        Err(RULE)
    }
}

/// Splits an address that passes [`check_address`] into its host (without brackets) and port.
pub fn split_address(address: &str) -> Option<(&str, u16)> {
    check_address(address).ok()?;
    let (host, port) = address.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Some((host, port.parse().ok()?))
}

fn check_port(port: &str) -> Option<()> {
    let b = port.as_bytes();
    if b.is_empty() || b.len() > 5 || b[0] == b'0' || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value: u32 = port.parse().ok()?;
    (1..=65_535).contains(&value).then_some(())
}

fn check_ipv4(host: &str) -> Option<()> {
    let parts: Vec<&str> = host.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    for part in parts {
        let b = part.as_bytes();
        if b.is_empty() || b.len() > 3 || !b.iter().all(u8::is_ascii_digit) {
            return None;
        }
        if b.len() > 1 && b[0] == b'0' {
            return None;
        }
        let value: u32 = part.parse().ok()?;
        if value > 255 {
            return None;
        }
    }
    Some(())
}

fn check_ipv6(host: &str) -> Option<()> {
    // RFC 4291 §2.2: eight groups of 1-4 hex digits, `::` at most once for a run of zero
    // groups, the last 32 bits optionally as an IPv4 address. No zone index.
    let (head, tail, compressed) = match host.find("::") {
        Some(i) => (&host[..i], &host[i + 2..], true),
        None => (host, "", false),
    };
    if compressed && tail.contains("::") {
        return None;
    }
    let groups = |s: &str, last_may_be_v4: bool| -> Option<usize> {
        if s.is_empty() {
            return Some(0);
        }
        let parts: Vec<&str> = s.split(':').collect();
        let mut count = 0;
        for (i, part) in parts.iter().enumerate() {
            if last_may_be_v4 && i == parts.len() - 1 && part.contains('.') {
                check_ipv4(part)?;
                count += 2;
                continue;
            }
            let b = part.as_bytes();
            if b.is_empty() || b.len() > 4 || !b.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            count += 1;
        }
        Some(count)
    };
    if compressed {
        let n = groups(head, false)? + groups(tail, true)?;
        (n <= 7).then_some(())
    } else {
        (groups(head, true)? == 8).then_some(())
    }
}

fn check_dns_name(host: &str) -> Option<()> {
    if host.is_empty() || host.len() > 253 {
        return None;
    }
    let labels: Vec<&str> = host.split('.').collect();
    for label in &labels {
        let b = label.as_bytes();
        if b.is_empty()
            || b.len() > 63
            || b[0] == b'-'
            || b[b.len() - 1] == b'-'
            || !b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        {
            return None;
        }
    }
    let last = labels.last()?;
    if last.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names() {
        for ok in [
            "rilo-wca",
            "customs-nl",
            "a",
            "0",
            "x.y_z-1",
            &"a".repeat(64),
        ] {
            assert!(check_node_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Customs-NL",
            "-lead",
            ".lead",
            "_lead",
            "two words",
            "caf\u{e9}",
            "a\u{0}",
            &"a".repeat(65),
        ] {
            assert!(check_node_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn printable_text() {
        assert!(check_group_name("Operation Heritage 2026").is_ok());
        assert!(check_group_name("Opération «Patrimoine» — 2026 🏺").is_ok());
        for bad in [
            "",
            "tab\there",
            "new\nline",
            "esc\u{1b}[31m",
            "del\u{7f}",
            "c1\u{85}",
            "ls\u{2028}",
            "rlo\u{202e}txt",
            "lri\u{2066}",
            "alm\u{61c}",
        ] {
            assert!(check_group_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_group_name(&"é".repeat(64)).is_ok());
        assert!(check_group_name(&"é".repeat(65)).is_err());
    }

    #[test]
    fn addresses() {
        for ok in [
            "192.0.2.10:4433",
            "0.0.0.0:1",
            "255.255.255.255:65535",
            "[::1]:7400",
            "[2001:db8::7]:7400",
            "[::ffff:192.0.2.1]:7400",
            "[1:2:3:4:5:6:7:8]:1",
            "[1:2:3:4:5:6:1.2.3.4]:1",
            "node.customs.example:7400",
            "localhost:7400",
            "a-b.c9:80",
            "1.2.3.example:80",
        ] {
            assert!(check_address(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "192.0.2.10",
            "192.0.2.10:",
            "192.0.2.10:0",
            "192.0.2.10:65536",
            "192.0.2.10:080",
            "192.0.2.10:+80",
            "192.0.2.010:80",
            "256.0.0.1:80",
            "1.2.3:80",
            "1.2.3.4.5:80",
            "::1:7400",
            "[::1%eth0]:7400",
            "[1:2:3:4:5:6:7:8:9]:1",
            "[1::2::3]:1",
            "[12345::]:1",
            "-host:80",
            "host-:80",
            "ho_st:80",
            "host.:80",
            ".host:80",
            "a..b:80",
            "123:80",
            "1.2.3.400:80",
            "h\u{e9}st:80",
        ] {
            assert!(check_address(bad).is_err(), "{bad:?}");
        }
        assert!(check_address(&format!("{}:1", "a".repeat(63))).is_ok());
        assert!(check_address(&format!("{}:1", "a".repeat(64))).is_err());
        assert_eq!(split_address("[::1]:7400"), Some(("::1", 7400)));
        assert_eq!(split_address("h.example:80"), Some(("h.example", 80)));
    }

    #[test]
    fn countries() {
        assert!(check_country("NL").is_ok());
        for bad in ["", "N", "nl", "NLD", "N1", "ÑL"] {
            assert!(check_country(bad).is_err(), "{bad}");
        }
    }
}
