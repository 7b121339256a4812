//! Ethernet II headers with at most one 802.1Q tag.

use crate::drop::DropReason;
use std::fmt;

/// Offset of the destination MAC.
pub const DST: usize = 0;
/// Offset of the source MAC.
pub const SRC: usize = 6;
/// Offset of the EtherType (or the 802.1Q TPID when tagged).
pub const ETHERTYPE: usize = 12;
/// Length of an untagged header.
pub const HEADER_LEN: usize = 14;
/// Length of one 802.1Q tag (TPID + TCI).
pub const VLAN_TAG_LEN: usize = 4;
/// Offset of the tag's TCI when tagged.
pub const VLAN_TCI: usize = 14;
/// Offset of the inner EtherType when tagged.
pub const VLAN_ETHERTYPE: usize = 16;
/// The 802.1Q TPID.
pub const TPID_8021Q: u16 = 0x8100;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

/// A MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Mac(pub [u8; 6]);

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// A zero-copy view of an Ethernet header at the start of `buf`.
#[derive(Debug)]
pub struct Ethernet<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ethernet<T> {
    /// The header at the start of `buf`.
    ///
    /// # Errors
    /// [`DropReason::EthTruncated`] if `buf` is shorter than the header (and its tag).
    pub fn new_checked(buf: T) -> Result<Self, DropReason> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(DropReason::EthTruncated);
        }
        let eth = Self { buf };
        if eth.is_tagged() && eth.buf.as_ref().len() < HEADER_LEN + VLAN_TAG_LEN {
            return Err(DropReason::EthTruncated);
        }
        Ok(eth)
    }

    fn u16_at(&self, at: usize) -> u16 {
        let b = self.buf.as_ref();
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    fn is_tagged(&self) -> bool {
        self.u16_at(ETHERTYPE) == TPID_8021Q
    }

    /// The destination MAC.
    pub fn dst(&self) -> Mac {
        let b = self.buf.as_ref();
        Mac([b[0], b[1], b[2], b[3], b[4], b[5]])
    }

    /// The source MAC.
    pub fn src(&self) -> Mac {
        let b = self.buf.as_ref();
        Mac([b[6], b[7], b[8], b[9], b[10], b[11]])
    }

    /// The VLAN ID of the 802.1Q tag, if tagged.
    pub fn vlan(&self) -> Option<u16> {
        self.is_tagged().then(|| self.u16_at(VLAN_TCI) & 0x0fff)
    }

    /// The EtherType of the payload (after the tag, if tagged).
    pub fn ethertype(&self) -> u16 {
        if self.is_tagged() {
            self.u16_at(VLAN_ETHERTYPE)
        } else {
            self.u16_at(ETHERTYPE)
        }
    }

    /// Where the payload (the IP header) starts.
    pub fn payload_offset(&self) -> usize {
        if self.is_tagged() {
            HEADER_LEN + VLAN_TAG_LEN
        } else {
            HEADER_LEN
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ethernet<T> {
    /// Sets the destination MAC.
    pub fn set_dst(&mut self, mac: Mac) {
        self.buf.as_mut()[DST..DST + 6].copy_from_slice(&mac.0);
    }

    /// Sets the source MAC.
    pub fn set_src(&mut self, mac: Mac) {
        self.buf.as_mut()[SRC..SRC + 6].copy_from_slice(&mac.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_and_untagged_headers() {
        let mut f = [0u8; 18];
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let e = Ethernet::new_checked(&f[..]).unwrap();
        assert_eq!(
            (e.ethertype(), e.payload_offset(), e.vlan()),
            (0x0800, 14, None)
        );
        f[12..14].copy_from_slice(&TPID_8021Q.to_be_bytes());
        f[14..16].copy_from_slice(&0x2064u16.to_be_bytes());
        f[16..18].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        let e = Ethernet::new_checked(&f[..]).unwrap();
        assert_eq!(
            (e.ethertype(), e.payload_offset(), e.vlan()),
            (0x86dd, 18, Some(0x064))
        );
        assert_eq!(
            Ethernet::new_checked(&f[..16]).unwrap_err(),
            DropReason::EthTruncated
        );
        assert_eq!(
            Ethernet::new_checked(&f[..13]).unwrap_err(),
            DropReason::EthTruncated
        );
    }
}
