//! Shared helpers for the end-to-end tests: run the `dataplane` binary, ask it with dig.

#![allow(dead_code, unreachable_pub)]

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A free loopback port (UDP and TCP both free at the time of asking).
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A `dataplane` process that is killed when dropped.
pub struct Daemon {
    pub child: Child,
    pub dns: SocketAddr,
    pub metrics: SocketAddr,
}

impl Daemon {
    /// Starts `dataplane dns` with `args` added and waits until it answers `ready_name`.
    pub fn dns(args: &[&str], ready_name: &str) -> Self {
        let dns: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let metrics: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let child = Command::new(env!("CARGO_BIN_EXE_dataplane"))
            .args([
                "dns",
                "--listen",
                &dns.to_string(),
                "--metrics-listen",
                &metrics.to_string(),
            ])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let daemon = Self {
            child,
            dns,
            metrics,
        };
        for _ in 0..100 {
            let out = daemon.dig(&[ready_name, "SOA"]);
            if out.status == "NOERROR" {
                return daemon;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("dataplane dns did not answer {ready_name} SOA on {dns}");
    }

    pub fn dig(&self, args: &[&str]) -> Dig {
        dig(self.dns, args)
    }

    /// The /metrics text.
    pub fn metrics(&self) -> String {
        let out = Command::new("curl")
            .args(["-s", &format!("http://{}/metrics", self.metrics)])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    /// Sends SIGTERM and waits; returns whether it exited successfully.
    pub fn terminate(mut self) -> bool {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What dig printed, in parts.
#[derive(Debug, Default)]
pub struct Dig {
    pub raw: String,
    pub status: String,
    pub flags: Vec<String>,
    pub question: Vec<String>,
    pub answer: Vec<String>,
    pub authority: Vec<String>,
    pub additional: Vec<String>,
}

impl Dig {
    pub fn has_flag(&self, f: &str) -> bool {
        self.flags.iter().any(|x| x == f)
    }

    /// The rdata column of each answer line (the fifth field on).
    pub fn answer_data(&self) -> Vec<String> {
        self.answer
            .iter()
            .map(|l| l.split_whitespace().skip(4).collect::<Vec<_>>().join(" "))
            .collect()
    }

    pub fn answer_types(&self) -> Vec<String> {
        self.answer
            .iter()
            .filter_map(|l| l.split_whitespace().nth(3).map(str::to_owned))
            .collect()
    }
}

/// Runs dig against `server` (no retries, no recursion) and splits its output.
pub fn dig(server: SocketAddr, args: &[&str]) -> Dig {
    let out = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args([
            "-p",
            &server.port().to_string(),
            "+norec",
            "+time=1",
            "+tries=1",
            "+nocookie",
        ])
        .args(args)
        .output()
        .expect("dig is not installed: apt-get install -y bind9-dnsutils");
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut d = Dig {
        raw: raw.clone(),
        ..Dig::default()
    };
    let mut section = "";
    for line in raw.lines() {
        if let Some(rest) = line.split("status: ").nth(1) {
            d.status = rest.split(',').next().unwrap_or("").to_owned();
        }
        if let Some(rest) = line.strip_prefix(";; flags: ") {
            d.flags = rest
                .split(';')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_owned)
                .collect();
        }
        if line.starts_with(";; QUESTION SECTION") {
            section = "q";
        } else if line.starts_with(";; ANSWER SECTION") {
            section = "an";
        } else if line.starts_with(";; AUTHORITY SECTION") {
            section = "au";
        } else if line.starts_with(";; ADDITIONAL SECTION") {
            section = "ad";
        } else if line.trim().is_empty() {
            section = "";
        } else {
            let line = line.to_owned();
            match section {
                "q" => d.question.push(line),
                "an" => d.answer.push(line),
                "au" => d.authority.push(line),
                "ad" => d.additional.push(line),
                _ => {}
            }
        }
    }
    d
}
