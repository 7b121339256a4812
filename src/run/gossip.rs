//! Joining the gossip membership, for every daemon that has `[gossip] listen` (`--gossip`).

use crate::config::Config;
use crate::shutdown::Shutdown;
use anyhow::Context;
use dataplane_common::membership::{join, udp::Agent};
use dataplane_common::store::Store;
use dataplane_common::telemetry::Telemetry;

/// Joins when configured (seeded from the store's registrations and `[gossip] seeds`);
/// the agent leaves the cluster at shutdown. Exports `gossip_live_members`.
pub(crate) async fn join(
    config: &Config,
    store: Option<&dyn Store>,
    telemetry: &Telemetry,
    shutdown: &Shutdown,
) -> anyhow::Result<Option<Agent>> {
    let Some(bind) = config.gossip.listen else {
        return Ok(None);
    };
    let agent = join::join(
        store,
        bind,
        config.gossip.seeds.clone(),
        telemetry,
        shutdown.clone().wait(),
    )
    .await
    .with_context(|| format!("cannot join the gossip membership on {bind}"))?;
    Ok(Some(agent))
}
