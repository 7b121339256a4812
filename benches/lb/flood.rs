//! A UDP flood for benches/lb/compare.sh: `flood TARGET:PORT SOCKETS SECONDS [PPS]`, and its sink:
//! `flood sink PORT` (binds the port and never reads: the kernel drops what overflows the
//! socket buffer, and no ICMP goes back).
//!
//! The flood opens SOCKETS connected UDP sockets (one source port each) and sends 18-byte datagrams
//! (64-byte frames) round robin from all of them for SECONDS, at PPS packets per second
//! (paced in bursts of 64) or as fast as one thread can.
//! Prints `sent errors`. Standalone (std only): `rustc --edition 2024 -O flood.rs`.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, sink, port] = args.as_slice()
        && sink == "sink"
    {
        let _socket = UdpSocket::bind(("0.0.0.0", port.parse::<u16>().expect("PORT"))).expect("bind");
        loop {
            std::thread::park();
        }
    }
    let (target, sockets, seconds, pps) = match args.as_slice() {
        [_, t, n, s] => (t, n, s, None),
        [_, t, n, s, r] => (t, n, s, Some(r.parse::<f64>().expect("PPS"))),
        _ => {
            eprintln!("usage: flood TARGET:PORT SOCKETS SECONDS [PPS]");
            std::process::exit(2);
        }
    };
    let sockets: usize = sockets.parse().expect("SOCKETS");
    let run = Duration::from_secs_f64(seconds.parse().expect("SECONDS"));
    let socks: Vec<UdpSocket> = (0..sockets)
        .map(|_| {
            let s = UdpSocket::bind("0.0.0.0:0").expect("bind");
            s.connect(target.as_str()).expect("connect");
            s
        })
        .collect();
    let payload = [0x5au8; 18];
    let started = Instant::now();
    let (mut sent, mut errors) = (0u64, 0u64);
    let mut next = 0usize;
    while started.elapsed() < run {
        for _ in 0..64 {
            match socks[next % socks.len()].send(&payload) {
                Ok(_) => sent += 1,
                Err(_) => errors += 1,
            }
            next += 1;
        }
        if let Some(pps) = pps {
            let due = started + Duration::from_secs_f64((sent + errors) as f64 / pps);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    }
    println!("{sent} {errors}");
}
