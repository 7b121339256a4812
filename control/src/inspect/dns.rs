//! A DNS query over UDP and the addresses in its answer: a minimal RFC 1035 codec for the
//! inspection's DNS probes (A and AAAA only). The wire codec proper lives in the dns crate;
//! control does not depend on it for one question.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// Why a DNS probe failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnsProbeError {
    /// No answer within the timeout.
    #[error("timed out")]
    Timeout,
    /// The socket failed.
    #[error("{0}")]
    Io(std::io::ErrorKind),
    /// The reply could not be read, or did not answer our question.
    #[error("malformed reply")]
    Malformed,
    /// The reply's rcode was not NOERROR.
    #[error("rcode {0}")]
    Rcode(u8),
}

/// Record types asked.
pub const A: u16 = 1;
/// AAAA.
pub const AAAA: u16 = 28;

//= https://www.rfc-editor.org/rfc/rfc1035#section-4.1.1
//# ID, QR Opcode AA TC RD RA Z RCODE, QDCOUNT, ANCOUNT, NSCOUNT, ARCOUNT
/// A query for `name` (dotted, absolute or not) of `qtype`, with `id`. None when a label is
/// longer than 63 octets.
pub fn query(id: u16, name: &str, qtype: u16) -> Option<Vec<u8>> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        q.push(u8::try_from(label.len()).ok().filter(|n| *n <= 63)?);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    Some(q)
}

/// Skips a (possibly compressed) name at `at`; returns the offset after it.
fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *msg.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2),
            l => at += 1 + usize::from(l),
        }
    }
}

fn u16_at(msg: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?]))
}

/// The A and AAAA addresses in the answer section of the reply to `id`.
///
/// # Errors
/// [`DnsProbeError::Malformed`] or [`DnsProbeError::Rcode`].
pub fn answer(reply: &[u8], id: u16) -> Result<Vec<IpAddr>, DnsProbeError> {
    let bad = DnsProbeError::Malformed;
    if reply.len() < 12 || u16_at(reply, 0) != Some(id) || reply[2] & 0x80 == 0 {
        return Err(bad);
    }
    let rcode = reply[3] & 0x0f;
    if rcode != 0 {
        return Err(DnsProbeError::Rcode(rcode));
    }
    let qd = u16_at(reply, 4).ok_or(bad.clone())?;
    let an = u16_at(reply, 6).ok_or(bad.clone())?;
    let mut at = 12;
    for _ in 0..qd {
        at = skip_name(reply, at).ok_or(bad.clone())? + 4;
    }
    let mut out = Vec::new();
    for _ in 0..an {
        at = skip_name(reply, at).ok_or(bad.clone())?;
        let rtype = u16_at(reply, at).ok_or(bad.clone())?;
        let rdlen = usize::from(u16_at(reply, at + 8).ok_or(bad.clone())?);
        let rdata = reply.get(at + 10..at + 10 + rdlen).ok_or(bad.clone())?;
        match (rtype, rdata.len()) {
            (A, 4) => out.push(IpAddr::V4(Ipv4Addr::new(
                rdata[0], rdata[1], rdata[2], rdata[3],
            ))),
            (AAAA, 16) => {
                let octets: [u8; 16] = rdata.try_into().map_err(|_| bad.clone())?;
                out.push(IpAddr::V6(Ipv6Addr::from(octets)));
            }
            _ => {}
        }
        at += 10 + rdlen;
    }
    Ok(out)
}

/// Asks `server` for `name`'s `qtype` records over UDP; returns the answered addresses.
///
/// # Errors
/// Why no usable answer came.
pub async fn ask(
    server: SocketAddr,
    name: &str,
    qtype: u16,
    timeout: Duration,
) -> Result<Vec<IpAddr>, DnsProbeError> {
    let io = |e: std::io::Error| DnsProbeError::Io(e.kind());
    let bind: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = tokio::net::UdpSocket::bind(bind).await.map_err(io)?;
    socket.connect(server).await.map_err(io)?;
    // A per-probe id from the socket's port: unique among concurrent probes of one node.
    let id = socket.local_addr().map_err(io)?.port();
    let q = query(id, name, qtype).ok_or(DnsProbeError::Malformed)?;
    let exchange = async {
        socket.send(&q).await.map_err(io)?;
        let mut buf = vec![0u8; 4096];
        loop {
            let n = socket.recv(&mut buf).await.map_err(io)?;
            match answer(&buf[..n], id) {
                Err(DnsProbeError::Malformed) => {}
                other => return other,
            }
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| DnsProbeError::Timeout)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_encode_and_answers_with_compression_decode() {
        let q = query(0x1234, "www.example.test.", A).unwrap();
        assert_eq!(&q[..2], &[0x12, 0x34]);
        assert_eq!(&q[12..17], b"\x03www\x07");
        let mut reply = q.clone();
        reply[2] = 0x84;
        reply[7] = 2; // ANCOUNT 2
        for last in [7u8, 9] {
            reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 192, 0, 2, last]);
        }
        assert_eq!(
            answer(&reply, 0x1234).unwrap(),
            [
                "192.0.2.7".parse::<IpAddr>().unwrap(),
                "192.0.2.9".parse().unwrap()
            ]
        );
        assert_eq!(answer(&reply, 0x9999), Err(DnsProbeError::Malformed));
        reply[3] = 3;
        assert_eq!(answer(&reply, 0x1234), Err(DnsProbeError::Rcode(3)));
        assert!(query(1, &"x".repeat(64), A).is_none());
    }
}
