//! The inspection loop: every interval, read the store, schedule the checks over the live
//! members, run this node's share, write health changes, publish the results.

use super::checks::{self, Check, CheckResult, Kind, Newest, Report};
use super::verdict::Verdicts;
use super::{RESULTS, dns, schedule};
use crate::publish::desired::{EndpointList, endpoints_key};
use dataplane_common::clock::Clock;
use dataplane_common::health::{Probe, Thresholds};
use dataplane_common::model::{
    self, Endpoint, Health, HealthState, Name, RecordSet, RecordType, Service, Vip, Zone, keys,
};
use dataplane_common::node::{Registration, Role};
use dataplane_common::store::{Revision, Store};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};
use tokio::sync::watch;

/// How the inspector runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// This node's name (a member of the schedule, and [`Health::by`]).
    pub node: String,
    /// Time between rounds.
    pub interval: Duration,
    /// A probe not answered within this fails.
    pub timeout: Duration,
    /// Results in a row that flip an address.
    pub thresholds: Thresholds,
    /// How real servers are probed.
    pub probe: Probe,
    /// Names every DNS node must answer (A) with addresses of their record set.
    pub dns_names: Vec<Name>,
}

/// The members checks are spread over: the registered inspectors (control and up nodes)
/// and this node. With gossip (`live`: the live members' gossip addresses), an inspector
/// whose gossip address is not live is left out before its lease expires, so its checks
/// move within the gossip's detection time.
fn members(
    me: &str,
    nodes: &[Registration],
    live: Option<&watch::Receiver<Vec<SocketAddr>>>,
) -> Vec<String> {
    let live = live.map(|l| l.borrow().clone());
    let mut m: Vec<String> = nodes
        .iter()
        .filter(|n| matches!(n.role, Role::Control | Role::Up))
        .filter(|n| match (&live, n.addresses.gossip) {
            (Some(live), Some(g)) => live.contains(&g),
            _ => true,
        })
        .map(|n| n.name.clone())
        .collect();
    m.push(me.to_owned());
    m.sort();
    m.dedup();
    m
}

/// Runs until `shutdown`. `live`, when given, is the gossip membership's live members
/// ([`dataplane_common::membership::udp::Agent::live`]).
pub async fn run(
    settings: Settings,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    live: Option<watch::Receiver<Vec<SocketAddr>>>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut verdicts = Verdicts::new(settings.node.clone(), settings.thresholds);
    let mut tick = tokio::time::interval(settings.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut published: Option<Report> = None;
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = tick.tick() => {}
        }
        let round = tokio::select! {
            () = &mut shutdown => return,
            r = round(&settings, &*store, &*clock, &mut verdicts, live.as_ref()) => r,
        };
        let Some(report) = round else { continue };
        if published.as_ref() != Some(&report) {
            let key = format!("{RESULTS}{}", settings.node);
            match store.put(&key, model::encode(&report), None).await {
                Ok(_) => published = Some(report),
                Err(e) => tracing::warn!(error = %e, "cannot publish inspection results"),
            }
        }
    }
}

async fn list<T: serde::de::DeserializeOwned + model::Validate>(
    store: &dyn Store,
    prefix: &str,
) -> Option<(Vec<T>, Revision)> {
    match store.list(prefix, None).await {
        Ok(l) => {
            let newest = l.kvs.iter().map(|kv| kv.mod_revision).max().unwrap_or(0);
            Some((
                l.kvs
                    .iter()
                    .filter_map(|kv| model::decode(&kv.value).ok())
                    .collect(),
                newest,
            ))
        }
        Err(e) => {
            tracing::warn!(%prefix, error = %e, "cannot list; skipping this round");
            None
        }
    }
}

/// The headless Services and their endpoints (Services with a VIP are probed through its
/// real servers).
async fn headless(store: &dyn Store) -> Option<Vec<(Service, Vec<Endpoint>)>> {
    let (services, _) = list::<Service>(store, keys::SERVICES).await?;
    let mut out = Vec::new();
    for service in services.into_iter().filter(Service::is_headless) {
        let key = endpoints_key(&service.namespace, &service.name);
        let endpoints = match store.get(&key).await {
            Ok(Some(kv)) => model::decode::<EndpointList>(&kv.value)
                .map(|l| l.endpoints)
                .unwrap_or_default(),
            Ok(None) => Vec::new(),
            Err(e) => {
                tracing::warn!(%key, error = %e, "cannot read; skipping this round");
                return None;
            }
        };
        out.push((service, endpoints));
    }
    Some(out)
}

/// One round; None when the store could not be read.
async fn round(
    settings: &Settings,
    store: &dyn Store,
    clock: &dyn Clock,
    verdicts: &mut Verdicts,
    live: Option<&watch::Receiver<Vec<SocketAddr>>>,
) -> Option<Report> {
    let (vips, vip_rev) = list::<Vip>(store, keys::VIPS).await?;
    let (health, health_rev) = list::<Health>(store, keys::HEALTH).await?;
    let (nodes, _) = list::<Registration>(store, keys::NODES).await?;
    let headless = headless(store).await?;
    let (_, record_rev) = list::<RecordSet>(store, keys::RECORDS).await?;
    let (_, zone_rev) = list::<Zone>(store, keys::ZONES).await?;
    let mut known = Vec::new();
    for name in &settings.dns_names {
        if let Ok(Some(kv)) = store.get(&keys::record_set(name, RecordType::A)).await
            && let Ok(set) = model::decode::<RecordSet>(&kv.value)
        {
            known.push(set);
        }
    }
    let newest = Newest {
        zones: zone_rev,
        records: record_rev,
        vips: vip_rev,
        health: health_rev,
    };
    let all = checks::derive(&vips, &headless, &nodes, &known);
    let members = members(&settings.node, &nodes, live);
    let mine = schedule::mine(&all, |c| c.id.as_str(), &members, &settings.node);
    let results =
        futures::future::join_all(mine.iter().map(|c| run_check(settings, c, newest))).await;

    // Real servers: an address passes when all its probed ports pass.
    let mut by_address: BTreeMap<IpAddr, bool> = BTreeMap::new();
    for (c, r) in mine.iter().zip(&results) {
        if let Kind::RealServer(s) = c.kind {
            *by_address.entry(s.ip()).or_insert(true) &= r.ok;
        }
    }
    let stored: BTreeMap<IpAddr, HealthState> =
        health.iter().map(|h| (h.address, h.state)).collect();
    let since = clock
        .wall()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for h in verdicts.handle_results(&stored, &by_address, since) {
        match store
            .put(&keys::health(h.address), model::encode(&h), None)
            .await
        {
            Ok(_) => verdicts.handle_written(&h),
            Err(e) => {
                tracing::warn!(address = %h.address, error = %e, "cannot write health; retrying next round")
            }
        }
    }
    let mut results = results;
    results.sort_by(|a, b| a.id.cmp(&b.id));
    Some(Report {
        by: settings.node.clone(),
        members,
        results,
    })
}

async fn run_check(settings: &Settings, check: &Check, newest: Newest) -> CheckResult {
    let outcome: Result<(), String> = match &check.kind {
        Kind::RealServer(s) => settings
            .probe
            .run(*s, settings.timeout)
            .await
            .map_err(|e| e.to_string()),
        Kind::Vip(s) => Probe::Tcp
            .run(*s, settings.timeout)
            .await
            .map_err(|e| e.to_string()),
        Kind::Dns {
            server,
            name,
            allowed,
        } => match dns::ask(*server, name.as_str(), dns::A, settings.timeout).await {
            Ok(answer) if checks::dns_ok(&answer, allowed) => Ok(()),
            Ok(answer) => Err(format!("answered {answer:?}, expected some of {allowed:?}")),
            Err(e) => Err(e.to_string()),
        },
        Kind::Consistency {
            applied,
            version,
            role,
            ..
        } => checks::consistency(
            *applied,
            version,
            newest.wanted(*role),
            env!("CARGO_PKG_VERSION"),
        ),
    };
    CheckResult {
        id: check.id.clone(),
        kind: check.kind.as_str().to_owned(),
        ok: outcome.is_ok(),
        detail: outcome.err().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspectors_whose_gossip_address_died_are_no_members() {
        let node = |name: &str, role, gossip: Option<&str>| {
            let mut r = Registration::new(name, role);
            r.addresses.gossip = gossip.map(|g| g.parse().unwrap());
            r
        };
        let nodes = [
            node("c1", Role::Control, Some("127.0.0.1:7001")),
            node("c2", Role::Control, Some("127.0.0.1:7002")),
            node("c3", Role::Control, None),
            node("dns-1", Role::Dns, Some("127.0.0.1:7004")),
        ];
        assert_eq!(members("c1", &nodes, None), ["c1", "c2", "c3"]);
        let (_tx, live) = watch::channel(vec![
            "127.0.0.1:7001".parse().unwrap(),
            "127.0.0.1:7004".parse().unwrap(),
        ]);
        // c2 is registered but gossip says it is dead; c3 does not gossip; dns-1 inspects
        // nothing.
        assert_eq!(members("c1", &nodes, Some(&live)), ["c1", "c3"]);
    }
}
