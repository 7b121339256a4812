//! A real etcd for tests: started on free loopback ports with a temporary data directory,
//! restartable, killed when dropped. Needs the `etcd` binary (Debian `etcd-server`).

use super::{Etcd, Store, TlsFiles};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running etcd that belongs to one test.
#[derive(Debug)]
pub struct EtcdServer {
    child: Option<Child>,
    dir: PathBuf,
    client_port: u16,
    peer_port: u16,
    tls: Option<TlsFiles>,
    /// Further flags, e.g. `--max-txn-ops 1024`.
    flags: Vec<String>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn binary() -> String {
    std::env::var("ETCD_BIN").unwrap_or_else(|_| "etcd".to_owned())
}

impl EtcdServer {
    /// Starts etcd and waits until it answers.
    ///
    /// # Panics
    /// When etcd is not installed or does not come up; the message says how to install it.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// [`EtcdServer::start`] with further etcd flags (`["--max-txn-ops", "1024"]`), which a
    /// restart keeps.
    ///
    /// # Panics
    /// As [`EtcdServer::start`].
    pub async fn start_with(flags: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "dataplane-etcd-{}-{}",
            std::process::id(),
            free_port()
        ));
        let mut server = Self {
            child: None,
            dir,
            client_port: free_port(),
            peer_port: free_port(),
            tls: None,
            flags: flags.iter().map(|&f| f.to_owned()).collect(),
        };
        server.spawn().await;
        server
    }

    /// Starts an etcd that requires client certificates signed by a CA made for this test
    /// (with openssl); [`EtcdServer::client_tls`] gives the files a client needs.
    ///
    /// # Panics
    /// When etcd or openssl is missing or the server does not come up.
    pub async fn start_tls() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "dataplane-etcd-tls-{}-{}",
            std::process::id(),
            free_port()
        ));
        let pki = dir.join("pki");
        make_pki(&pki);
        let mut server = Self {
            child: None,
            dir,
            client_port: free_port(),
            peer_port: free_port(),
            tls: Some(TlsFiles {
                ca: pki.join("ca.pem"),
                cert: pki.join("client.pem"),
                key: pki.join("client-key.pem"),
            }),
            flags: Vec::new(),
        };
        server.spawn().await;
        server
    }

    /// The files a client needs to talk to a [`EtcdServer::start_tls`] server.
    pub fn client_tls(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// The store URL of this server.
    pub fn url(&self) -> String {
        format!("etcd://127.0.0.1:{}", self.client_port)
    }

    /// The etcd process's id while it runs (benchmarks read its CPU time).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The client endpoint (`http://127.0.0.1:PORT`, or `https://` with TLS).
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    async fn spawn(&mut self) {
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut command = Command::new(binary());
        command
            .args(["--name", "test", "--data-dir"])
            .arg(self.dir.join("data"));
        if self.tls.is_some() {
            let pki = self.dir.join("pki");
            command
                .arg("--client-cert-auth")
                .arg("--trusted-ca-file")
                .arg(pki.join("ca.pem"))
                .arg("--cert-file")
                .arg(pki.join("server.pem"))
                .arg("--key-file")
                .arg(pki.join("server-key.pem"));
        }
        let child = command
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("test={peer}")])
            .args(["--log-level", "error"])
            .args(&self.flags)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd is not installed: apt-get install -y etcd-server (or set ETCD_BIN)");
        self.child = Some(child);
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.client_port))
                .await
                .is_ok()
            {
                // Listening is not serving: wait until a read goes through.
                if let Ok(etcd) =
                    Etcd::connect_tls(std::slice::from_ref(&client), self.tls.as_ref()).await
                    && etcd.get("health-probe").await.is_ok()
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("etcd did not come up on {client}");
    }

    /// Kills etcd (SIGKILL, as a crash would) without removing its data.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same ports and data.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, with openssl.
fn make_pki(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).expect("a temporary directory");
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is not installed: apt-get install -y openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req",
        "-x509",
        "-days",
        "2",
        "-subj",
        "/CN=dataplane-test-ca",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
    ];
    ca.extend(key);
    ca.extend([
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    run(&ca);
    for (name, usage) in [("server", "serverAuth"), ("client", "clientAuth")] {
        let (k, csr, pem, cn) = (
            format!("{name}-key.pem"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("/CN={name}"),
        );
        let mut req = vec!["req", "-subj", &cn, "-keyout", &k, "-out", &csr];
        req.extend(key);
        run(&req);
        let ext = dir.join(format!("{name}.ext"));
        std::fs::write(
            &ext,
            format!(
                "subjectAltName=IP:127.0.0.1\nextendedKeyUsage={usage}\nbasicConstraints=CA:FALSE\n"
            ),
        )
        .expect("write");
        let ext = ext.to_string_lossy().into_owned();
        run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &pem,
            "-extfile",
            &ext,
        ]);
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
