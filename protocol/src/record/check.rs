//! The checks behind [`super::Record::validate`]: a [`Checker`] that walks a record and
//! collects [`FieldError`]s with JSON pointers, and the rules for coded identifiers (ISO 6346
//! container numbers, IMO numbers, air waybill numbers, HS codes, ISO 3166-1 countries, ISO 4217
//! currencies, UN/LOCODEs, calendar dates and decimals).
//!
//! Every rule here is pure and total: it never panics, whatever the input.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Most errors one validation reports; beyond, the rest are summed up in one last error.
pub const MAX_ERRORS: usize = 64;

/// One thing wrong with a record: where (a JSON pointer, RFC 6901, into the record's JSON
/// form) and why.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FieldError {
    /// The field, as a JSON pointer from the record's root (`/items/0/hs_code`); empty for the
    /// record as a whole.
    pub pointer: String,
    /// What is wrong with it, for the person who filled it in.
    pub reason: String,
}

impl FieldError {
    /// An error at `pointer`.
    pub fn new(pointer: impl Into<String>, reason: impl Into<String>) -> FieldError {
        FieldError {
            pointer: pointer.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pointer.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{}: {}", self.pointer, self.reason)
        }
    }
}

/// A part of something that can be checked field by field.
pub trait Check {
    /// Adds every problem of `self` to `c`, at `c`'s current position.
    fn check(&self, c: &mut Checker);
}

/// Walks a value and collects errors at JSON pointers.
#[derive(Debug, Default)]
pub struct Checker {
    path: Vec<String>,
    errors: Vec<FieldError>,
    dropped: usize,
}

impl Checker {
    /// A checker at the root.
    pub fn new() -> Checker {
        Checker::default()
    }

    /// The errors found, if any.
    pub fn finish(mut self) -> Result<(), Vec<FieldError>> {
        if self.dropped > 0 {
            self.errors.push(FieldError::new(
                "",
                format!("and {} more errors", self.dropped),
            ));
        }
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.errors)
        }
    }

    /// The JSON pointer of the current position.
    pub fn pointer(&self) -> String {
        let mut out = String::new();
        for seg in &self.path {
            out.push('/');
            for ch in seg.chars() {
                match ch {
                    '~' => out.push_str("~0"),
                    '/' => out.push_str("~1"),
                    c => out.push(c),
                }
            }
        }
        out
    }

    /// Records an error at the current position.
    pub fn fail(&mut self, reason: impl Into<String>) {
        if self.errors.len() >= MAX_ERRORS {
            self.dropped += 1;
            return;
        }
        let pointer = self.pointer();
        self.errors.push(FieldError::new(pointer, reason));
    }

    /// Runs `f` one level down, at `segment`.
    pub fn at(&mut self, segment: impl fmt::Display, f: impl FnOnce(&mut Checker)) {
        self.path.push(segment.to_string());
        f(self);
        self.path.pop();
    }

    /// Checks `value` at field `name`.
    pub fn field<T: Check + ?Sized>(&mut self, name: &str, value: &T) {
        self.at(name, |c| value.check(c));
    }

    /// Checks `value` at field `name` if it is present.
    pub fn optional<T: Check>(&mut self, name: &str, value: &Option<T>) {
        if let Some(v) = value {
            self.field(name, v);
        }
    }

    /// Required text of 1 to `max` characters, without control characters other than line
    /// breaks and tabs.
    pub fn text(&mut self, name: &str, value: &str, max: usize) {
        self.at(name, |c| c.text_here(value, 1, max));
    }

    /// Optional text: if present, 1 to `max` characters.
    pub fn optional_text(&mut self, name: &str, value: &Option<String>, max: usize) {
        if let Some(v) = value {
            self.text(name, v, max);
        }
    }

    /// Text rules at the current position.
    pub fn text_here(&mut self, value: &str, min: usize, max: usize) {
        let len = value.chars().count();
        if len < min || value.trim().is_empty() && min > 0 {
            self.fail("required: must not be empty");
        } else if len > max {
            self.fail(format!("at most {max} characters (has {len})"));
        } else if value
            .chars()
            .any(|ch| ch.is_control() && !matches!(ch, '\n' | '\r' | '\t'))
        {
            self.fail("must not contain control characters");
        }
    }

    /// A list of `min` to `max` items, each checked with `each`.
    pub fn list<T>(
        &mut self,
        name: &str,
        items: &[T],
        min: usize,
        max: usize,
        mut each: impl FnMut(&mut Checker, &T),
    ) {
        self.at(name, |c| {
            if items.len() < min {
                c.fail(if min == 1 {
                    "required: at least one entry".to_owned()
                } else {
                    format!("at least {min} entries")
                });
            } else if items.len() > max {
                c.fail(format!("at most {max} entries (has {})", items.len()));
                return;
            }
            for (i, item) in items.iter().enumerate() {
                c.at(i, |c| each(c, item));
            }
        });
    }

    /// A list of items that check themselves.
    pub fn items<T: Check>(&mut self, name: &str, items: &[T], min: usize, max: usize) {
        self.list(name, items, min, max, |c, item| item.check(c));
    }

    /// A list of free texts, each 1 to `len` characters.
    pub fn texts(&mut self, name: &str, items: &[String], min: usize, max: usize, len: usize) {
        self.list(name, items, min, max, |c, item| c.text_here(item, 1, len));
    }
}

impl Check for String {
    /// Free text of at most [`super::TEXT_MAX`] characters (fields with other limits use
    /// [`Checker::text`]).
    fn check(&self, c: &mut Checker) {
        c.text_here(self, 1, super::TEXT_MAX);
    }
}

// ----- coded identifiers -------------------------------------------------------------------------

/// The ISO 6346 value of a letter: A = 10, counting up and skipping multiples of 11.
fn iso6346_letter(ch: u8) -> Option<u32> {
    if !ch.is_ascii_uppercase() {
        return None;
    }
    let mut value = 10;
    for letter in b'A'..ch {
        let _ = letter;
        value += 1;
        if value % 11 == 0 {
            value += 1;
        }
    }
    Some(value)
}

/// Why `s` is not an ISO 6346 container number (`CSQU3054383`: owner code, category U/J/Z,
/// six-digit serial, check digit), if it is not.
pub fn container_number(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    let form =
        "expected an ISO 6346 container number: 3 letters, U, J or Z, 7 digits (CSQU3054383)";
    if b.len() != 11
        || !b[..4].iter().all(u8::is_ascii_uppercase)
        || !b[4..].iter().all(u8::is_ascii_digit)
    {
        return Err(form.into());
    }
    if !matches!(b[3], b'U' | b'J' | b'Z') {
        return Err("the fourth letter (equipment category) must be U, J or Z".into());
    }
    let mut sum = 0u32;
    for (i, &ch) in b[..10].iter().enumerate() {
        let v = if i < 4 {
            iso6346_letter(ch).ok_or_else(|| form.to_owned())?
        } else {
            u32::from(ch - b'0')
        };
        sum += v << i;
    }
    let check = sum % 11 % 10;
    let given = u32::from(b[10] - b'0');
    if check != given {
        return Err(format!("check digit is {check}, not {given}"));
    }
    Ok(())
}

/// Why `s` is not an IMO ship number (seven digits, the last a check digit), if it is not.
pub fn imo_number(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    if b.len() != 7 || !b.iter().all(u8::is_ascii_digit) {
        return Err("expected an IMO number: 7 digits (9074729)".into());
    }
    let sum: u32 = b[..6]
        .iter()
        .zip((2..=7).rev())
        .map(|(&d, w)| u32::from(d - b'0') * w)
        .sum();
    let check = sum % 10;
    let given = u32::from(b[6] - b'0');
    if check != given {
        return Err(format!("check digit is {check}, not {given}"));
    }
    Ok(())
}

/// Why `s` is not an air waybill number (`020-12345675`: airline prefix, serial of 7 digits
/// and a check digit, the serial modulo 7), if it is not.
pub fn air_waybill(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    if b.len() != 12
        || b[3] != b'-'
        || !b[..3].iter().all(u8::is_ascii_digit)
        || !b[4..].iter().all(u8::is_ascii_digit)
    {
        return Err(
            "expected an air waybill number: 3 digits, '-', 8 digits (020-12345675)".into(),
        );
    }
    let serial = b[4..11]
        .iter()
        .fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
    let check = serial % 7;
    let given = u32::from(b[11] - b'0');
    if check != given {
        return Err(format!("check digit is {check}, not {given}"));
    }
    Ok(())
}

/// Why `s` is not a Harmonized System code, if it is not: 4, 6, 8 or 10 digits without dots,
/// of an HS chapter (01 to 97, except the reserved 77) and a heading other than 00.
pub fn hs_code(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    if !matches!(b.len(), 4 | 6 | 8 | 10) || !b.iter().all(u8::is_ascii_digit) {
        return Err(
            "expected an HS code: 4, 6, 8 or 10 digits without dots or spaces (970600)".into(),
        );
    }
    let chapter = u32::from(b[0] - b'0') * 10 + u32::from(b[1] - b'0');
    if !(1..=97).contains(&chapter) || chapter == 77 {
        return Err(format!(
            "{chapter:02} is not an HS chapter (01 to 97, 77 reserved)"
        ));
    }
    if &b[2..4] == b"00" {
        return Err("heading 00 does not exist".into());
    }
    Ok(())
}

/// Why `s` is not an ISO 3166-1 alpha-2 country code in use, if it is not.
pub fn country(s: &str) -> Result<(), String> {
    if s.len() != 2 || !s.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err("expected an ISO 3166-1 alpha-2 country code: 2 capital letters (FR)".into());
    }
    match rust_iso3166::from_alpha2(s) {
        Some(c) if c.alpha2 == s => Ok(()),
        _ => Err(format!("{s} is not an ISO 3166-1 country code")),
    }
}

/// Why `s` is not an active ISO 4217 currency code, if it is not.
pub fn currency(s: &str) -> Result<(), String> {
    if s.len() != 3 || !s.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err("expected an ISO 4217 currency code: 3 capital letters (EUR)".into());
    }
    if rust_iso4217::ALL_ACTIVE_CODE.contains(&s) {
        Ok(())
    } else if rust_iso4217::ALL_HISTORIC_CODE.contains(&s) {
        Err(format!("{s} is no longer an ISO 4217 currency"))
    } else {
        Err(format!("{s} is not an ISO 4217 currency code"))
    }
}

/// Why `s` is not a UN/LOCODE (`FRLEH`: a country code and three letters or digits 2 to 9),
/// if it is not.
pub fn locode(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    if b.len() != 5
        || !b[2..]
            .iter()
            .all(|&ch| ch.is_ascii_uppercase() || (b'2'..=b'9').contains(&ch))
    {
        return Err(
            "expected a UN/LOCODE: country code and 3 letters or digits 2-9, no space (FRLEH)"
                .into(),
        );
    }
    country(&s[..2]).map_err(|e| format!("UN/LOCODE country: {e}"))
}

/// Why `s` is not a calendar date `YYYY-MM-DD` (years 1000 to 9999), if it is not.
pub fn date(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    let form = "expected a date YYYY-MM-DD (2026-01-31)";
    if b.len() != 10
        || b[4] != b'-'
        || b[7] != b'-'
        || !b
            .iter()
            .enumerate()
            .all(|(i, ch)| i == 4 || i == 7 || ch.is_ascii_digit())
    {
        return Err(form.into());
    }
    let num =
        |r: std::ops::Range<usize>| b[r].iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
    let (year, month, day) = (num(0..4), num(5..7), num(8..10));
    if year < 1000 {
        return Err("the year must have four digits from 1000".into());
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(format!("month {month:02} does not exist")),
    };
    if day == 0 || day > days {
        return Err(format!("{year}-{month:02} has no day {day:02}"));
    }
    Ok(())
}

/// Why `s` is not a non-negative decimal number written plainly (`12`, `0.5`, `1250.75`: at
/// most 15 digits before the point and 6 after), if it is not.
pub fn decimal(s: &str) -> Result<(), String> {
    let form = "expected a number such as 12 or 1250.75 (digits, one optional '.', no sign)";
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return Err(form.into());
    }
    if int.len() > 15 {
        return Err("at most 15 digits before the decimal point".into());
    }
    if int.len() > 1 && int.starts_with('0') {
        return Err("no leading zeros".into());
    }
    if let Some(f) = frac {
        if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
            return Err(form.into());
        }
        if f.len() > 6 {
            return Err("at most 6 digits after the decimal point".into());
        }
    }
    Ok(())
}

/// Why `s` is not a reference of at most `max` characters made of capital letters, digits
/// and `-`, `/`, `.` and single spaces (transport document numbers, flight and voyage
/// numbers), if it is not.
pub fn reference(s: &str, max: usize) -> Result<(), String> {
    if s.is_empty() {
        return Err("required: must not be empty".into());
    }
    if s.len() > max {
        return Err(format!("at most {max} characters"));
    }
    if !s.bytes().all(|b| {
        b.is_ascii_uppercase() || b.is_ascii_digit() || matches!(b, b'-' | b'/' | b'.' | b' ')
    }) || s.starts_with(' ')
        || s.ends_with(' ')
        || s.contains("  ")
    {
        return Err("capital letters, digits, '-', '/', '.' and single inner spaces only".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso6346_letter_values() {
        let values: Vec<u32> = (b'A'..=b'Z').filter_map(iso6346_letter).collect();
        assert_eq!(
            values,
            [
                10, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
                34, 35, 36, 37, 38
            ]
        );
    }

    #[test]
    fn known_good_identifiers() {
        for c in ["CSQU3054383", "MSKU9070323", "TGHU6008984"] {
            assert_eq!(container_number(c), Ok(()), "{c}");
        }
        for i in ["9074729", "9321483", "8814275"] {
            assert_eq!(imo_number(i), Ok(()), "{i}");
        }
        assert_eq!(air_waybill("020-12345675"), Ok(()));
        assert_eq!(hs_code("970600"), Ok(()));
        assert_eq!(hs_code("2402200000"), Ok(()));
        assert_eq!(country("FR"), Ok(()));
        assert_eq!(currency("EUR"), Ok(()));
        assert_eq!(locode("FRLEH"), Ok(()));
        assert_eq!(date("2024-02-29"), Ok(()));
        assert_eq!(decimal("1250.75"), Ok(()));
        assert_eq!(decimal("0"), Ok(()));
    }

    #[test]
    fn pointers_escape() {
        let mut c = Checker::new();
        c.at("a/b", |c| c.at("m~n", |c| c.at(3, |c| c.fail("x"))));
        assert_eq!(c.finish().expect_err("errors")[0].pointer, "/a~1b/m~0n/3");
    }

    #[test]
    fn errors_are_bounded() {
        let mut c = Checker::new();
        for _ in 0..1000 {
            c.fail("x");
        }
        let errors = c.finish().expect_err("errors");
        assert_eq!(errors.len(), MAX_ERRORS + 1);
        assert_eq!(
            errors[MAX_ERRORS].reason,
            format!("and {} more errors", 1000 - MAX_ERRORS)
        );
    }
}
