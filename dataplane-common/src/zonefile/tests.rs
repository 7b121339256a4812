use super::*;

fn n(s: &str) -> Name {
    s.parse().unwrap()
}

const ZONE: &str = r#"
$ORIGIN example.com.
$TTL 1h
@   IN  SOA ns1 hostmaster (
            2024010101 ; serial
            7200 900 1209600
            300 )
    IN  NS  ns1
    NS      ns2.example.net.
ns1     A   192.0.2.1
www 60 IN A 192.0.2.10
        IN 30 A 192.0.2.11   ; blank owner, class before TTL
web     AAAA 2001:db8::1
alias   CNAME www
_http._tcp SRV 10 5 80 www
@       MX 10 mail.example.com.
txt     TXT "hello \"world\"" plain "semi;colon" "\065BC"
1.2     PTR www
$ORIGIN sub
host    A 10.0.0.1
"#;

#[test]
fn parses_every_directive_and_type() {
    let zones = parse(ZONE, None).unwrap();
    assert_eq!(zones.len(), 1);
    let (zone, sets) = &zones[0];
    assert_eq!(zone.origin, n("example.com."));
    assert_eq!(zone.ttl, 3600);
    assert_eq!(zone.soa.serial, 2_024_010_101);
    assert_eq!(zone.soa.minimum, 300);
    assert_eq!(zone.soa.mname, n("ns1.example.com."));
    assert_eq!(zone.ns, vec![n("ns1.example.com."), n("ns2.example.net.")]);
    let find = |name: &str, t: RecordType| {
        sets.iter()
            .find(|s| s.name == n(name) && s.record_type() == Some(t))
            .unwrap_or_else(|| panic!("{name} {t:?}"))
    };
    assert_eq!(find("example.com.", RecordType::Ns).records.len(), 2);
    let www = find("www.example.com.", RecordType::A);
    assert_eq!(www.records.len(), 2);
    assert_eq!(www.ttl, 30, "the lowest TTL of a set wins");
    assert_eq!(
        find("ns1.example.com.", RecordType::A).ttl,
        3600,
        "$TTL applies"
    );
    assert_eq!(
        find("alias.example.com.", RecordType::Cname).records[0],
        RData::Cname {
            target: n("www.example.com.")
        }
    );
    assert_eq!(
        find("_http._tcp.example.com.", RecordType::Srv).records[0],
        RData::Srv {
            priority: 10,
            weight: 5,
            port: 80,
            target: n("www.example.com.")
        }
    );
    assert_eq!(
        find("example.com.", RecordType::Mx).records[0],
        RData::Mx {
            preference: 10,
            exchange: n("mail.example.com.")
        }
    );
    assert_eq!(
        find("txt.example.com.", RecordType::Txt).records[0],
        RData::Txt {
            strings: vec![
                "hello \"world\"".into(),
                "plain".into(),
                "semi;colon".into(),
                "ABC".into()
            ]
        }
    );
    assert_eq!(find("1.2.example.com.", RecordType::Ptr).records.len(), 1);
    assert!(matches!(
        find("web.example.com.", RecordType::Aaaa).records[0],
        RData::Aaaa { .. }
    ));
    assert_eq!(
        find("host.sub.example.com.", RecordType::A).records.len(),
        1,
        "relative $ORIGIN"
    );
}

#[test]
fn default_origin_and_several_zones() {
    let text = "$TTL 60\n@ SOA ns hm 1 2 3 4 5\nwww A 1.2.3.4\n$ORIGIN b.\n@ SOA ns hm 1 2 3 4 5\nx A 5.6.7.8\n";
    let zones = parse(text, Some(&n("a."))).unwrap();
    assert_eq!(zones.len(), 2);
    assert_eq!(zones[0].0.origin, n("a."));
    assert_eq!(zones[0].1[0].name, n("www.a."));
    assert_eq!(zones[1].1[0].name, n("x.b."));
}

#[test]
fn errors_carry_line_numbers() {
    let cases: &[(&str, usize, &str)] = &[
        ("$TTL 60\n@ SOA ns hm 1 2 3 4 5\nwww A 1.2.3\n", 3, "IPv4"),
        (
            "$TTL 60\n@ SOA ns hm 1 2 3 4 5\n\n; c\nwww HINFO a b\n",
            5,
            "unknown record type",
        ),
        ("$TTL 60\nwww A 1.2.3.4\n", 2, "SOA"),
        ("@ SOA ns hm 1 2 3 4 5\n", 1, "no TTL"),
        ("$TTL 60\n@ SOA ns hm (1 2 3\n 4 5\n", 2, "unbalanced"),
        (
            "$TTL 60\n@ SOA ns hm 1 2 3 4 5\nx CH A 1.2.3.4\n",
            3,
            "class CH",
        ),
        (
            "$TTL 60\n@ SOA ns hm 1 2 3 4 5\nx TXT \"open\n\n",
            3,
            "unterminated",
        ),
        ("$INCLUDE other.zone\n", 1, "not supported"),
        (
            "$TTL 60\n@ SOA ns hm 1 2 3 4 5\nbad..name A 1.2.3.4\n",
            3,
            "empty label",
        ),
        (
            "$TTL 60\n@ SOA ns hm 1 2 3 4 5\nc CNAME a\nc CNAME b\n",
            4,
            "second CNAME",
        ),
        (
            "$TTL 60\n@ SOA ns hm 1 2 3 4 5\nx SRV 1 2 www\n",
            3,
            "4 fields",
        ),
        ("$TTL 1x\n", 1, "bad TTL"),
        ("", 1, "no SOA"),
    ];
    for (text, line, reason) in cases {
        let err = parse(text, Some(&n("a."))).unwrap_err();
        assert_eq!(err.line, *line, "{text:?}: {err}");
        assert!(err.reason.contains(reason), "{text:?}: {err}");
    }
    let err = parse("$TTL 60\n@ SOA ns hm 1 2 3 4 5\nwww A 1.2.3.4\n", None).unwrap_err();
    assert!(err.reason.contains("without $ORIGIN"), "{err}");
}

#[test]
fn ttl_units() {
    assert_eq!(parse_ttl("3600").unwrap(), 3600);
    assert_eq!(parse_ttl("1h30m").unwrap(), 5400);
    assert_eq!(parse_ttl("1w").unwrap(), 604_800);
    assert!(parse_ttl("h").is_err());
}

#[test]
fn loads_a_large_file() {
    // 200,000 records (1,000,000 is a release-mode load; no timing is asserted here).
    let mut text = String::from("$ORIGIN big.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\n");
    for i in 0..200_000u32 {
        use std::fmt::Write;
        writeln!(
            text,
            "h{i} A 10.{}.{}.{}",
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255
        )
        .unwrap();
    }
    let zones = parse(&text, None).unwrap();
    assert_eq!(zones[0].1.len(), 200_000);
}
