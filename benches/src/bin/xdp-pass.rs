//! `xdp-pass IFACE`: holds an XDP program that passes every frame on `IFACE` until killed.
//! `benches/lb/compare.sh` puts it on the bridge's end of the balancer's veth, so that the
//! fast path's `XDP_TX` frames are taken in (see `l4lb::fastpath::peer`).

use std::io;

fn main() -> io::Result<()> {
    let interface = std::env::args()
        .nth(1)
        .ok_or_else(|| io::Error::other("usage: xdp-pass IFACE"))?;
    let _link = l4lb::fastpath::peer::attach_pass(&interface)?;
    println!("xdp-pass on {interface}");
    loop {
        std::thread::park();
    }
}
