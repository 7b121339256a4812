//! Which client networks may ask for recursion (an open resolver is an amplifier).

pub use ipnet::IpNet;
use std::net::IpAddr;

/// A list of allowed networks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    nets: Vec<IpNet>,
}

impl Default for Acl {
    /// Loopback and the private ranges: 127.0.0.0/8, 10.0.0.0/8, 172.16.0.0/12,
    /// 192.168.0.0/16, ::1/128, fc00::/7.
    fn default() -> Self {
        let nets = [
            "127.0.0.0/8",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "::1/128",
            "fc00::/7",
        ];
        Self::new(
            nets.iter()
                .map(|n| n.parse().expect("invariant: a valid network"))
                .collect(),
        )
    }
}

impl Acl {
    /// Exactly these networks.
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self { nets }
    }

    /// Whether `client` (an IPv4-mapped IPv6 address counts as IPv4) is in a listed network.
    pub fn allows(&self, client: IpAddr) -> bool {
        let client = client.to_canonical();
        self.nets.iter().any(|n| n.contains(&client))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_allows_loopback_and_private_only() {
        let acl = Acl::default();
        for ok in [
            "127.0.0.1",
            "10.1.2.3",
            "172.31.0.1",
            "192.168.1.1",
            "::1",
            "fd00::1",
        ] {
            assert!(acl.allows(ok.parse().unwrap()), "{ok}");
        }
        for no in ["8.8.8.8", "172.32.0.1", "2001:db8::1", "::ffff:8.8.8.8"] {
            assert!(!acl.allows(no.parse().unwrap()), "{no}");
        }
        assert!(acl.allows("::ffff:127.0.0.1".parse().unwrap()));
        let only = Acl::new(vec!["127.0.0.1/32".parse().unwrap()]);
        assert!(!only.allows("127.0.0.2".parse().unwrap()));
    }
}
