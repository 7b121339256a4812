//! Scraping a node's `/metrics` into samples (ureq, on the blocking pool).

use super::exposition::{self, Parsed};
use std::time::Duration;

/// Why a scrape failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScrapeError {
    /// Not reachable, or the body could not be read.
    #[error("{0}")]
    Transport(String),
    /// An error status.
    #[error("HTTP {0}")]
    Status(u16),
}

/// Scrapes `url` once.
///
/// # Errors
/// When the page cannot be fetched.
pub async fn scrape(agent: &ureq::Agent, url: &str) -> Result<Parsed, ScrapeError> {
    let (agent, url) = (agent.clone(), url.to_owned());
    tokio::task::spawn_blocking(move || {
        let mut response = agent
            .get(&url)
            .call()
            .map_err(|e| ScrapeError::Transport(e.to_string()))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(ScrapeError::Status(status));
        }
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| ScrapeError::Transport(e.to_string()))?;
        Ok(exposition::parse(&text))
    })
    .await
    .map_err(|e| ScrapeError::Transport(e.to_string()))?
}

/// An agent for scrapes: error statuses are answers, every request bounded by `timeout`.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into()
}
