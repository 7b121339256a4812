use super::*;
use crate::kube::testing;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../shared/fixtures/k8s/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn service_fixtures_decode_with_their_placeholder_values() {
    for name in ["core.v1.Service.pb", "core.v1.Service.v133.pb"] {
        let svc = service(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(svc.metadata.name, "nameValue", "{name}");
        assert_eq!(svc.metadata.namespace, "namespaceValue");
        // Its one label is not the service-name label, the only one kept.
        assert_eq!(svc.metadata.service_name, None);
        let spec = &svc.spec;
        assert_eq!(spec.kind, "typeValue");
        assert_eq!(spec.cluster_ip, "clusterIPValue");
        assert_eq!(spec.cluster_ips, ["clusterIPsValue"]);
        assert_eq!(spec.external_ips, ["externalIPsValue"]);
        assert_eq!(spec.session_affinity, "sessionAffinityValue");
        assert_eq!(spec.session_affinity_timeout, Some(1));
        assert_eq!(spec.external_name, "externalNameValue");
        assert!(spec.publish_not_ready_addresses);
        assert_eq!(spec.ports.len(), 1);
        let p = &spec.ports[0];
        assert_eq!(
            (p.name.as_str(), p.protocol.as_str(), p.port),
            ("nameValue", "protocolValue", 3)
        );
        assert_eq!(
            p.target_port,
            Some(IntOrString::String("targetPortValue".into()))
        );
        assert_eq!(svc.load_balancer_ingress.len(), 1);
        assert_eq!(svc.load_balancer_ingress[0].ip, "ipValue");
        assert_eq!(svc.load_balancer_ingress[0].hostname, "hostnameValue");
    }
}

#[test]
fn endpoint_slice_fixtures_decode_with_their_placeholder_values() {
    for name in [
        "discovery.k8s.io.v1.EndpointSlice.pb",
        "discovery.k8s.io.v1.EndpointSlice.v133.pb",
    ] {
        let slice = endpoint_slice(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(slice.metadata.name, "nameValue", "{name}");
        assert_eq!(slice.metadata.namespace, "namespaceValue");
        assert_eq!(slice.address_type, "addressTypeValue");
        assert_eq!(slice.endpoints.len(), 1);
        let e = &slice.endpoints[0];
        assert_eq!(e.addresses, ["addressesValue"]);
        assert_eq!(e.hostname.as_deref(), Some("hostnameValue"));
        assert_eq!(e.node_name.as_deref(), Some("nodeNameValue"));
        assert_eq!(e.zone.as_deref(), Some("zoneValue"));
        assert_eq!(
            e.conditions,
            EndpointConditions {
                ready: Some(true),
                serving: Some(true),
                terminating: Some(true)
            }
        );
        assert_eq!(slice.ports.len(), 1);
        assert_eq!(slice.ports[0].name.as_deref(), Some("nameValue"));
        assert_eq!(slice.ports[0].protocol.as_deref(), Some("protocolValue"));
        assert_eq!(slice.ports[0].port, Some(3));
    }
}

#[test]
fn a_fixture_of_the_other_kind_is_malformed_and_says_what_it_found() {
    let err = endpoint_slice(&fixture("core.v1.Service.pb")).unwrap_err();
    assert_eq!(err.kind(), DecodeErrorKind::Malformed);
    assert!(err.to_string().contains("found `v1`/`Service`"), "{err}");
    let err = service(&fixture("discovery.k8s.io.v1.EndpointSlice.pb")).unwrap_err();
    assert!(err.to_string().contains("EndpointSlice"), "{err}");
}

#[test]
fn protobuf_values_built_with_prost_round_trip() {
    let mut svc = testing::service(
        "default",
        "web",
        &["10.96.0.10", "fd00::10"],
        vec![
            testing::port("http", "TCP", 80, Some(IntOrString::String("web".into()))),
            testing::port("dns", "UDP", 53, Some(IntOrString::Int(5353))),
            testing::port("", "TCP", 8080, None),
        ],
    );
    svc.spec.session_affinity = "ClientIP".into();
    svc.spec.session_affinity_timeout = Some(600);
    svc.spec.external_ips = vec!["192.0.2.1".into()];
    svc.load_balancer_ingress = vec![LoadBalancerIngress {
        ip: "198.51.100.7".into(),
        hostname: String::new(),
    }];
    assert_eq!(service(&testing::protobuf_service(&svc)).unwrap(), svc);

    let slice = testing::slice(
        "default",
        "web-abc12",
        "web",
        "IPv4",
        &[("http", 8080)],
        vec![
            testing::named_endpoint("10.1.0.1", "web-0"),
            testing::endpoint("10.1.0.2", false),
            testing::terminating("10.1.0.3"),
        ],
    );
    let decoded = endpoint_slice(&testing::protobuf_slice(&slice)).unwrap();
    assert_eq!(decoded, slice);
    assert_eq!(decoded.service_name(), Some("web"));
}

#[test]
fn json_values_decode_like_protobuf_ones() {
    let json = br#"{
        "kind": "Service", "apiVersion": "v1",
        "metadata": {"name": "web", "namespace": "default", "uid": "1234",
                     "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": {
            "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": "web"},
                      {"name": "metrics", "protocol": "TCP", "port": 9090, "targetPort": 9091}],
            "selector": {"app": "web"},
            "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
            "type": "LoadBalancer", "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 300}},
            "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"
        },
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}
    }"#;
    let svc = service(json).unwrap();
    assert_eq!(svc.metadata.name, "web");
    assert_eq!(svc.spec.kind, "LoadBalancer");
    assert_eq!(svc.spec.cluster_ips, ["10.96.0.10"]);
    assert_eq!(
        svc.spec.ports[0].target_port,
        Some(IntOrString::String("web".into()))
    );
    assert_eq!(svc.spec.ports[1].target_port, Some(IntOrString::Int(9091)));
    assert_eq!(svc.spec.session_affinity_timeout, Some(300));
    assert_eq!(svc.load_balancer_ingress[0].ip, "203.0.113.9");

    let json = br#"{
        "kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
        "metadata": {"name": "web-x1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv6",
        "endpoints": [{"addresses": ["fd00::1"], "conditions": {"ready": true},
                       "hostname": "web-0", "nodeName": "n1", "zone": "z1"},
                      {"addresses": ["fd00::2"], "conditions": {}}],
        "ports": [{"name": "http", "protocol": "TCP", "port": 8080}]
    }"#;
    let slice = endpoint_slice(json).unwrap();
    assert_eq!(slice.service_name(), Some("web"));
    assert_eq!(slice.address_type, "IPv6");
    assert_eq!(slice.endpoints[0].node_name.as_deref(), Some("n1"));
    let unknown = slice.endpoints[1].conditions;
    assert!(unknown.is_ready() && unknown.is_serving() && !unknown.is_terminating());
    assert_eq!(slice.ports[0].port, Some(8080));
}

#[test]
fn json_of_another_kind_is_malformed() {
    let err = service(br#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"x"}}"#).unwrap_err();
    assert!(err.to_string().contains("found `v1`/`Pod`"), "{err}");
    let err =
        service(br#"{"kind":"Service","apiVersion":"v1","spec":{"ports":"no"}}"#).unwrap_err();
    assert_eq!(err.kind(), DecodeErrorKind::Malformed);
}

#[test]
fn encrypted_values_are_reported_as_encrypted_with_their_provider() {
    for (value, provider) in [
        (&b"k8s:enc:aescbc:v1:key1:\x8f\x00\x12garbage"[..], "aescbc"),
        (b"k8s:enc:kms:v2:my-kms:\x0a\x0b", "kms"),
        (b"k8s:enc:secretbox:v1:k:", "secretbox"),
    ] {
        let err = service(value).unwrap_err();
        assert_eq!(
            err,
            DecodeError::Encrypted {
                provider: provider.into()
            }
        );
        assert_eq!(err.kind(), DecodeErrorKind::Encrypted);
        let err = endpoint_slice(value).unwrap_err();
        assert_eq!(err.kind(), DecodeErrorKind::Encrypted);
    }
}

#[test]
fn garbage_is_malformed_with_a_reason() {
    let cases: [(&[u8], &str); 5] = [
        (b"", "empty"),
        (b"\x00\x01\x02", "neither"),
        (b"k8s\0\xff\xff\xff\xff", "runtime.Unknown"),
        (b"{\"kind\": ", "JSON"),
        (b"hello", "neither"),
    ];
    for (value, reason) in cases {
        match service(value) {
            Err(DecodeError::Malformed { reason: r }) => assert!(r.contains(reason), "{r}"),
            other => panic!("{value:?}: {other:?}"),
        }
    }
    // A valid envelope around bytes that are not a Service.
    let bad = testing::envelope("v1", "Service", vec![0x0a, 0xff, 0x01]);
    let err = service(&bad).unwrap_err();
    assert!(err.to_string().contains("Service protobuf"), "{err}");
    // A compressed or otherwise encoded raw is refused, not misread.
    let mut unknown = Unknown::decode(&bad[4..]).unwrap();
    unknown.content_encoding = Some("gzip".into());
    let mut encoded = PROTOBUF_MAGIC.to_vec();
    encoded.extend(unknown.encode_to_vec());
    assert!(service(&encoded).unwrap_err().to_string().contains("gzip"));
}

#[test]
fn decoded_slices_keep_no_spare_room() {
    let eps = (0..10)
        .map(|i| testing::endpoint(&format!("10.1.0.{i}"), true))
        .collect();
    let s = testing::slice("a", "web-1", "web", "IPv4", &[("http", 8080)], eps);
    let decoded = endpoint_slice(&testing::protobuf_slice(&s)).unwrap();
    assert_eq!(decoded, s);
    assert_eq!(decoded.endpoints.capacity(), decoded.endpoints.len());
    for e in &decoded.endpoints {
        assert_eq!(e.addresses.capacity(), e.addresses.len());
    }
}
