//! One probe of one address and port: a TCP connect, or an HTTP GET that must answer 2xx or
//! 3xx, within a timeout.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a probe does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Probe {
    /// The TCP handshake completes.
    #[default]
    Tcp,
    /// `GET path HTTP/1.0` answers with a 2xx or 3xx status.
    Http {
        /// The request path, starting with `/`.
        path: String,
    },
}

/// Why a probe failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// No answer within the timeout.
    #[error("timed out")]
    Timeout,
    /// The connection or the exchange failed.
    #[error("{0}")]
    Io(std::io::ErrorKind),
    /// The HTTP status was not 2xx or 3xx.
    #[error("HTTP status {0}")]
    Status(u16),
    /// The answer was not HTTP.
    #[error("not an HTTP response")]
    Malformed,
}

impl From<std::io::Error> for ProbeError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e.kind())
    }
}

impl Probe {
    /// Probes `target` once, giving up after `timeout`.
    ///
    /// # Errors
    /// Why the target is not healthy.
    pub async fn run(&self, target: SocketAddr, timeout: Duration) -> Result<(), ProbeError> {
        tokio::time::timeout(timeout, self.exchange(target))
            .await
            .map_err(|_| ProbeError::Timeout)?
    }

    async fn exchange(&self, target: SocketAddr) -> Result<(), ProbeError> {
        let mut stream = TcpStream::connect(target).await?;
        let Self::Http { path } = self else {
            return Ok(());
        };
        let request = format!(
            "GET {path} HTTP/1.0\r\nHost: {target}\r\nUser-Agent: dataplane-health\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut head = [0u8; 64];
        let mut len = 0;
        while len < 12 {
            let n = stream.read(&mut head[len..]).await?;
            if n == 0 {
                break;
            }
            len += n;
        }
        status(&head[..len]).and_then(|code| match code {
            200..=399 => Ok(()),
            _ => Err(ProbeError::Status(code)),
        })
    }
}

//= https://www.rfc-editor.org/rfc/rfc9112#section-4
//# status-line = HTTP-version SP status-code SP [ reason-phrase ]
fn status(head: &[u8]) -> Result<u16, ProbeError> {
    let line = head.strip_prefix(b"HTTP/1.").ok_or(ProbeError::Malformed)?;
    match line {
        [_, b' ', a, b, c, ..] if [a, b, c].iter().all(|d| d.is_ascii_digit()) => {
            Ok(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => Err(ProbeError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn http_server(reply: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(reply).await;
            }
        });
        addr
    }

    #[test]
    fn status_lines_parse() {
        assert_eq!(status(b"HTTP/1.1 204 No Content\r\n"), Ok(204));
        assert_eq!(status(b"HTTP/1.0 503"), Ok(503));
        assert_eq!(status(b"SSH-2.0-OpenSSH"), Err(ProbeError::Malformed));
        assert_eq!(status(b"HTTP/1.1 2x0"), Err(ProbeError::Malformed));
    }

    #[tokio::test]
    async fn tcp_and_http_probes_tell_up_from_down() {
        let t = Duration::from_secs(2);
        let ok = http_server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await;
        let bad = http_server(b"HTTP/1.1 503 Unavailable\r\n\r\n").await;
        let http = Probe::Http {
            path: "/healthz".into(),
        };
        assert_eq!(Probe::Tcp.run(ok, t).await, Ok(()));
        assert_eq!(http.run(ok, t).await, Ok(()));
        assert_eq!(http.run(bad, t).await, Err(ProbeError::Status(503)));
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap()
        };
        assert_eq!(
            Probe::Tcp.run(closed, t).await,
            Err(ProbeError::Io(std::io::ErrorKind::ConnectionRefused))
        );
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let http = Probe::Http { path: "/".into() };
        let got = http.run(addr, Duration::from_millis(100)).await;
        assert_eq!(got, Err(ProbeError::Timeout));
        drop(listener);
    }
}
