use super::*;
use proptest::prelude::*;

const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0c];
const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x05];

/// A query frame from `src` to `dst` (same family), optionally 802.1Q-tagged, with a
/// correct UDP checksum.
pub(crate) fn udp_frame(src: SocketAddr, dst: SocketAddr, payload: &[u8], vlan: bool) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&SERVER_MAC);
    f.extend_from_slice(&CLIENT_MAC);
    if vlan {
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x2a]);
    }
    let udp_len = (UDP_HEADER + payload.len()) as u16;
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f.extend_from_slice(&[0x08, 0x00]);
            let l3 = f.len();
            f.extend_from_slice(&[0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 61, 17, 0, 0]);
            f[l3 + 2..l3 + 4].copy_from_slice(&(20 + udp_len).to_be_bytes());
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
            let c = checksum::checksum(&f[l3..l3 + 20]);
            f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            f.extend_from_slice(&[0x86, 0xdd]);
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&udp_len.to_be_bytes());
            f.extend_from_slice(&[17, 61]);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
        }
        _ => panic!("one family"),
    }
    f.extend_from_slice(&src.port().to_be_bytes());
    f.extend_from_slice(&dst.port().to_be_bytes());
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    assert!(checksum::complete(&mut f));
    f
}

/// Recomputes both checksums of `f` independently of [`reply`]: the IPv4 header sums to all
/// ones, and so does the UDP pseudo-header plus segment.
fn assert_checksums(f: &[u8]) {
    let l = frame::parse(f).unwrap().unwrap();
    if !l.ipv6 {
        assert_eq!(checksum::fold(checksum::add(0, &f[l.l3..l.l4])), 0xffff);
    }
    let mut acc = checksum::add(checksum::add(0, l.src(f)), l.dst(f));
    acc += (l.end - l.l4) as u64 + 17;
    assert_eq!(checksum::fold(checksum::add(acc, &f[l.l4..l.end])), 0xffff);
    assert_ne!(u16::from_be_bytes([f[l.l4 + 6], f[l.l4 + 7]]), 0);
}

fn addrs(v6: bool) -> (SocketAddr, SocketAddr) {
    if v6 {
        (
            "[2001:db8::c]:40000".parse().unwrap(),
            "[2001:db8::53]:53".parse().unwrap(),
        )
    } else {
        (
            "192.0.2.12:40000".parse().unwrap(),
            "192.0.2.53:53".parse().unwrap(),
        )
    }
}

#[test]
fn the_reply_goes_back_where_the_query_came_from_with_valid_checksums() {
    for v6 in [false, true] {
        for vlan in [false, true] {
            let (client, server) = addrs(v6);
            let question = b"a query of odd length";
            let mut buf = udp_frame(client, server, question, vlan);
            let q = query(&buf, 53).unwrap();
            assert_eq!(q.client, client);
            assert_eq!(&buf[q.payload.clone()], question);
            // A reply longer than the query, of odd length, written where the query was.
            let answer: Vec<u8> = (0..301u16).map(|i| i as u8).collect();
            buf.resize(q.payload.start + answer.len(), 0);
            buf[q.payload.start..].copy_from_slice(&answer);
            let len = reply(&mut buf, &q, answer.len());
            assert_eq!(len, buf.len());
            let mut want = udp_frame(server, client, &answer, vlan);
            // Back to the client's MAC, from ours.
            want[..6].copy_from_slice(&CLIENT_MAC);
            want[6..12].copy_from_slice(&SERVER_MAC);
            // Byte for byte as a frame built from scratch, but for the TTL, which a reply
            // sets afresh, and the checksum that covers it.
            let ttl = if v6 { q.layout.l3 + 7 } else { q.layout.l3 + 8 };
            assert_eq!(buf[ttl], 64);
            let mut got = buf.clone();
            got[ttl] = 61;
            if !v6 {
                got[q.layout.l3 + 10..q.layout.l3 + 12]
                    .copy_from_slice(&want[q.layout.l3 + 10..q.layout.l3 + 12]);
            }
            assert_eq!(got, want, "v6 {v6} vlan {vlan}");
            assert_checksums(&buf);
            let back = query(&buf, 40000).unwrap();
            assert_eq!(back.client, server);
        }
    }
}

#[test]
fn what_is_not_a_plain_udp_query_to_our_port_is_dropped_with_its_reason() {
    let (client, server) = addrs(false);
    let good = udp_frame(client, server, b"q", false);
    assert_eq!(query(&good, 54).unwrap_err(), Drop::Port);
    let mut tcp = good.clone();
    tcp[23] = 6;
    assert_eq!(query(&tcp, 53).unwrap_err(), Drop::NotUdp);
    let mut fragment = good.clone();
    fragment[20] = 0x20;
    assert_eq!(query(&fragment, 53).unwrap_err(), Drop::Fragment);
    let mut arp = good.clone();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert_eq!(query(&arp, 53).unwrap_err(), Drop::NotIp);
    let mut long_udp = good.clone();
    long_udp[38..40].copy_from_slice(&100u16.to_be_bytes());
    assert_eq!(query(&long_udp, 53).unwrap_err(), Drop::Udp);
    let mut short_udp = good.clone();
    short_udp[38..40].copy_from_slice(&7u16.to_be_bytes());
    assert_eq!(query(&short_udp, 53).unwrap_err(), Drop::Udp);
    let mut options = good.clone();
    options[14] = 0x46;
    options.splice(34..34, [1, 1, 1, 0]);
    options[16..18].copy_from_slice(&(24u16 + 9).to_be_bytes());
    assert_eq!(query(&options, 53).unwrap_err(), Drop::Options);
    let broadcast = udp_frame(
        "255.255.255.255:40000".parse().unwrap(),
        server,
        b"q",
        false,
    );
    assert_eq!(query(&broadcast, 53).unwrap_err(), Drop::Source);
    let (client6, server6) = addrs(true);
    let mut zero = udp_frame(client6, server6, b"q", false);
    zero[60..62].fill(0);
    assert_eq!(query(&zero, 53).unwrap_err(), Drop::Udp);
    let multicast = udp_frame("[ff02::1]:5353".parse().unwrap(), server6, b"q", false);
    assert_eq!(query(&multicast, 53).unwrap_err(), Drop::Source);
}

#[test]
fn every_truncation_of_a_query_is_dropped() {
    for v6 in [false, true] {
        let (client, server) = addrs(v6);
        let f = udp_frame(client, server, b"0123456789", true);
        for cut in 0..f.len() {
            let err = query(&f[..cut], 53).unwrap_err();
            assert!(
                matches!(err, Drop::Ethernet | Drop::Ipv4 | Drop::Ipv6),
                "cut at {cut}: {err:?}"
            );
        }
    }
}

proptest! {
    /// Any bytes at all: an answer or a reason, never a panic; and a reply built from an
    /// accepted frame always carries valid checksums.
    #[test]
    fn arbitrary_frames_never_panic(
        mut f in proptest::collection::vec(any::<u8>(), 0..200),
        ipv4 in any::<bool>(),
        len in 0usize..64,
    ) {
        if f.len() > 14 {
            f[12..14].copy_from_slice(if ipv4 { &[0x08, 0x00] } else { &[0x86, 0xdd] });
            if ipv4 && f.len() > 23 {
                f[14] = 0x45;
                f[23] = 17;
            } else if !ipv4 && f.len() > 20 {
                f[14] = 0x60;
                f[20] = 17;
            }
        }
        let port = frame::parse(&f)
            .ok()
            .flatten()
            .and_then(|l| f.get(l.l4 + 2..l.l4 + 4))
            .map_or(53, |b| u16::from_be_bytes([b[0], b[1]]));
        if let Ok(q) = query(&f, port) {
            let mut buf = f.clone();
            buf.resize(q.payload.start + len, 7);
            let n = reply(&mut buf, &q, len);
            assert_checksums(&buf[..n]);
        }
    }
}

proptest! {
    /// Any query and any reply length: the reply frame's checksums verify by recomputation
    /// and its lengths are the reply's.
    #[test]
    fn replies_always_carry_valid_checksums(
        payload in proptest::collection::vec(any::<u8>(), 0..600),
        answer in proptest::collection::vec(any::<u8>(), 0..1400),
        v6 in any::<bool>(),
        vlan in any::<bool>(),
    ) {
        let (client, server) = addrs(v6);
        let mut buf = udp_frame(client, server, &payload, vlan);
        let q = query(&buf, 53).unwrap();
        buf.resize(q.payload.start + answer.len(), 0);
        buf[q.payload.start..].copy_from_slice(&answer);
        let n = reply(&mut buf, &q, answer.len());
        prop_assert_eq!(n, buf.len());
        assert_checksums(&buf);
        let back = query(&buf, client.port()).unwrap();
        prop_assert_eq!(back.client, server);
        prop_assert_eq!(&buf[back.payload], &answer[..]);
    }
}
