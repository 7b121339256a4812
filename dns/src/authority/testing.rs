//! Builders for authority tests.

use dataplane_common::model::{AnswerPolicy, Name, RData, RecordSet, Soa, Zone};

pub(crate) fn n(s: &str) -> Name {
    s.parse().expect("test name")
}

pub(crate) fn zone(origin: &str) -> Zone {
    Zone {
        origin: n(origin),
        ttl: 3600,
        soa: Soa {
            mname: n(&format!("ns1.{origin}")),
            rname: n(&format!("hostmaster.{origin}")),
            serial: 1,
            refresh: 7200,
            retry: 900,
            expire: 1_209_600,
            minimum: 300,
        },
        ns: vec![n(&format!("ns1.{origin}"))],
    }
}

pub(crate) fn set(name: &str, ttl: u32, records: Vec<RData>) -> RecordSet {
    RecordSet {
        name: n(name),
        ttl,
        records,
        policy: AnswerPolicy::All,
        affinity_timeout: None,
        source: "user".to_owned(),
    }
}
