//! Where each kind of object lives under the project's store prefix.
//!
//! ```text
//! /dataplane/zones/<origin>                     Zone
//! /dataplane/records/<owner>/<TYPE>             RecordSet
//! /dataplane/services/<namespace>/<name>        Service, when headless
//! /dataplane/endpoints/<namespace>/<service>    Vec<Endpoint> of a headless Service (JSON list)
//! /dataplane/vips/<address>/<port>/<protocol>   Vip
//! /dataplane/health/<address>                   Health
//! /dataplane/nodes/<name>                       node registration, under a lease
//! ```

use super::{Name, Protocol, RecordType};
use std::net::IpAddr;

/// The prefix of everything dataplane writes.
pub const ROOT: &str = "/dataplane/";
/// Zones.
pub const ZONES: &str = "/dataplane/zones/";
/// Record sets.
pub const RECORDS: &str = "/dataplane/records/";
/// Services derived from Kubernetes.
pub const SERVICES: &str = "/dataplane/services/";
/// Endpoints derived from Kubernetes.
pub const ENDPOINTS: &str = "/dataplane/endpoints/";
/// VIPs.
pub const VIPS: &str = "/dataplane/vips/";
/// Health state.
pub const HEALTH: &str = "/dataplane/health/";
/// Node registrations.
pub const NODES: &str = "/dataplane/nodes/";

/// The key of a zone.
pub fn zone(origin: &Name) -> String {
    format!("{ZONES}{origin}")
}

/// The key of a record set.
pub fn record_set(owner: &Name, kind: RecordType) -> String {
    format!("{RECORDS}{owner}/{}", kind.as_str())
}

/// The key of a VIP.
pub fn vip(address: IpAddr, port: u16, protocol: Protocol) -> String {
    format!("{VIPS}{address}/{port}/{}", protocol.as_lower())
}

/// The key of an address's health.
pub fn health(address: IpAddr) -> String {
    format!("{HEALTH}{address}")
}

/// The key of a node.
pub fn node(name: &str) -> String {
    format!("{NODES}{name}")
}
