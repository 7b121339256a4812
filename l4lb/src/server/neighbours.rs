//! The kernel's neighbour table, so that frames to on-link real servers carry their own MAC
//! (read from `/proc/net/arp`: IPv4 only; IPv6 real servers go to the gateway's MAC).

use crate::packet::Mac;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

/// `ATF_COM`: the entry is resolved.
const ATF_COM: u32 = 0x2;

/// Resolved entries of `/proc/net/arp` on `interface`.
pub fn read(interface: &str) -> BTreeMap<IpAddr, Mac> {
    std::fs::read_to_string("/proc/net/arp")
        .map(|t| parse_arp(&t, interface))
        .unwrap_or_default()
}

/// The IPv4 default gateway through `interface`, from `/proc/net/route`.
pub fn default_gateway(interface: &str) -> Option<Ipv4Addr> {
    let text = std::fs::read_to_string("/proc/net/route").ok()?;
    parse_route(&text, interface)
}

fn parse_mac(s: &str) -> Option<Mac> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for m in &mut mac {
        *m = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(Mac(mac))
}

fn parse_arp(text: &str, interface: &str) -> BTreeMap<IpAddr, Mac> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let [ip, _, flags, mac, _, dev] = f[..] else {
                return None;
            };
            let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).ok()?;
            if dev != interface || flags & ATF_COM == 0 {
                return None;
            }
            Some((ip.parse().ok()?, parse_mac(mac)?))
        })
        .collect()
}

fn parse_route(text: &str, interface: &str) -> Option<Ipv4Addr> {
    text.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 3 || f[0] != interface || f[1] != "00000000" {
            return None;
        }
        // The kernel prints the address in host (little-endian) order.
        let gw = u32::from_str_radix(f[2], 16).ok()?;
        (gw != 0).then(|| Ipv4Addr::from(gw.swap_bytes()))
    })
}

/// Parses `aa:bb:cc:dd:ee:ff`.
///
/// # Errors
/// A message saying what is wrong.
pub fn mac(s: &str) -> Result<Mac, String> {
    parse_mac(s).ok_or_else(|| format!("`{s}` is not a MAC address (aa:bb:cc:dd:ee:ff)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolved_entries_of_the_interface_are_read() {
        let arp = "IP address       HW type     Flags       HW address            Mask     Device\n\
                   198.51.100.11    0x1         0x2         02:00:00:00:01:0b     *        lb0\n\
                   198.51.100.12    0x1         0x0         00:00:00:00:00:00     *        lb0\n\
                   198.51.100.13    0x1         0x6         02:00:00:00:01:0d     *        lb0\n\
                   198.51.100.14    0x1         0x2         02:00:00:00:01:0e     *        eth9\n";
        let got = parse_arp(arp, "lb0");
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[&ip("198.51.100.11")], Mac([2, 0, 0, 0, 1, 0x0b]));
        assert!(got.contains_key(&ip("198.51.100.13")));
    }

    #[test]
    fn the_default_route_gives_the_gateway() {
        let route = "Iface\tDestination\tGateway \tFlags\n\
                     lb0\t000200C0\t00000000\t0001\n\
                     lb0\t00000000\t016433C6\t0003\n";
        assert_eq!(
            parse_route(route, "lb0"),
            Some(Ipv4Addr::new(198, 51, 100, 1))
        );
        assert_eq!(parse_route(route, "eth0"), None);
        assert_eq!(mac("02:00:00:00:01:0b"), Ok(Mac([2, 0, 0, 0, 1, 0x0b])));
        assert!(mac("02:00:00:00:01").is_err());
    }
}
