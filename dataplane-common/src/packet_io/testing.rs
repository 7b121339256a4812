//! Test helpers for the I/O backends: a throwaway network namespace with a veth pair.

use std::io;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace with a veth pair `veth-a`–`veth-b`, deleted on drop.
#[derive(Debug)]
pub struct Netns(String);

impl Netns {
    /// A fresh namespace with the pair up; `None` when not root.
    ///
    /// # Panics
    /// When `ip` fails.
    pub fn new() -> Option<Self> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("dp-io-{}-{n}", std::process::id());
        let ip = |args: &[&str]| {
            let ok = Command::new("ip")
                .args(args)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "ip {args:?}");
        };
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(std::process::Stdio::null())
            .status();
        ip(&["netns", "add", &name]);
        let ns = Self(name);
        ip(&[
            "-n", &ns.0, "link", "add", "name", "veth-a", "type", "veth", "peer", "name", "veth-b",
        ]);
        ip(&["-n", &ns.0, "link", "set", "veth-a", "up"]);
        ip(&["-n", &ns.0, "link", "set", "veth-b", "up"]);
        Some(ns)
    }

    /// Runs `f` on a thread inside the namespace.
    ///
    /// # Panics
    /// When entering the namespace fails, or `f` panics.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/var/run/netns/{}", self.0);
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = std::fs::File::open(&path).unwrap();
                // SAFETY: `file` is an open netns file; this thread alone moves into it.
                let ret = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(ret, 0, "setns: {}", io::Error::last_os_error());
                f()
            })
            .join()
            .unwrap()
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

impl Netns {
    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.0
    }
}
