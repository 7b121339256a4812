//! Store URLs: `etcd://HOST:PORT[,HOST:PORT...]` and `embedded:DIR`.

use super::StoreError;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Where a store is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// An etcd cluster, by its client endpoints (`http://HOST:PORT`).
    Etcd {
        /// The endpoints.
        endpoints: Vec<String>,
    },
    /// The embedded store, persisted under a directory.
    Embedded {
        /// The data directory.
        dir: PathBuf,
    },
}

impl FromStr for StoreUrl {
    type Err = StoreError;

    fn from_str(url: &str) -> Result<Self, StoreError> {
        let bad = |reason: &str| StoreError::BadUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(hosts) = url.strip_prefix("etcd://") {
            let mut endpoints = Vec::new();
            for host in hosts.split(',') {
                let (name, port) = host
                    .rsplit_once(':')
                    .ok_or_else(|| bad("each endpoint needs HOST:PORT"))?;
                if name.is_empty() || name.contains('/') {
                    return Err(bad("each endpoint needs HOST:PORT"));
                }
                port.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| bad(&format!("`{port}` is not a port")))?;
                endpoints.push(format!("http://{host}"));
            }
            Ok(Self::Etcd { endpoints })
        } else if let Some(dir) = url.strip_prefix("embedded:") {
            if dir.is_empty() {
                return Err(bad(
                    "embedded: needs a directory, e.g. embedded:/var/lib/dataplane",
                ));
            }
            Ok(Self::Embedded { dir: dir.into() })
        } else {
            Err(bad(
                "expected etcd://HOST:PORT[,HOST:PORT...] or embedded:DIR",
            ))
        }
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Etcd { endpoints } => {
                let hosts: Vec<_> = endpoints
                    .iter()
                    .map(|e| e.trim_start_matches("http://"))
                    .collect();
                write!(f, "etcd://{}", hosts.join(","))
            }
            Self::Embedded { dir } => write!(f, "embedded:{}", dir.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_print() {
        let etcd: StoreUrl = "etcd://127.0.0.1:2379,10.0.0.2:2379".parse().unwrap();
        assert_eq!(
            etcd,
            StoreUrl::Etcd {
                endpoints: vec![
                    "http://127.0.0.1:2379".into(),
                    "http://10.0.0.2:2379".into()
                ]
            }
        );
        assert_eq!(etcd.to_string(), "etcd://127.0.0.1:2379,10.0.0.2:2379");
        let emb: StoreUrl = "embedded:/tmp/x".parse().unwrap();
        assert_eq!(emb.to_string(), "embedded:/tmp/x");
        for bad in [
            "http://x:1",
            "etcd://nohost",
            "etcd://h:0",
            "etcd://h:x",
            "embedded:",
        ] {
            let err = bad.parse::<StoreUrl>().unwrap_err();
            assert!(matches!(err, StoreError::BadUrl { .. }), "{bad}: {err}");
        }
    }
}
