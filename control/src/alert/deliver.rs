//! Delivery of notifications over HTTP (ureq, on the blocking pool): the webhook payload to
//! a webhook, the alerts to an Alertmanager's `/api/v2/alerts`. Each receiver is retried
//! with backoff ([`ATTEMPTS`] times), so that a receiver restarting does not lose a
//! resolution.

use super::config::Receiver;
use super::group::Notification;
use super::payload::{self, Anchor};
use std::time::Duration;

/// Tries per receiver and notification.
pub const ATTEMPTS: u32 = 6;
/// The first retry's delay; doubled each time.
const BACKOFF: Duration = Duration::from_millis(200);

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliverError {
    /// The receiver could not be reached.
    #[error("{receiver}: {reason}")]
    Transport {
        /// The receiver's name.
        receiver: String,
        /// Why.
        reason: String,
    },
    /// The receiver answered with an error status.
    #[error("{receiver}: HTTP {status}")]
    Status {
        /// The receiver's name.
        receiver: String,
        /// The status.
        status: u16,
    },
}

/// Sends notifications to every receiver.
#[derive(Debug, Clone)]
pub struct Deliverer {
    agent: ureq::Agent,
    receivers: Vec<Receiver>,
}

impl Deliverer {
    /// A deliverer to `receivers`, each request bounded by `timeout`.
    pub fn new(receivers: Vec<Receiver>, timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .into();
        Self { agent, receivers }
    }

    /// Delivers `n` to every receiver, retrying each; returns the receivers that failed
    /// every attempt.
    pub async fn deliver(&self, n: &Notification, anchor: Anchor) -> Vec<DeliverError> {
        let sends = self.receivers.iter().map(|r| {
            let (agent, r) = (self.agent.clone(), r.clone());
            let (url, body) = match &r {
                Receiver::Webhook { name, url } => (url.clone(), payload::webhook(n, name, anchor)),
                Receiver::Alertmanager { url, .. } => (
                    format!("{}/api/v2/alerts", url.trim_end_matches('/')),
                    payload::alertmanager(n, anchor),
                ),
            };
            async move {
                let body = serde_json::to_vec(&body).expect("invariant: JSON values serialize");
                let mut delay = BACKOFF;
                let mut last = None;
                for _ in 0..ATTEMPTS {
                    let (agent, url, body, name) = (
                        agent.clone(),
                        url.clone(),
                        body.clone(),
                        r.name().to_owned(),
                    );
                    let result =
                        tokio::task::spawn_blocking(move || post(&agent, &name, &url, body))
                            .await
                            .unwrap_or_else(|e| {
                                Err(DeliverError::Transport {
                                    receiver: r.name().to_owned(),
                                    reason: e.to_string(),
                                })
                            });
                    match result {
                        Ok(()) => return None,
                        Err(e) => {
                            tracing::debug!(error = %e, "delivery failed; retrying");
                            last = Some(e);
                            tokio::time::sleep(delay).await;
                            delay *= 2;
                        }
                    }
                }
                last
            }
        });
        futures::future::join_all(sends)
            .await
            .into_iter()
            .flatten()
            .collect()
    }
}

fn post(agent: &ureq::Agent, receiver: &str, url: &str, body: Vec<u8>) -> Result<(), DeliverError> {
    let response = agent
        .post(url)
        .header("content-type", "application/json")
        .send(&body[..])
        .map_err(|e| DeliverError::Transport {
            receiver: receiver.to_owned(),
            reason: e.to_string(),
        })?;
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(DeliverError::Status {
            receiver: receiver.to_owned(),
            status,
        })
    }
}
