//! A flow's identity: the 5-tuple both session tables are keyed on, and its seeded hash.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IP protocol number of TCP.
pub const TCP: u8 = 6;
/// IP protocol number of UDP.
pub const UDP: u8 = 17;
/// IP protocol number of ICMP.
pub const ICMP: u8 = 1;
/// IP protocol number (IPv6 next header) of ICMPv6.
pub const ICMPV6: u8 = 58;

/// An IPv4 or IPv6 address in 16 bytes; IPv4 is stored IPv4-mapped (`::ffff:a.b.c.d`).
///
/// One fixed-size type keeps tuples `Copy`, compact and cheap to hash and compare.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Addr(pub [u8; 16]);

const V4_MAPPED_PREFIX: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

impl Addr {
    /// An IPv4 address.
    #[inline]
    pub fn v4(octets: [u8; 4]) -> Self {
        let mut a = [0u8; 16];
        a[..12].copy_from_slice(&V4_MAPPED_PREFIX);
        a[12..].copy_from_slice(&octets);
        Self(a)
    }

    /// An IPv6 address.
    #[inline]
    pub const fn v6(octets: [u8; 16]) -> Self {
        Self(octets)
    }

    /// Whether it is an IPv4 address.
    #[inline]
    pub fn is_ipv4(&self) -> bool {
        self.0[..12] == V4_MAPPED_PREFIX
    }

    /// The IPv4 octets (the low four bytes).
    #[inline]
    pub fn v4_octets(&self) -> [u8; 4] {
        [self.0[12], self.0[13], self.0[14], self.0[15]]
    }

    /// The address as the standard library type.
    pub fn ip(&self) -> IpAddr {
        if self.is_ipv4() {
            IpAddr::V4(Ipv4Addr::from(self.v4_octets()))
        } else {
            IpAddr::V6(Ipv6Addr::from(self.0))
        }
    }
}

impl From<IpAddr> for Addr {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::v4(v4.octets()),
            IpAddr::V6(v6) => Self::v6(v6.octets()),
        }
    }
}

impl From<Addr> for IpAddr {
    fn from(a: Addr) -> Self {
        a.ip()
    }
}

impl fmt::Debug for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.ip(), f)
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.ip(), f)
    }
}

/// A flow's 5-tuple, as seen on the wire in one direction.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Tuple {
    /// Source address.
    pub src: Addr,
    /// Destination address.
    pub dst: Addr,
    /// Source port (0 for ICMP).
    pub src_port: u16,
    /// Destination port (0 for ICMP).
    pub dst_port: u16,
    /// IP protocol number ([`TCP`], [`UDP`]).
    pub proto: u8,
}

impl Tuple {
    /// The tuple of the other direction.
    #[inline]
    #[must_use]
    pub fn reversed(&self) -> Self {
        Self {
            src: self.dst,
            dst: self.src,
            src_port: self.dst_port,
            dst_port: self.src_port,
            proto: self.proto,
        }
    }

    /// A seeded 64-bit hash of all five fields.
    ///
    /// The session tables use a per-process secret seed (flooding the tables with chosen
    /// collisions then needs the seed). Schedulers use a seed shared by every balancer in
    /// the fleet, so that all of them send a flow to the same real server.
    #[inline]
    pub fn hash(&self, seed: u64) -> u64 {
        let w = |b: &[u8; 16], i: usize| {
            u64::from_le_bytes([
                b[i],
                b[i + 1],
                b[i + 2],
                b[i + 3],
                b[i + 4],
                b[i + 5],
                b[i + 6],
                b[i + 7],
            ])
        };
        let ports =
            u64::from(self.src_port) | u64::from(self.dst_port) << 16 | u64::from(self.proto) << 32;
        let mut h = seed ^ K0;
        h = mix(w(&self.src.0, 0) ^ h, w(&self.src.0, 8) ^ K1);
        h = mix(w(&self.dst.0, 0) ^ h, w(&self.dst.0, 8) ^ K2);
        mix(ports ^ h, K3)
    }
}

/// A seeded 64-bit hash of one address (source-hash scheduling, persistence).
#[inline]
pub fn hash_addr(a: &Addr, seed: u64) -> u64 {
    let lo = u64::from_le_bytes(a.0[..8].try_into().unwrap_or_default());
    let hi = u64::from_le_bytes(a.0[8..].try_into().unwrap_or_default());
    mix(mix(lo ^ seed ^ K0, hi ^ K1), K2)
}

/// A seeded hash of 64 bits of input (backend identities in Maglev).
#[inline]
pub fn hash_u64(x: u64, seed: u64) -> u64 {
    mix(mix(x ^ seed ^ K0, K1), K3)
}

const K0: u64 = 0x243f_6a88_85a3_08d3;
const K1: u64 = 0x1319_8a2e_0370_7344;
const K2: u64 = 0xa409_3822_299f_31d0;
const K3: u64 = 0x082e_fa98_ec4e_6c89;

/// The folded multiply: both halves of the 128-bit product, xored.
#[inline]
fn mix(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

impl fmt::Debug for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ep = |f: &mut fmt::Formatter<'_>, a: &Addr, p: u16| {
            if a.is_ipv4() {
                write!(f, "{a}:{p}")
            } else {
                write!(f, "[{a}]:{p}")
            }
        };
        write!(f, "{}/", self.proto)?;
        ep(f, &self.src, self.src_port)?;
        f.write_str(" -> ")?;
        ep(f, &self.dst, self.dst_port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addr_round_trips_both_families() {
        for ip in ["10.1.2.3", "2001:db8::1", "::1"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(Addr::from(ip).ip(), ip);
        }
        assert!(Addr::v4([1, 2, 3, 4]).is_ipv4());
    }

    #[test]
    fn hash_depends_on_every_field_and_seed() {
        let t = Tuple {
            src: Addr::v4([10, 0, 0, 1]),
            dst: Addr::v4([10, 0, 0, 2]),
            src_port: 1000,
            dst_port: 80,
            proto: TCP,
        };
        let h = t.hash(1);
        assert_ne!(h, t.hash(2));
        assert_ne!(h, t.reversed().hash(1));
        assert_ne!(h, Tuple { proto: UDP, ..t }.hash(1));
        assert_ne!(
            h,
            Tuple {
                src_port: 1001,
                ..t
            }
            .hash(1)
        );
    }
}
