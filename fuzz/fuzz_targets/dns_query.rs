//! Any bytes as a query: the responder never panics, never writes past its buffer, and
//! anything it answers starts with the query's ID and has QR set.
#![no_main]

use dataplane_common::clock::{Clock, ManualClock};
use dns::authority::Catalog;
use dns::respond::{Options, Outcome, Responder, Transport};
use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;
use std::sync::OnceLock;

const ZONE: &str = "$ORIGIN z.test.\n$TTL 30\n@ SOA ns h 1 2 3 4 5\n@ NS ns\nns A 10.0.0.1\n\
www A 10.0.0.2\nwww A 10.0.0.3\nwww AAAA ::1\nalias CNAME www\n*.w A 10.0.0.4\n\
sub NS ns.sub\nns.sub A 10.0.0.5\n_s._tcp SRV 0 1 80 www\n@ MX 1 www\nt TXT \"x\"\n";

fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let zones = dataplane_common::zonefile::parse(ZONE, None).expect("the fuzz zone parses");
        Catalog::build(zones, &HashSet::new())
    })
}

fuzz_target!(|data: &[u8]| {
    let mut responder = Responder::new(1, Options::default());
    let now = ManualClock::new().now();
    for (transport, size) in [(Transport::Udp, 512), (Transport::Tcp, 65_535)] {
        let mut out = vec![0u8; size];
        if let Outcome::Reply { len, .. } = responder.handle_query(catalog(), now, "192.0.2.1:5353".parse().unwrap(), transport, data, &mut out) {
            assert!(len <= size && len >= 12);
            assert_eq!(&out[..2], &data[..2], "the reply carries the query's ID");
            assert!(out[2] & 0x80 != 0, "QR is set");
        }
    }
});
