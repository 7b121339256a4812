//! Validated domain names, kept absolute and lower-case.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// The longest name on the wire (RFC 1035 section 2.3.4), length octets included.
const MAX_WIRE_LEN: usize = 255;
/// The longest label (RFC 1035 section 2.3.4).
const MAX_LABEL_LEN: usize = 63;

/// An absolute domain name in presentation form: lower-case, ending in a dot (`"."` is the root).
///
/// Every label is 1 to 63 characters of letters, digits and hyphens, not starting or ending
/// with a hyphen (RFC 1123 section 2.1). Two relaxations that DNS data needs: a label may start
/// with `_` (service labels such as `_http._tcp`, RFC 2782), and the first label may be `*`
/// (a wildcard owner, RFC 4592).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

/// Why a string is not a valid [`Name`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The empty string.
    #[error("empty name")]
    Empty,
    /// Two dots in a row, or a leading dot.
    #[error("empty label")]
    EmptyLabel,
    /// A label longer than 63 characters.
    #[error("label `{0}` is longer than 63 characters")]
    LabelTooLong(String),
    /// More than 255 octets on the wire.
    #[error("name is longer than 255 octets on the wire")]
    TooLong,
    /// A character outside letters, digits, `-` and a leading `_`.
    #[error("label `{0}` has a character other than letters, digits and hyphens")]
    BadCharacter(String),
    /// A label starting or ending with `-`.
    #[error("label `{0}` starts or ends with a hyphen")]
    Hyphen(String),
    /// `*` anywhere but as the whole first label.
    #[error("`*` is allowed only as the whole first label")]
    Wildcard,
}

impl Name {
    /// The root name `.`.
    pub fn root() -> Self {
        Self(".".to_owned())
    }

    /// The name as text, with its trailing dot.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The labels from the leftmost, without the root.
    pub fn labels(&self) -> impl DoubleEndedIterator<Item = &str> {
        self.0.split('.').filter(|l| !l.is_empty())
    }

    /// How many labels, the root not counted.
    pub fn label_count(&self) -> usize {
        self.labels().count()
    }

    /// Whether `self` is `zone` or below it.
    pub fn is_within(&self, zone: &Self) -> bool {
        zone.0 == "."
            || self.0 == zone.0
            || (self.0.ends_with(zone.0.as_str())
                && self.0.as_bytes()[self.0.len() - zone.0.len() - 1] == b'.')
    }

    /// `label.self`, validated.
    ///
    /// # Errors
    /// When the result would not be a valid name.
    pub fn prepend(&self, label: &str) -> Result<Self, NameError> {
        if self.0 == "." {
            format!("{label}.").parse()
        } else {
            format!("{label}.{}", self.0).parse()
        }
    }

    /// `relative` made absolute against `origin`, as a zone file does: `@` is the origin, a
    /// name ending in a dot is already absolute.
    ///
    /// # Errors
    /// When the result is not a valid name.
    pub fn from_relative(relative: &str, origin: &Self) -> Result<Self, NameError> {
        if relative == "@" {
            Ok(origin.clone())
        } else if relative.ends_with('.') {
            relative.parse()
        } else {
            origin.prepend(relative)
        }
    }

    /// The length of the name on the wire, uncompressed.
    pub fn wire_len(&self) -> usize {
        self.labels().map(|l| l.len() + 1).sum::<usize>() + 1
    }
}

impl FromStr for Name {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s == "." {
            return Ok(Self::root());
        }
        let trimmed = s.strip_suffix('.').unwrap_or(s);
        let mut wire_len = 1;
        for (i, label) in trimmed.split('.').enumerate() {
            check_label(label, i == 0)?;
            wire_len += label.len() + 1;
        }
        if wire_len > MAX_WIRE_LEN {
            return Err(NameError::TooLong);
        }
        Ok(Self(format!("{}.", trimmed.to_ascii_lowercase())))
    }
}

fn check_label(label: &str, first: bool) -> Result<(), NameError> {
    if label.is_empty() {
        return Err(NameError::EmptyLabel);
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(NameError::LabelTooLong(label.to_owned()));
    }
    if label == "*" {
        return if first {
            Ok(())
        } else {
            Err(NameError::Wildcard)
        };
    }
    let body = label.strip_prefix('_').unwrap_or(label);
    if body.contains('*') {
        return Err(NameError::Wildcard);
    }
    if !body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(NameError::BadCharacter(label.to_owned()));
    }
    if body.starts_with('-') || body.ends_with('-') {
        return Err(NameError::Hyphen(label.to_owned()));
    }
    Ok(())
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        s.parse().unwrap()
    }

    #[test]
    fn names_are_absolute_and_lower_case() {
        assert_eq!(
            n("Web.Default.svc.cluster.local").as_str(),
            "web.default.svc.cluster.local."
        );
        assert_eq!(n("a.b.").as_str(), "a.b.");
        assert_eq!(n(".").as_str(), ".");
        assert_eq!(n("_http._tcp.web").label_count(), 3);
        assert_eq!(n("*.apps.example").labels().next(), Some("*"));
        assert_eq!(n("a.bc.").wire_len(), 1 + 1 + 1 + 2 + 1);
    }

    #[test]
    fn invalid_names_say_why() {
        assert_eq!("".parse::<Name>(), Err(NameError::Empty));
        assert_eq!("a..b".parse::<Name>(), Err(NameError::EmptyLabel));
        assert!(matches!("-a.b".parse::<Name>(), Err(NameError::Hyphen(_))));
        assert!(matches!(
            "a b.c".parse::<Name>(),
            Err(NameError::BadCharacter(_))
        ));
        assert_eq!("a.*.b".parse::<Name>(), Err(NameError::Wildcard));
        assert!(matches!(
            "x".repeat(64).parse::<Name>(),
            Err(NameError::LabelTooLong(_))
        ));
        let long = vec!["a".repeat(60); 5].join(".");
        assert_eq!(long.parse::<Name>(), Err(NameError::TooLong));
    }

    #[test]
    fn within_and_relative() {
        let zone = n("cluster.local");
        assert!(n("web.ns.svc.cluster.local").is_within(&zone));
        assert!(zone.is_within(&zone));
        assert!(!n("xcluster.local").is_within(&zone));
        assert!(n("anything").is_within(&Name::root()));
        assert_eq!(Name::from_relative("@", &zone).unwrap(), zone);
        assert_eq!(
            Name::from_relative("www", &zone).unwrap(),
            n("www.cluster.local.")
        );
        assert_eq!(Name::from_relative("x.org.", &zone).unwrap(), n("x.org"));
    }
}
