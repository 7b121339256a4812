//! Reverse-lookup owner names: `in-addr.arpa.` (RFC 1035 section 3.5) and `ip6.arpa.`
//! (RFC 3596 section 2.5).

use dataplane_common::model::Name;
use std::fmt::Write;
use std::net::IpAddr;

/// The PTR owner of `ip`: `d.c.b.a.in-addr.arpa.`, or 32 reversed nibbles and `ip6.arpa.`.
pub fn name(ip: IpAddr) -> Name {
    let mut s = String::with_capacity(73);
    match ip {
        //= https://www.rfc-editor.org/rfc/rfc1035#section-3.5
        //# the four octets of the address are written in reverse order, separated by dots,
        //# and followed by IN-ADDR.ARPA.
        IpAddr::V4(v4) => {
            for octet in v4.octets().iter().rev() {
                let _ = write!(s, "{octet}.");
            }
            s.push_str("in-addr.arpa.");
        }
        //= https://www.rfc-editor.org/rfc/rfc3596#section-2.5
        //# An IPv6 address is represented as a name in the IP6.ARPA domain by a sequence of
        //# nibbles separated by dots with the suffix ".IP6.ARPA".
        IpAddr::V6(v6) => {
            for byte in v6.octets().iter().rev() {
                let _ = write!(s, "{:x}.{:x}.", byte & 0xf, byte >> 4);
            }
            s.push_str("ip6.arpa.");
        }
    }
    s.parse()
        .expect("invariant: reverse names are digits, hex letters and dots, under 255 octets")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names_reverse_octets_and_nibbles() {
        assert_eq!(
            name("10.3.0.1".parse().unwrap()).as_str(),
            "1.0.3.10.in-addr.arpa."
        );
        assert_eq!(
            name("2001:db8::567:89ab".parse().unwrap()).as_str(),
            "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
        );
    }
}
