//! Coded values shared by the record kinds: each a string in its canonical form, checked by
//! [`Check`] against its standard (format, check digit, list).
//!
//! They are plain strings on the wire and in JSON, so that a value that fails a check can
//! still be carried back to the person who typed it, with the reason.

use serde::{Deserialize, Serialize};

use super::check::{self, Check, Checker};

macro_rules! code {
    ($(#[$doc:meta])* $name:ident, $rule:expr, $pattern:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
        #[serde(transparent)]
        pub struct $name(#[schemars(regex(pattern = $pattern))] pub String);

        impl $name {
            /// The value as written.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_owned())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Check for $name {
            fn check(&self, c: &mut Checker) {
                let rule: fn(&str) -> Result<(), String> = $rule;
                if let Err(reason) = rule(&self.0) {
                    c.fail(reason);
                }
            }
        }
    };
}

code!(
    /// An ISO 3166-1 alpha-2 country code in use (`FR`), from the maintained list of the
    /// `rust_iso3166` crate.
    Country,
    check::country,
    "^[A-Z]{2}$"
);
code!(
    /// An active ISO 4217 currency code (`EUR`), from the maintained list of the
    /// `rust_iso4217` crate.
    Currency,
    check::currency,
    "^[A-Z]{3}$"
);
code!(
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    check::date,
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
);
code!(
    /// A non-negative decimal number written plainly (`1250.75`), exact on the wire and in
    /// JSON.
    Decimal,
    check::decimal,
    "^(0|[1-9][0-9]{0,14})(\\.[0-9]{1,6})?$"
);
code!(
    /// An ISO 6346 freight container number with its check digit (`CSQU3054383`).
    ContainerNumber,
    check::container_number,
    "^[A-Z]{3}[UJZ][0-9]{7}$"
);
code!(
    /// An IMO ship identification number: seven digits, the last a check digit (`9074729`).
    ImoNumber,
    check::imo_number,
    "^[0-9]{7}$"
);
code!(
    /// An air waybill number: airline prefix, `-`, serial and check digit (`020-12345675`).
    AirWaybill,
    check::air_waybill,
    "^[0-9]{3}-[0-9]{8}$"
);
code!(
    /// A Harmonized System code of 4, 6, 8 or 10 digits (`970600`).
    HsCode,
    check::hs_code,
    "^[0-9]{4}([0-9]{2}){0,3}$"
);
code!(
    /// A UN/LOCODE (`FRLEH`): a country code and three letters or digits 2-9.
    Locode,
    check::locode,
    "^[A-Z]{2}[A-Z2-9]{3}$"
);

code!(
    /// A message id, 64 lowercase hex characters: a link to another message of the group.
    MessageRef,
    |s| {
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            Ok(())
        } else {
            Err("expected a message id: 64 lowercase hex characters".into())
        }
    },
    "^[0-9a-f]{64}$"
);

impl MessageRef {
    /// The message id it names, if it is well formed.
    pub fn id(&self) -> Option<crate::message::MessageId> {
        self.0.parse().ok()
    }
}

impl From<crate::message::MessageId> for MessageRef {
    fn from(id: crate::message::MessageId) -> Self {
        MessageRef(id.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_fails_at_its_own_position() {
        let mut c = Checker::new();
        c.field("country", &Country::from("fr"));
        let errors = c.finish().expect_err("errors");
        assert_eq!(errors[0].pointer, "/country");
    }
}
