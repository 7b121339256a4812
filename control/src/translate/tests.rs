use super::*;
use crate::kube::testing::{endpoint, named_endpoint, port, service as svc, slice, terminating};
use crate::kube::{EndpointSlice, IntOrString, LoadBalancerIngress};
use dataplane_common::model::{
    AnswerPolicy, EndpointConditions, Protocol, RData, RealServer, RecordType, ServiceType,
};
use std::net::IpAddr;
use std::time::Duration;

fn translate(s: &kube::Service, slices: &[EndpointSlice]) -> Translation {
    translate_with(s, slices, &Options::default())
}

fn translate_with(s: &kube::Service, slices: &[EndpointSlice], options: &Options) -> Translation {
    let refs: Vec<&EndpointSlice> = slices.iter().collect();
    let t = service(s, &refs, options).unwrap();
    for r in &t.records {
        r.validate().unwrap();
        assert_eq!(r.source, "kubernetes");
    }
    for v in &t.vips {
        v.validate().unwrap();
        assert_eq!(v.source, "kubernetes");
    }
    t
}

fn set<'a>(t: &'a Translation, name: &str, kind: RecordType) -> &'a RecordSet {
    t.records
        .iter()
        .find(|r| r.name.as_str() == name && r.record_type() == Some(kind))
        .unwrap_or_else(|| panic!("no {} at {name} in {:#?}", kind.as_str(), names(t)))
}

fn names(t: &Translation) -> Vec<String> {
    t.records
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r.name,
                r.record_type().map_or("-", RecordType::as_str)
            )
        })
        .collect()
}

fn a(s: &str) -> RData {
    match s.parse::<IpAddr>().unwrap() {
        IpAddr::V4(address) => RData::A { address },
        IpAddr::V6(address) => RData::Aaaa { address },
    }
}

fn srv(port: u16, target: &str) -> RData {
    RData::Srv {
        priority: 0,
        weight: 100,
        port,
        target: target.parse().unwrap(),
    }
}

fn ptr(target: &str) -> RData {
    RData::Ptr {
        target: target.parse().unwrap(),
    }
}

fn rs(address: &str, port: u16, weight: u32) -> RealServer {
    RealServer {
        address: address.parse().unwrap(),
        port,
        weight,
    }
}

fn vip<'a>(t: &'a Translation, address: &str, port: u16) -> &'a Vip {
    let address: IpAddr = address.parse().unwrap();
    t.vips
        .iter()
        .find(|v| v.address == address && v.port == port)
        .unwrap_or_else(|| panic!("no VIP {address}:{port} in {:#?}", t.vips))
}

const WEB: &str = "web.default.svc.cluster.local.";

fn web_ports() -> Vec<kube::ServicePort> {
    vec![
        port("http", "TCP", 80, Some(IntOrString::String("web".into()))),
        port("", "TCP", 8080, None),
    ]
}

#[test]
fn cluster_ip_service_gets_a_srv_for_named_ports_and_ptr() {
    let s = svc("default", "web", &["10.96.0.10"], web_ports());
    let t = translate(&s, &[]);
    let a_set = set(&t, WEB, RecordType::A);
    assert_eq!(a_set.records, [a("10.96.0.10")]);
    assert_eq!((a_set.ttl, a_set.policy), (30, AnswerPolicy::All));
    assert_eq!(
        set(
            &t,
            "_http._tcp.web.default.svc.cluster.local.",
            RecordType::Srv
        )
        .records,
        [srv(80, WEB)]
    );
    assert_eq!(
        set(&t, "10.0.96.10.in-addr.arpa.", RecordType::Ptr).records,
        [ptr(WEB)]
    );
    // Unnamed ports have no SRV record; nothing else is made.
    assert_eq!(t.records.len(), 3, "{:#?}", names(&t));
    assert_eq!(t.service.kind, ServiceType::ClusterIP);
    assert_eq!(
        t.service.cluster_ips,
        ["10.96.0.10".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(t.service.ports[0].target_port.as_deref(), Some("web"));
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
}

#[test]
fn cluster_ip_vips_balance_ready_endpoints_on_the_port_the_slice_resolved() {
    let s = svc("default", "web", &["10.96.0.10"], web_ports());
    let slices = [slice(
        "default",
        "web-a",
        "web",
        "IPv4",
        &[("http", 8080), ("", 8080)],
        vec![
            endpoint("10.1.0.2", true),
            endpoint("10.1.0.1", true),
            endpoint("10.1.0.3", false),
        ],
    )];
    let t = translate(&s, &slices);
    let v = vip(&t, "10.96.0.10", 80);
    assert_eq!(v.protocol, Protocol::Tcp);
    assert_eq!(v.persistence, None);
    // Sorted, the not-ready (and not serving) endpoint left out.
    assert_eq!(
        v.real_servers,
        [rs("10.1.0.1", 8080, 1), rs("10.1.0.2", 8080, 1)]
    );
    assert_eq!(vip(&t, "10.96.0.10", 8080).real_servers.len(), 2);
    assert_eq!(t.vips.len(), 2);
    // Endpoints are all there, not-ready included, with their conditions.
    assert_eq!(t.endpoints.len(), 3);
    assert!(!t.endpoints[2].conditions.ready);
}

#[test]
fn named_target_ports_resolve_per_slice_and_numeric_ones_directly() {
    let s = svc(
        "default",
        "web",
        &["10.96.0.10"],
        vec![
            port("http", "TCP", 80, Some(IntOrString::String("web".into()))),
            port("metrics", "TCP", 9090, Some(IntOrString::Int(9100))),
        ],
    );
    // Two pod templates: the container port named `web` differs; one slice each.
    let slices = [
        slice(
            "default",
            "web-a",
            "web",
            "IPv4",
            &[("http", 8080)],
            vec![endpoint("10.1.0.1", true)],
        ),
        slice(
            "default",
            "web-b",
            "web",
            "IPv4",
            &[("http", 8081)],
            vec![endpoint("10.1.0.2", true)],
        ),
    ];
    let t = translate(&s, &slices);
    assert_eq!(
        vip(&t, "10.96.0.10", 80).real_servers,
        [rs("10.1.0.1", 8080, 1), rs("10.1.0.2", 8081, 1)]
    );
    // No slice port named `metrics`: the numeric targetPort is used as is.
    assert_eq!(
        vip(&t, "10.96.0.10", 9090).real_servers,
        [rs("10.1.0.1", 9100, 1), rs("10.1.0.2", 9100, 1)]
    );

    // A named targetPort no slice resolves gives no real server, and says so.
    let lone = [slice(
        "default",
        "web-c",
        "web",
        "IPv4",
        &[],
        vec![endpoint("10.1.0.9", true)],
    )];
    let t = translate(&s, &lone);
    assert!(vip(&t, "10.96.0.10", 80).real_servers.is_empty());
    assert!(
        t.warnings.iter().any(|w| w.contains("`web`")),
        "{:?}",
        t.warnings
    );
}

#[test]
fn dual_stack_gives_a_and_aaaa_and_per_family_vips() {
    let s = svc(
        "default",
        "web",
        &["10.96.0.10", "fd00::10"],
        vec![port("http", "TCP", 80, None)],
    );
    let slices = [
        slice(
            "default",
            "web-v4",
            "web",
            "IPv4",
            &[("http", 80)],
            vec![endpoint("10.1.0.1", true)],
        ),
        slice(
            "default",
            "web-v6",
            "web",
            "IPv6",
            &[("http", 80)],
            vec![endpoint("fd00:1::1", true)],
        ),
    ];
    let t = translate(&s, &slices);
    assert_eq!(set(&t, WEB, RecordType::A).records, [a("10.96.0.10")]);
    assert_eq!(set(&t, WEB, RecordType::Aaaa).records, [a("fd00::10")]);
    set(
        &t,
        "0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.",
        RecordType::Ptr,
    );
    assert_eq!(
        vip(&t, "10.96.0.10", 80).real_servers,
        [rs("10.1.0.1", 80, 1)]
    );
    assert_eq!(
        vip(&t, "fd00::10", 80).real_servers,
        [rs("fd00:1::1", 80, 1)]
    );
}

#[test]
fn terminating_endpoints_are_drained_not_dropped() {
    let s = svc(
        "default",
        "web",
        &["10.96.0.10"],
        vec![port("http", "TCP", 80, Some(IntOrString::Int(8080)))],
    );
    let mut gone = endpoint("10.1.0.4", false);
    gone.conditions.terminating = Some(true);
    let slices = [slice(
        "default",
        "web-a",
        "web",
        "IPv4",
        &[("http", 8080)],
        vec![endpoint("10.1.0.1", true), terminating("10.1.0.2"), gone],
    )];
    let t = translate(&s, &slices);
    assert_eq!(
        vip(&t, "10.96.0.10", 80).real_servers,
        [rs("10.1.0.1", 8080, 1), rs("10.1.0.2", 8080, 0)]
    );
    let model = t
        .endpoints
        .iter()
        .find(|e| e.addresses[0].to_string() == "10.1.0.2")
        .unwrap();
    assert!(model.conditions.serving && model.conditions.terminating && !model.conditions.ready);
}

const DB: &str = "db.default.svc.cluster.local.";

#[test]
fn headless_service_publishes_ready_endpoints_with_hostnames() {
    let s = svc(
        "data",
        "db",
        &[],
        vec![port(
            "pg",
            "TCP",
            5432,
            Some(IntOrString::String("postgres".into())),
        )],
    );
    let slices = [slice(
        "data",
        "db-a",
        "db",
        "IPv4",
        &[("pg", 15432)],
        vec![
            named_endpoint("10.1.0.1", "db-0"),
            named_endpoint("10.1.0.2", "db-1"),
            endpoint("10.1.0.3", true),
            endpoint("10.1.0.4", false),
            terminating("10.1.0.5"),
        ],
    )];
    let t = translate(&s, &slices);
    assert!(t.service.is_headless());
    assert_eq!(
        set(&t, "db.data.svc.cluster.local.", RecordType::A).records,
        [a("10.1.0.1"), a("10.1.0.2"), a("10.1.0.3")]
    );
    assert_eq!(
        set(&t, "db-0.db.data.svc.cluster.local.", RecordType::A).records,
        [a("10.1.0.1")]
    );
    assert_eq!(
        set(&t, "db-1.db.data.svc.cluster.local.", RecordType::A).records,
        [a("10.1.0.2")]
    );
    // No hostname: the dashed address stands in, and resolves.
    assert_eq!(
        set(&t, "10-1-0-3.db.data.svc.cluster.local.", RecordType::A).records,
        [a("10.1.0.3")]
    );
    // One SRV per ready endpoint, on the endpoint's own port.
    assert_eq!(
        set(&t, "_pg._tcp.db.data.svc.cluster.local.", RecordType::Srv).records,
        [
            srv(15432, "10-1-0-3.db.data.svc.cluster.local."),
            srv(15432, "db-0.db.data.svc.cluster.local."),
            srv(15432, "db-1.db.data.svc.cluster.local."),
        ]
    );
    // PTR only for endpoints with a hostname of their own.
    assert_eq!(
        set(&t, "1.0.1.10.in-addr.arpa.", RecordType::Ptr).records,
        [ptr("db-0.db.data.svc.cluster.local.")]
    );
    assert!(
        !t.records
            .iter()
            .any(|r| r.name.as_str() == "3.0.1.10.in-addr.arpa.")
    );
    // Not-ready and terminating endpoints are not published.
    assert!(
        !names(&t)
            .iter()
            .any(|n| n.contains("10-1-0-4") || n.contains("10-1-0-5"))
    );
    // A headless Service has no VIP.
    assert!(t.vips.is_empty());
    assert_eq!(t.records.len(), 1 + 3 + 1 + 2, "{:#?}", names(&t));
}

#[test]
fn headless_service_with_no_ready_endpoint_has_no_address_records() {
    let s = svc("default", "db", &[], vec![port("pg", "TCP", 5432, None)]);
    let slices = [slice(
        "default",
        "db-a",
        "db",
        "IPv4",
        &[("pg", 5432)],
        vec![endpoint("10.1.0.4", false)],
    )];
    let t = translate(&s, &slices);
    assert!(t.records.is_empty(), "{:#?}", names(&t));
}

#[test]
fn publish_not_ready_addresses_publishes_every_endpoint() {
    let mut s = svc("default", "db", &[], vec![port("pg", "TCP", 5432, None)]);
    s.spec.publish_not_ready_addresses = true;
    let slices = [slice(
        "default",
        "db-a",
        "db",
        "IPv4",
        &[("pg", 5432)],
        vec![
            named_endpoint("10.1.0.1", "db-0"),
            endpoint("10.1.0.4", false),
        ],
    )];
    let t = translate(&s, &slices);
    assert!(t.service.publish_not_ready);
    assert_eq!(
        set(&t, DB, RecordType::A).records,
        [a("10.1.0.1"), a("10.1.0.4")]
    );
    assert_eq!(
        set(
            &t,
            "_pg._tcp.db.default.svc.cluster.local.",
            RecordType::Srv
        )
        .records
        .len(),
        2
    );
}

#[test]
fn headless_dual_stack_hostname_gets_a_and_aaaa() {
    let s = svc("default", "db", &[], vec![]);
    let slices = [
        slice(
            "default",
            "db-v4",
            "db",
            "IPv4",
            &[],
            vec![named_endpoint("10.1.0.1", "db-0")],
        ),
        slice(
            "default",
            "db-v6",
            "db",
            "IPv6",
            &[],
            vec![named_endpoint("fd00::1", "db-0"), endpoint("::1", true)],
        ),
    ];
    let t = translate(&s, &slices);
    let host = "db-0.db.default.svc.cluster.local.";
    assert_eq!(set(&t, host, RecordType::A).records, [a("10.1.0.1")]);
    assert_eq!(set(&t, host, RecordType::Aaaa).records, [a("fd00::1")]);
    assert_eq!(
        set(&t, DB, RecordType::Aaaa).records,
        [a("::1"), a("fd00::1")]
    );
    // `::1` dashed would start with `-`: written out instead.
    set(
        &t,
        "0-0-0-0-0-0-0-1.db.default.svc.cluster.local.",
        RecordType::Aaaa,
    );
}

#[test]
fn dashed_labels_follow_coredns_where_valid() {
    let b = |addr: &str| Backend {
        address: addr.parse().unwrap(),
        addresses: vec![],
        hostname: None,
        conditions: EndpointConditions {
            ready: true,
            serving: true,
            terminating: false,
        },
        node: None,
        zone: None,
        ports: vec![],
    };
    assert_eq!(dns::endpoint_label(&b("10.1.2.3")), "10-1-2-3");
    assert_eq!(dns::endpoint_label(&b("fd00::1")), "fd00--1");
    assert_eq!(dns::endpoint_label(&b("fe80::")), "fe80-0-0-0-0-0-0-0");
}

#[test]
fn external_name_is_a_cname_and_nothing_else() {
    let mut s = svc("default", "ext", &[], vec![port("http", "TCP", 80, None)]);
    s.spec.kind = "ExternalName".into();
    s.spec.external_name = "www.Example.com".into();
    s.spec.cluster_ip = String::new();
    s.spec.cluster_ips = vec![];
    let slices = [slice(
        "default",
        "ext-a",
        "ext",
        "IPv4",
        &[],
        vec![endpoint("10.1.0.1", true)],
    )];
    let t = translate(&s, &slices);
    assert_eq!(t.records.len(), 1, "{:#?}", names(&t));
    assert_eq!(
        set(&t, "ext.default.svc.cluster.local.", RecordType::Cname).records,
        [RData::Cname {
            target: "www.example.com.".parse().unwrap()
        }]
    );
    assert!(t.vips.is_empty());
    assert_eq!(
        t.service.external_name.as_ref().unwrap().as_str(),
        "www.example.com."
    );
}

#[test]
fn client_ip_affinity_makes_answers_and_vips_persistent() {
    let mut s = svc(
        "default",
        "web",
        &["10.96.0.10"],
        vec![port("http", "TCP", 80, None)],
    );
    s.spec.session_affinity = "ClientIP".into();
    let t = translate(&s, &[]);
    let default = Some(Duration::from_secs(10_800));
    let a_set = set(&t, WEB, RecordType::A);
    assert_eq!(
        (a_set.policy, a_set.affinity_timeout),
        (AnswerPolicy::OnePersistent, default)
    );
    let srv_set = set(
        &t,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::Srv,
    );
    assert_eq!(srv_set.policy, AnswerPolicy::OnePersistent);
    let ptr_set = set(&t, "10.0.96.10.in-addr.arpa.", RecordType::Ptr);
    assert_eq!(
        (ptr_set.policy, ptr_set.affinity_timeout),
        (AnswerPolicy::All, None)
    );
    assert_eq!(vip(&t, "10.96.0.10", 80).persistence, default);
    assert_eq!(t.service.session_affinity, default);

    s.spec.session_affinity_timeout = Some(60);
    let t = translate(&s, &[]);
    assert_eq!(
        set(&t, WEB, RecordType::A).affinity_timeout,
        Some(Duration::from_secs(60))
    );
    s.spec.session_affinity_timeout = Some(1_000_000);
    let t = translate(&s, &[]);
    assert_eq!(
        vip(&t, "10.96.0.10", 80).persistence,
        Some(Duration::from_secs(86_400))
    );

    s.spec.session_affinity = "None".into();
    let t = translate(&s, &[]);
    assert_eq!(set(&t, WEB, RecordType::A).policy, AnswerPolicy::All);
    assert_eq!(vip(&t, "10.96.0.10", 80).persistence, None);
}

#[test]
fn external_and_load_balancer_ips_become_vips_too() {
    let mut s = svc(
        "default",
        "web",
        &["10.96.0.10"],
        vec![port("dns", "UDP", 53, None)],
    );
    s.spec.kind = "LoadBalancer".into();
    s.spec.external_ips = vec!["192.0.2.1".into(), "not-an-ip".into()];
    s.load_balancer_ingress = vec![
        LoadBalancerIngress {
            ip: "203.0.113.9".into(),
            hostname: String::new(),
        },
        LoadBalancerIngress {
            ip: String::new(),
            hostname: "lb.example.com".into(),
        },
        LoadBalancerIngress {
            ip: "192.0.2.1".into(),
            hostname: String::new(),
        },
    ];
    let slices = [slice(
        "default",
        "web-a",
        "web",
        "IPv4",
        &[],
        vec![endpoint("10.1.0.1", true)],
    )];
    let t = translate(&s, &slices);
    let addresses: Vec<String> = t.vips.iter().map(|v| v.address.to_string()).collect();
    assert_eq!(addresses, ["10.96.0.10", "192.0.2.1", "203.0.113.9"]);
    for v in &t.vips {
        assert_eq!(v.protocol, Protocol::Udp);
        assert_eq!(v.real_servers, [rs("10.1.0.1", 53, 1)]);
    }
    assert_eq!(t.service.kind, ServiceType::LoadBalancer);
    assert!(
        t.warnings.iter().any(|w| w.contains("not-an-ip")),
        "{:?}",
        t.warnings
    );
    // External addresses get no DNS records of their own.
    assert_eq!(t.records.len(), 3, "{:#?}", names(&t));
}

#[test]
fn sctp_ports_get_srv_records_but_no_vip() {
    let s = svc(
        "default",
        "sig",
        &["10.96.0.20"],
        vec![port("sig", "SCTP", 3868, None)],
    );
    let t = translate(&s, &[]);
    set(
        &t,
        "_sig._sctp.sig.default.svc.cluster.local.",
        RecordType::Srv,
    );
    assert!(t.vips.is_empty());
    assert!(t.warnings.iter().any(|w| w.contains("SCTP")));
}

#[test]
fn ttl_and_cluster_domain_are_configurable() {
    let options = Options {
        cluster_domain: "k8s.example.".parse().unwrap(),
        ttl: 5,
    };
    let s = svc("default", "web", &["10.96.0.10"], vec![]);
    let t = translate_with(&s, &[], &options);
    assert_eq!(
        set(&t, "web.default.svc.k8s.example.", RecordType::A).ttl,
        5
    );
}

#[test]
fn an_address_in_two_slices_is_one_endpoint_and_fqdn_slices_are_ignored() {
    let s = svc(
        "default",
        "web",
        &["10.96.0.10"],
        vec![port("http", "TCP", 80, None)],
    );
    let slices = [
        slice(
            "default",
            "web-b",
            "web",
            "IPv4",
            &[("http", 81)],
            vec![endpoint("10.1.0.1", true)],
        ),
        slice(
            "default",
            "web-a",
            "web",
            "IPv4",
            &[("http", 80)],
            vec![endpoint("10.1.0.1", true)],
        ),
        slice(
            "default",
            "web-f",
            "web",
            "FQDN",
            &[("http", 80)],
            vec![endpoint("db.example.com", true)],
        ),
        slice(
            "default",
            "web-x",
            "web",
            "IPv4",
            &[("http", 80)],
            vec![endpoint("fd00::1", true)],
        ),
    ];
    let t = translate(&s, &slices);
    assert_eq!(t.endpoints.len(), 1);
    // The first slice by name wins.
    assert_eq!(
        vip(&t, "10.96.0.10", 80).real_servers,
        [rs("10.1.0.1", 80, 1)]
    );
    assert!(
        t.warnings.iter().any(|w| w.contains("fd00::1")),
        "{:?}",
        t.warnings
    );
}

#[test]
fn a_service_that_cannot_be_named_or_typed_is_an_error() {
    let mut bad_type = svc("default", "web", &["10.96.0.10"], vec![]);
    bad_type.spec.kind = "typeValue".into();
    let mut bad_ip = svc("default", "web", &["clusterIPValue"], vec![]);
    bad_ip.spec.cluster_ip = "clusterIPValue".into();
    let bad_protocol = svc(
        "default",
        "web",
        &["10.96.0.10"],
        vec![port("x", "QUIC", 1, None)],
    );
    let bad_port = svc(
        "default",
        "web",
        &["10.96.0.10"],
        vec![port("x", "TCP", 70_000, None)],
    );
    let bad_name = svc("default", "Web_1", &["10.96.0.10"], vec![]);
    let mut bad_external = svc("default", "ext", &[], vec![]);
    bad_external.spec.kind = "ExternalName".into();
    bad_external.spec.external_name = "a..b".into();
    for (s, field) in [
        (bad_type, "spec.type"),
        (bad_ip, "spec.clusterIPs[0]"),
        (bad_protocol, "spec.ports[0].protocol"),
        (bad_port, "spec.ports[0].port"),
        (bad_name, "name"),
        (bad_external, "spec.externalName"),
    ] {
        match service(&s, &[], &Options::default()) {
            Err(TranslateError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
}

#[test]
fn the_decoded_fixture_is_rejected_for_its_placeholder_type() {
    let path = format!(
        "{}/../../shared/fixtures/k8s/core.v1.Service.pb",
        env!("CARGO_MANIFEST_DIR")
    );
    let s = kube::decode::service(&std::fs::read(path).unwrap()).unwrap();
    let err = service(&s, &[], &Options::default()).unwrap_err();
    assert!(err.to_string().contains("typeValue"), "{err}");
}
