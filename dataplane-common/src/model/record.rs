//! Zones and record sets: the DNS data that control writes and dns serves.

use super::{Name, Validate, ValidationError};
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// The record types dataplane stores (RFC 1035, 2782, 3596).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RecordType {
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
    /// Canonical name.
    Cname,
    /// Service location.
    Srv,
    /// Mail exchange.
    Mx,
    /// Text strings.
    Txt,
    /// Name server.
    Ns,
    /// Pointer (reverse lookups).
    Ptr,
    /// Start of authority.
    Soa,
}

impl RecordType {
    /// The type's number on the wire.
    pub fn code(self) -> u16 {
        match self {
            Self::A => 1,
            Self::Ns => 2,
            Self::Cname => 5,
            Self::Soa => 6,
            Self::Ptr => 12,
            Self::Mx => 15,
            Self::Txt => 16,
            Self::Aaaa => 28,
            Self::Srv => 33,
        }
    }

    /// The type's mnemonic (`"AAAA"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::Aaaa => "AAAA",
            Self::Cname => "CNAME",
            Self::Srv => "SRV",
            Self::Mx => "MX",
            Self::Txt => "TXT",
            Self::Ns => "NS",
            Self::Ptr => "PTR",
            Self::Soa => "SOA",
        }
    }

    /// Every type, in wire-number order.
    pub const ALL: [Self; 9] = [
        Self::A,
        Self::Ns,
        Self::Cname,
        Self::Soa,
        Self::Ptr,
        Self::Mx,
        Self::Txt,
        Self::Aaaa,
        Self::Srv,
    ];
}

impl std::str::FromStr for RecordType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown record type `{s}`"))
    }
}

/// The start of authority of a zone (RFC 1035 section 3.3.13).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Soa {
    /// The primary name server.
    pub mname: Name,
    /// The responsible mailbox, as a name.
    pub rname: Name,
    /// Serial number.
    pub serial: u32,
    /// Seconds between refreshes by secondaries.
    pub refresh: u32,
    /// Seconds between retries of a failed refresh.
    pub retry: u32,
    /// Seconds after which secondaries stop answering.
    pub expire: u32,
    /// The negative-caching TTL (RFC 2308 section 4).
    pub minimum: u32,
}

/// One record's data.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "UPPERCASE", deny_unknown_fields)]
pub enum RData {
    /// IPv4 address.
    A {
        /// The address.
        address: Ipv4Addr,
    },
    /// IPv6 address.
    Aaaa {
        /// The address.
        address: Ipv6Addr,
    },
    /// Alias to another name.
    Cname {
        /// The canonical name.
        target: Name,
    },
    /// Service location (RFC 2782).
    Srv {
        /// Lower is preferred.
        priority: u16,
        /// Relative weight among equal priorities.
        weight: u16,
        /// The service's port.
        port: u16,
        /// The host offering it.
        target: Name,
    },
    /// Mail exchange.
    Mx {
        /// Lower is preferred.
        preference: u16,
        /// The mail host.
        exchange: Name,
    },
    /// Text strings, each at most 255 octets.
    Txt {
        /// The strings.
        strings: Vec<String>,
    },
    /// A name server of a zone or delegation.
    Ns {
        /// The server's name.
        host: Name,
    },
    /// Pointer, for reverse lookups.
    Ptr {
        /// The name pointed to.
        target: Name,
    },
}

impl RData {
    /// The type of this data.
    pub fn record_type(&self) -> RecordType {
        match self {
            Self::A { .. } => RecordType::A,
            Self::Aaaa { .. } => RecordType::Aaaa,
            Self::Cname { .. } => RecordType::Cname,
            Self::Srv { .. } => RecordType::Srv,
            Self::Mx { .. } => RecordType::Mx,
            Self::Txt { .. } => RecordType::Txt,
            Self::Ns { .. } => RecordType::Ns,
            Self::Ptr { .. } => RecordType::Ptr,
        }
    }
}

/// How a name with several addresses is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnswerPolicy {
    /// Every activated address, shuffled.
    #[default]
    All,
    /// One activated address, the same for the same client (rendezvous hashing).
    OnePersistent,
    /// One activated address, rotating.
    OneRoundRobin,
}

/// All records of one type at one name, as stored under `records/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordSet {
    /// The owner name.
    pub name: Name,
    /// Time to live in seconds.
    pub ttl: u32,
    /// The data; every entry has the same type.
    pub records: Vec<RData>,
    /// How several addresses are answered.
    #[serde(default)]
    pub policy: AnswerPolicy,
    /// Sticky assignments last this long per client (Kubernetes `sessionAffinity: ClientIP`).
    #[serde(
        default,
        with = "seconds_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub affinity_timeout: Option<Duration>,
    /// Where it came from: `user`, or `kubernetes` for objects control derives (read-only in the API).
    #[serde(default = "default_source")]
    pub source: String,
}

fn default_source() -> String {
    "user".to_owned()
}

/// The largest TTL allowed (RFC 2181 section 8).
pub const MAX_TTL: u32 = i32::MAX as u32;

impl RecordSet {
    /// The set's type, `None` when it is empty.
    pub fn record_type(&self) -> Option<RecordType> {
        self.records.first().map(RData::record_type)
    }
}

impl Validate for RecordSet {
    fn validate(&self) -> Result<(), ValidationError> {
        if self.ttl > MAX_TTL {
            return Err(ValidationError::new(
                "ttl",
                "must be at most 2147483647 (RFC 2181)",
            ));
        }
        let Some(first) = self.records.first() else {
            return Err(ValidationError::new(
                "records",
                "must hold at least one record",
            ));
        };
        let kind = first.record_type();
        for (i, r) in self.records.iter().enumerate() {
            if r.record_type() != kind {
                return Err(ValidationError::new(
                    format!("records[{i}]"),
                    format!(
                        "is {} in a set of {}",
                        r.record_type().as_str(),
                        kind.as_str()
                    ),
                ));
            }
            if let RData::Txt { strings } = r
                && let Some(j) = strings.iter().position(|s| s.len() > 255)
            {
                return Err(ValidationError::new(
                    format!("records[{i}].strings[{j}]"),
                    "is longer than 255 octets",
                ));
            }
        }
        if kind == RecordType::Cname && self.records.len() > 1 {
            return Err(ValidationError::new(
                "records",
                "a CNAME set holds exactly one record",
            ));
        }
        if self.name.labels().skip(1).any(|l| l == "*") {
            return Err(ValidationError::new("name", "`*` only as the first label"));
        }
        if self.source != "user" && self.source != "kubernetes" {
            return Err(ValidationError::new(
                "source",
                "must be `user` or `kubernetes`",
            ));
        }
        Ok(())
    }
}

/// A zone that dataplane is authoritative for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    /// The zone's apex.
    pub origin: Name,
    /// The TTL of the SOA record itself.
    pub ttl: u32,
    /// Its start of authority.
    pub soa: Soa,
    /// The names of its authoritative servers.
    #[serde(default)]
    pub ns: Vec<Name>,
}

impl Validate for Zone {
    fn validate(&self) -> Result<(), ValidationError> {
        if self.ttl > MAX_TTL {
            return Err(ValidationError::new(
                "ttl",
                "must be at most 2147483647 (RFC 2181)",
            ));
        }
        if self.soa.minimum > MAX_TTL {
            return Err(ValidationError::new(
                "soa.minimum",
                "must be at most 2147483647",
            ));
        }
        if self.origin.labels().any(|l| l == "*") {
            return Err(ValidationError::new(
                "origin",
                "a zone apex cannot be a wildcard",
            ));
        }
        Ok(())
    }
}

/// Serde for `Option<Duration>` as whole seconds.
pub(crate) mod seconds_option {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs()),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{decode, encode};

    fn set(json: &str) -> RecordSet {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn record_sets_round_trip() {
        let rs = set(
            r#"{"name":"web.default.svc.cluster.local.","ttl":30,"policy":"one-persistent",
                "affinity_timeout":10800,
                "records":[{"type":"A","address":"10.0.0.1"},{"type":"A","address":"10.0.0.2"}]}"#,
        );
        assert_eq!(rs.record_type(), Some(RecordType::A));
        assert_eq!(rs.affinity_timeout, Some(Duration::from_secs(10800)));
        assert_eq!(decode::<RecordSet>(&encode(&rs)).unwrap(), rs);
    }

    #[test]
    fn validation_names_the_field() {
        let mixed = set(
            r#"{"name":"x.","ttl":30,"records":[{"type":"A","address":"10.0.0.1"},
                {"type":"AAAA","address":"::1"}]}"#,
        );
        assert_eq!(mixed.validate().unwrap_err().field, "records[1]");
        let empty = set(r#"{"name":"x.","ttl":30,"records":[]}"#);
        assert_eq!(empty.validate().unwrap_err().field, "records");
        let ttl =
            set(r#"{"name":"x.","ttl":4294967295,"records":[{"type":"A","address":"1.2.3.4"}]}"#);
        assert_eq!(ttl.validate().unwrap_err().field, "ttl");
        let bad_name = serde_json::from_str::<RecordSet>(r#"{"name":"a..b","ttl":1,"records":[]}"#);
        assert!(bad_name.unwrap_err().to_string().contains("empty label"));
    }

    #[test]
    fn types_parse_and_number() {
        assert_eq!("aaaa".parse::<RecordType>().unwrap(), RecordType::Aaaa);
        assert_eq!(RecordType::Srv.code(), 33);
        assert!("SPF".parse::<RecordType>().is_err());
    }
}
