//! The workspace's languages: one Fluent catalogue per language (`locales/*.ftl`, compiled
//! into the binary), chosen from the officer's cookie, else from the browser's
//! `Accept-Language`, else English.
//!
//! Every text a page shows goes through [`Lang::t`] or [`Lang::t_args`] with a literal key;
//! a unit test reads the sources for those keys and fails when one is missing in any
//! language, and another when the catalogues do not hold the same keys. Dates are shown in
//! UTC with the language's own month names and pattern; numbers with its digit grouping.

use std::sync::OnceLock;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use unic_langid::LanguageIdentifier;

/// The languages of the workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// English.
    En,
    /// French.
    Fr,
    /// Spanish.
    Es,
    /// Arabic (right to left).
    Ar,
}

/// Every language, in the order the switcher shows them.
pub const ALL: [Lang; 4] = [Lang::En, Lang::Fr, Lang::Es, Lang::Ar];

const SOURCES: [(Lang, &str); 4] = [
    (Lang::En, include_str!("locales/en.ftl")),
    (Lang::Fr, include_str!("locales/fr.ftl")),
    (Lang::Es, include_str!("locales/es.ftl")),
    (Lang::Ar, include_str!("locales/ar.ftl")),
];

type Bundle = FluentBundle<FluentResource>;

fn bundles() -> &'static [Bundle; 4] {
    static BUNDLES: OnceLock<[Bundle; 4]> = OnceLock::new();
    BUNDLES.get_or_init(|| SOURCES.map(|(lang, text)| bundle(lang, text)))
}

fn bundle(lang: Lang, text: &str) -> Bundle {
    let id: LanguageIdentifier = lang.code().parse().unwrap_or_default();
    let mut bundle = FluentBundle::new_concurrent(vec![id]);
    // The page sets `dir` on its elements; Unicode isolation marks would show up in inputs.
    bundle.set_use_isolating(false);
    let resource = match FluentResource::try_new(text.to_owned()) {
        Ok(r) => r,
        Err((r, errors)) => {
            tracing::error!(lang = lang.code(), ?errors, "message catalogue has errors");
            r
        }
    };
    if let Err(errors) = bundle.add_resource(resource) {
        tracing::error!(lang = lang.code(), ?errors, "message catalogue has errors");
    }
    bundle
}

impl Lang {
    /// The BCP 47 code (`en`, `fr`, `es`, `ar`).
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Fr => "fr",
            Lang::Es => "es",
            Lang::Ar => "ar",
        }
    }

    /// The language's own name, for the switcher.
    pub fn native_name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Fr => "Français",
            Lang::Es => "Español",
            Lang::Ar => "العربية",
        }
    }

    /// `rtl` for Arabic, `ltr` otherwise.
    pub fn dir(self) -> &'static str {
        match self {
            Lang::Ar => "rtl",
            _ => "ltr",
        }
    }

    /// The language of a code, if the workspace has it.
    pub fn from_code(code: &str) -> Option<Lang> {
        ALL.into_iter().find(|l| l.code() == code)
    }

    /// The best language for an `Accept-Language` header; English when none fits.
    pub fn negotiate(accept_language: &str) -> Lang {
        let requested = fluent_langneg::accepted_languages::parse(accept_language);
        let available: Vec<LanguageIdentifier> =
            ALL.iter().filter_map(|l| l.code().parse().ok()).collect();
        let default: LanguageIdentifier = "en".parse().unwrap_or_default();
        let chosen = fluent_langneg::negotiate_languages(
            &requested,
            &available,
            Some(&default),
            fluent_langneg::NegotiationStrategy::Lookup,
        );
        chosen
            .first()
            .and_then(|id| Lang::from_code(id.language.as_str()))
            .unwrap_or(Lang::En)
    }

    fn bundle(self) -> &'static Bundle {
        let all = bundles();
        match self {
            Lang::En => &all[0],
            Lang::Fr => &all[1],
            Lang::Es => &all[2],
            Lang::Ar => &all[3],
        }
    }

    /// The text of `key`. A missing key (which the catalogue test prevents) shows the key.
    pub fn t(self, key: &str) -> String {
        self.format(key, None)
    }

    /// The text of `key`, or `fallback` where the catalogue has none: for texts named after a
    /// record schema (`record-field-*`, `record-choice-*`), whose every key a test checks, so
    /// that a field a newer schema adds still shows, in English, until it is translated.
    pub fn t_or(self, key: &str, fallback: &str) -> String {
        if self.has(key) {
            self.format(key, None)
        } else {
            fallback.to_owned()
        }
    }

    /// Whether the catalogue has a text for `key`.
    pub fn has(self, key: &str) -> bool {
        self.bundle().has_message(key)
    }

    /// The text of `key` with arguments `(name, value)`.
    pub fn t_args(self, key: &str, args: &[(&str, &str)]) -> String {
        let mut fluent = FluentArgs::new();
        for (name, value) in args {
            fluent.set(*name, FluentValue::from(*value));
        }
        self.format(key, Some(&fluent))
    }

    fn format(self, key: &str, args: Option<&FluentArgs<'_>>) -> String {
        let bundle = self.bundle();
        let Some(pattern) = bundle.get_message(key).and_then(|m| m.value()) else {
            tracing::warn!(
                lang = self.code(),
                key,
                "missing text in the message catalogue"
            );
            return key.to_owned();
        };
        let mut errors = Vec::new();
        let text = bundle.format_pattern(pattern, args, &mut errors);
        if !errors.is_empty() {
            tracing::warn!(
                lang = self.code(),
                key,
                ?errors,
                "text could not be formatted"
            );
        }
        text.into_owned()
    }

    /// A time (ms since the Unix epoch) as this language writes a date and time, in UTC.
    pub fn datetime(self, ms: u64) -> String {
        let (y, m, d, hh, mm) = civil(ms);
        let month = self.t(MONTHS[usize::from(m - 1)]);
        self.t_args(
            "format-datetime",
            &[
                ("day", &d.to_string()),
                ("month", &month),
                ("year", &y.to_string()),
                ("time", &format!("{hh:02}:{mm:02}")),
            ],
        )
    }

    /// A count with this language's digit grouping.
    pub fn number(self, n: u64) -> String {
        let sep = self.t("format-group-separator");
        let digits = n.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push_str(&sep);
            }
            out.push(c);
        }
        out
    }
}

const MONTHS: [&str; 12] = [
    "month-1", "month-2", "month-3", "month-4", "month-5", "month-6", "month-7", "month-8",
    "month-9", "month-10", "month-11", "month-12",
];

/// Year, month (1-12), day, hour and minute of a UTC time in ms since the Unix epoch
/// (H. Hinnant's `civil_from_days`).
pub fn civil(ms: u64) -> (i64, u8, u8, u8, u8) {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let narrow = |v: i64| u8::try_from(v).unwrap_or(0);
    (
        y,
        narrow(m),
        narrow(d),
        narrow(rem / 3600),
        narrow(rem % 3600 / 60),
    )
}

/// Milliseconds since the Unix epoch at 00:00 UTC of a `YYYY-MM-DD` date.
pub fn parse_date(text: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339(&format!("{}T00:00:00Z", text.trim())).ok()?;
    let ms = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
    u64::try_from(ms).ok()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;

    fn keys(text: &str) -> BTreeSet<String> {
        let resource = FluentResource::try_new(text.to_owned()).expect("catalogue parses");
        resource
            .entries()
            .filter_map(|e| match e {
                fluent_syntax::ast::Entry::Message(m) => Some(m.id.name.to_owned()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn every_language_has_the_same_keys() {
        let english = keys(SOURCES[0].1);
        assert!(english.len() > 50, "the English catalogue is nearly empty");
        for (lang, text) in SOURCES {
            let these = keys(text);
            let missing: Vec<_> = english.difference(&these).collect();
            let extra: Vec<_> = these.difference(&english).collect();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "{}: missing {missing:?}, not in English {extra:?}",
                lang.code()
            );
        }
    }

    /// Every literal key the web code passes to `t(..)` / `t_args(..)` exists in every
    /// language.
    #[test]
    fn every_key_used_in_the_code_exists_in_every_language() {
        let mut used = BTreeSet::new();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web");
        let mut dirs = vec![root];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("read src/web") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).expect("read source");
                    for marker in [".t(\"", ".t_args(\"", "key: \""] {
                        for (at, _) in text.match_indices(marker) {
                            let rest = &text[at + marker.len()..];
                            if let Some(end) = rest.find('"') {
                                used.insert(rest[..end].to_owned());
                            }
                        }
                    }
                }
            }
        }
        used.extend(MONTHS.iter().map(|m| (*m).to_owned()));
        assert!(
            used.len() > 50,
            "found only {} keys in the sources",
            used.len()
        );
        for (lang, text) in SOURCES {
            let these = keys(text);
            let missing: Vec<_> = used.iter().filter(|k| !these.contains(*k)).collect();
            assert!(
                missing.is_empty(),
                "{}: missing keys {missing:?}",
                lang.code()
            );
        }
    }

    #[test]
    fn negotiation_and_formats() {
        assert_eq!(Lang::negotiate("fr-CH, fr;q=0.9, en;q=0.8"), Lang::Fr);
        assert_eq!(Lang::negotiate("ar-MA"), Lang::Ar);
        assert_eq!(Lang::negotiate("de-DE"), Lang::En);
        assert_eq!(Lang::Ar.dir(), "rtl");
        assert_eq!(civil(0), (1970, 1, 1, 0, 0));
        // 2026-03-01T13:05:00Z
        assert_eq!(civil(1_772_370_300_000), (2026, 3, 1, 13, 5));
        assert_eq!(parse_date("2026-03-01"), Some(1_772_323_200_000));
        assert_eq!(parse_date("2026-13-01"), None);
        assert_eq!(Lang::En.number(1_234_567), "1,234,567");
        assert_eq!(
            Lang::En.datetime(1_772_370_300_000),
            "1 March 2026, 13:05 UTC"
        );
        assert!(Lang::Fr.datetime(1_772_370_300_000).contains("mars"));
    }
}
