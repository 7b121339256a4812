//! The `flows` map's key and value, byte for byte as the XDP program reads them, and a model
//! of what the program does with them ([`key_of_frame`], [`apply`]) that the tests hold the
//! program to.
//!
//! ```text
//! key (16)    0 src ip | 4 dst ip | 8 src port | 10 dst port | 12 proto | 13 zero × 3
//!             (all as on the wire: one direction of a flow as it arrives)
//! value (48)  0 new src ip | 4 new dst ip | 8 new src port | 10 new dst port
//!             12 IPv4 checksum delta | 14 TCP/UDP checksum delta      (see super::delta)
//!             16 new dst MAC | 22 new src MAC | 28 flags (NAT) | 29 zero × 3
//!             32 packets | 40 bytes   (u64, native order, added to by the program)
//! ```
//!
//! Every multi-byte field the program loads from the value is naturally aligned.

use super::delta::{self, Deltas};
use crate::flow::{TCP, Tuple, UDP};
use crate::packet::Mac;
use crate::packet::tcp::{FIN, RST, SYN};

/// Key size in bytes.
pub const KEY_SIZE: usize = 16;
/// Value size in bytes.
pub const VALUE_SIZE: usize = 48;

/// Value field offsets.
pub mod off {
    /// New source address.
    pub const SRC_IP: usize = 0;
    /// New destination address.
    pub const DST_IP: usize = 4;
    /// New source and destination ports (4 bytes).
    pub const PORTS: usize = 8;
    /// IPv4 header checksum delta.
    pub const IP_DELTA: usize = 12;
    /// TCP/UDP checksum delta.
    pub const L4_DELTA: usize = 14;
    /// New destination MAC.
    pub const DST_MAC: usize = 16;
    /// New source MAC.
    pub const SRC_MAC: usize = 22;
    /// [`super::NAT`] or 0.
    pub const FLAGS: usize = 28;
    /// Packets the program forwarded.
    pub const PACKETS: usize = 32;
    /// Bytes (whole frames) the program forwarded.
    pub const BYTES: usize = 40;
}

/// Flag: rewrite addresses and ports (full-NAT); without it only the MACs change (DR).
pub const NAT: u8 = 1;

/// TCP flags that send a segment to user space even when its flow is in the map: the
/// session table tracks the connection's state from them, and a SYN may reopen a tuple.
pub const SLOW_TCP_FLAGS: u8 = SYN | FIN | RST;

/// One direction of a flow as it arrives: the map's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Key(pub [u8; KEY_SIZE]);

impl Key {
    /// The key of packets with tuple `t`; `None` unless IPv4 TCP or UDP (IPv6 stays on the
    /// slow path).
    pub fn of(t: &Tuple) -> Option<Self> {
        if !t.src.is_ipv4() || !t.dst.is_ipv4() || !(t.proto == TCP || t.proto == UDP) {
            return None;
        }
        let mut k = [0u8; KEY_SIZE];
        k[0..4].copy_from_slice(&t.src.v4_octets());
        k[4..8].copy_from_slice(&t.dst.v4_octets());
        k[8..10].copy_from_slice(&t.src_port.to_be_bytes());
        k[10..12].copy_from_slice(&t.dst_port.to_be_bytes());
        k[12] = t.proto;
        Some(Self(k))
    }
}

/// What the program does to a packet of a key: the rewrite and the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Value(pub [u8; VALUE_SIZE]);

impl Default for Value {
    fn default() -> Self {
        Self([0; VALUE_SIZE])
    }
}

/// Packets and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Packets.
    pub packets: u64,
    /// Bytes (whole frames).
    pub bytes: u64,
}

impl Totals {
    /// The sum of both.
    #[must_use]
    pub fn plus(self, other: Self) -> Self {
        Self {
            packets: self.packets.wrapping_add(other.packets),
            bytes: self.bytes.wrapping_add(other.bytes),
        }
    }

    /// What was added since `earlier`.
    #[must_use]
    pub fn since(self, earlier: Self) -> Self {
        Self {
            packets: self.packets.wrapping_sub(earlier.packets),
            bytes: self.bytes.wrapping_sub(earlier.bytes),
        }
    }
}

impl Value {
    fn macs(mut self, src: Mac, dst: Mac) -> Self {
        self.0[off::DST_MAC..off::DST_MAC + 6].copy_from_slice(&dst.0);
        self.0[off::SRC_MAC..off::SRC_MAC + 6].copy_from_slice(&src.0);
        self
    }

    /// Full-NAT: packets with tuple `from` leave with tuple `to`, from MAC `src` to `dst`.
    /// Both tuples MUST be IPv4 ([`Key::of`] is `Some`).
    pub fn nat(from: &Tuple, to: &Tuple, src: Mac, dst: Mac) -> Self {
        let mut v = Self::default();
        let Deltas { ip, l4 } = delta::deltas(from, to);
        v.0[off::SRC_IP..off::SRC_IP + 4].copy_from_slice(&to.src.v4_octets());
        v.0[off::DST_IP..off::DST_IP + 4].copy_from_slice(&to.dst.v4_octets());
        v.0[off::PORTS..off::PORTS + 2].copy_from_slice(&to.src_port.to_be_bytes());
        v.0[off::PORTS + 2..off::PORTS + 4].copy_from_slice(&to.dst_port.to_be_bytes());
        v.0[off::IP_DELTA..off::IP_DELTA + 2].copy_from_slice(&ip.to_le_bytes());
        v.0[off::L4_DELTA..off::L4_DELTA + 2].copy_from_slice(&l4.to_le_bytes());
        v.0[off::FLAGS] = NAT;
        v.macs(src, dst)
    }

    /// DR: only the MACs change.
    pub fn dr(src: Mac, dst: Mac) -> Self {
        Self::default().macs(src, dst)
    }

    /// The program's counters in this value.
    pub fn totals(&self) -> Totals {
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&self.0[at..at + 8]);
            u64::from_ne_bytes(b)
        };
        Totals {
            packets: u64_at(off::PACKETS),
            bytes: u64_at(off::BYTES),
        }
    }
}

/// One map entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Packets arriving with this key...
    pub key: Key,
    /// ...are rewritten and sent back out like this.
    pub value: Value,
}

const ETH: usize = 14;
const IP: usize = ETH;
const L4: usize = IP + 20;

/// The key the program looks up for `frame`, or `None` when the frame goes the slow way
/// without a lookup: not untagged Ethernet + IPv4 without options, a fragment, not TCP or
/// UDP, too short, or a TCP segment with [`SLOW_TCP_FLAGS`].
pub fn key_of_frame(frame: &[u8]) -> Option<Key> {
    if frame.len() < L4 + 8 || frame[12..14] != [0x08, 0x00] || frame[IP] != 0x45 {
        return None;
    }
    if u16::from_be_bytes([frame[IP + 6], frame[IP + 7]]) & 0x3fff != 0 {
        return None;
    }
    let proto = frame[IP + 9];
    match proto {
        TCP if frame.len() < L4 + 20 || frame[L4 + 13] & SLOW_TCP_FLAGS != 0 => return None,
        TCP | UDP => {}
        _ => return None,
    }
    let mut k = [0u8; KEY_SIZE];
    k[0..8].copy_from_slice(&frame[IP + 12..IP + 20]);
    k[8..12].copy_from_slice(&frame[L4..L4 + 4]);
    k[12] = proto;
    Some(Key(k))
}

/// What the program does to `frame` (for which [`key_of_frame`] gave the key of `value`):
/// the rewrite, without the counters. The program is tested against this.
pub fn apply(frame: &mut [u8], value: &Value) {
    let v = &value.0;
    let at16 = |b: &[u8], at: usize| u16::from_le_bytes([b[at], b[at + 1]]);
    if v[off::FLAGS] & NAT != 0 {
        let c = delta::apply(at16(frame, IP + 10), at16(v, off::IP_DELTA));
        frame[IP + 10..IP + 12].copy_from_slice(&c.to_le_bytes());
        frame[IP + 12..IP + 20].copy_from_slice(&v[off::SRC_IP..off::SRC_IP + 8]);
        let l4_delta = at16(v, off::L4_DELTA);
        if frame[IP + 9] == TCP {
            let c = delta::apply(at16(frame, L4 + 16), l4_delta);
            frame[L4 + 16..L4 + 18].copy_from_slice(&c.to_le_bytes());
        } else {
            let c = delta::apply_udp(at16(frame, L4 + 6), l4_delta);
            frame[L4 + 6..L4 + 8].copy_from_slice(&c.to_le_bytes());
        }
        frame[L4..L4 + 4].copy_from_slice(&v[off::PORTS..off::PORTS + 4]);
    }
    frame[0..6].copy_from_slice(&v[off::DST_MAC..off::DST_MAC + 6]);
    frame[6..12].copy_from_slice(&v[off::SRC_MAC..off::SRC_MAC + 6]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Addr;
    use crate::packet::{self, rewrite, tcp};
    use crate::testing::{self, GATEWAY_MAC, LB_MAC, verify_checksums};
    use std::net::SocketAddr;

    const REAL_MAC: Mac = Mac([0x02, 0, 0, 0, 1, 1]);

    fn t(src: &str, dst: &str, proto: u8) -> Tuple {
        let (s, d): (SocketAddr, SocketAddr) = (src.parse().unwrap(), dst.parse().unwrap());
        Tuple {
            src: Addr::from(s.ip()),
            dst: Addr::from(d.ip()),
            src_port: s.port(),
            dst_port: d.port(),
            proto,
        }
    }

    fn frame_of(tu: &Tuple, flags: u8) -> Vec<u8> {
        let s = SocketAddr::new(tu.src.ip(), tu.src_port);
        let d = SocketAddr::new(tu.dst.ip(), tu.dst_port);
        if tu.proto == TCP {
            testing::tcp_frame(s, d, flags, b"GET / HTTP/1.1\r\n\r\n")
        } else {
            testing::udp_frame(s, d, b"query")
        }
    }

    #[test]
    fn the_model_matches_the_datapaths_full_nat_both_ways() {
        for proto in [TCP, UDP] {
            let client = t("198.51.100.7:40000", "203.0.113.10:80", proto);
            let real = t("10.0.0.11:8080", "198.51.100.100:1025", proto);
            for (from, to, dst_mac) in [
                (client, real.reversed(), REAL_MAC),
                (real, client.reversed(), GATEWAY_MAC),
            ] {
                let mut want = frame_of(&from, tcp::ACK);
                let f = packet::parse(&want).unwrap().unwrap();
                rewrite::full_nat(&mut want, &f, &to);
                rewrite::set_macs(&mut want, LB_MAC, dst_mac);

                let mut got = frame_of(&from, tcp::ACK);
                let key = key_of_frame(&got).expect("fast-pathable");
                assert_eq!(Some(key), Key::of(&from));
                apply(&mut got, &Value::nat(&from, &to, LB_MAC, dst_mac));
                assert_eq!(got, want);
                verify_checksums(&got).unwrap();
            }
        }
    }

    #[test]
    fn dr_changes_the_macs_only() {
        let client = t("198.51.100.7:40000", "203.0.113.20:80", TCP);
        let orig = frame_of(&client, tcp::ACK);
        let mut f = orig.clone();
        apply(&mut f, &Value::dr(LB_MAC, REAL_MAC));
        assert_eq!(&f[0..6], &REAL_MAC.0);
        assert_eq!(&f[6..12], &LB_MAC.0);
        assert_eq!(&f[12..], &orig[12..]);
    }

    #[test]
    fn what_stays_on_the_slow_path() {
        let tcp4 = t("198.51.100.7:40000", "203.0.113.10:80", TCP);
        for flags in [SYN, SYN | tcp::ACK, FIN | tcp::ACK, RST] {
            assert_eq!(key_of_frame(&frame_of(&tcp4, flags)), None, "{flags:#x}");
        }
        assert!(key_of_frame(&frame_of(&tcp4, tcp::ACK | 0x08)).is_some());
        let v6 = t("[2001:db8::7]:4000", "[2001:db8::10]:80", UDP);
        assert_eq!(key_of_frame(&frame_of(&v6, 0)), None);
        assert_eq!(Key::of(&v6), None);
        let mut frag = frame_of(&t("198.51.100.7:1", "203.0.113.10:53", UDP), 0);
        frag[IP + 6] = 0x20; // more fragments
        assert_eq!(key_of_frame(&frag), None);
        let mut options = frame_of(&tcp4, tcp::ACK);
        options[IP] = 0x46;
        assert_eq!(key_of_frame(&options), None);
    }

    #[test]
    fn totals_read_the_programs_counters() {
        let mut v = Value::dr(LB_MAC, REAL_MAC);
        v.0[off::PACKETS..off::PACKETS + 8].copy_from_slice(&7u64.to_ne_bytes());
        v.0[off::BYTES..off::BYTES + 8].copy_from_slice(&700u64.to_ne_bytes());
        let t = v.totals();
        assert_eq!((t.packets, t.bytes), (7, 700));
        assert_eq!(t.plus(t).since(t), t);
    }
}
