//! Unit tests of `entry`.

use super::*;

fn exact(s: &str) -> Entry {
    Entry::Exact(s.to_owned())
}

fn pattern(scheme: Scheme, parent: &str, port: Option<u16>) -> Entry {
    Entry::Pattern(Pattern {
        scheme,
        parent: parent.to_owned(),
        port,
    })
}

fn normalises(cases: &[(&str, &str)]) {
    for (input, want) in cases {
        assert_eq!(parse_entry(input), Ok(exact(want)), "input {input:?}");
    }
}

#[test]
fn schemes_and_hosts_are_lowercased_and_default_ports_dropped() {
    normalises(&[
        ("https://stats.example.com", "https://stats.example.com"),
        ("  https://stats.example.com  ", "https://stats.example.com"),
        ("HTTPS://STATS.EXAMPLE.COM", "https://stats.example.com"),
        ("https://stats.example.com:443", "https://stats.example.com"),
        ("http://stats.example.com:80", "http://stats.example.com"),
        (
            "http://stats.example.com:443",
            "http://stats.example.com:443",
        ),
        (
            "https://stats.example.com:8443",
            "https://stats.example.com:8443",
        ),
        ("https://stats.example.com:", "https://stats.example.com"),
    ]);
}

#[test]
fn ip_and_internationalised_hosts_are_written_as_browsers_serialise_them() {
    normalises(&[
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://[::1]:3000", "http://[::1]:3000"),
        ("http://[0:0:0:0:0:0:0:1]", "http://[::1]"),
        ("http://[2001:DB8::1]", "http://[2001:db8::1]"),
        ("https://bücher.example", "https://xn--bcher-kva.example"),
        ("https://BÜCHER.example", "https://xn--bcher-kva.example"),
        (
            "https://xn--bcher-kva.example",
            "https://xn--bcher-kva.example",
        ),
        ("https://münchen.de:8443", "https://xn--mnchen-3ya.de:8443"),
        ("http://localhost:5173", "http://localhost:5173"),
        ("https://my_site.example.com", "https://my_site.example.com"),
    ]);
}

#[test]
fn star_allows_everything_and_a_star_label_makes_a_pattern() {
    let cases: &[(&str, Entry)] = &[
        ("*", Entry::Any),
        (" * ", Entry::Any),
        (
            "https://*.example.com",
            pattern(Scheme::Https, "example.com", None),
        ),
        (
            "HTTPS://*.Example.COM:443",
            pattern(Scheme::Https, "example.com", None),
        ),
        (
            "http://*.example.com:8080",
            pattern(Scheme::Http, "example.com", Some(8080)),
        ),
        (
            "https://*.bücher.example",
            pattern(Scheme::Https, "xn--bcher-kva.example", None),
        ),
    ];
    for (input, want) in cases {
        assert_eq!(parse_entry(input).as_ref(), Ok(want), "input {input:?}");
    }
}

fn refuses(cases: &[(&str, &str)]) {
    for (input, want) in cases {
        let got = parse_entry(input).map(|e| e.to_string());
        assert_eq!(
            got.map_err(|e| e.to_string()),
            Err(want.to_string()),
            "input {input:?}"
        );
    }
}

#[test]
fn parts_an_origin_never_has_are_errors_that_say_what_to_write() {
    refuses(&[
        (
            "https://stats.example.com/",
            r#""https://stats.example.com/" has a path; write "https://stats.example.com""#,
        ),
        (
            "https://stats.example.com/api",
            r#""https://stats.example.com/api" has a path; write "https://stats.example.com""#,
        ),
        (
            "https://stats.example.com?x=1",
            r#""https://stats.example.com?x=1" has a query; write "https://stats.example.com""#,
        ),
        (
            "https://stats.example.com#top",
            r#""https://stats.example.com#top" has a fragment; write "https://stats.example.com""#,
        ),
        (
            "https://user:pw@stats.example.com",
            r#""https://user:pw@stats.example.com" has userinfo; write "https://stats.example.com""#,
        ),
        (
            "https://stats.example.com.",
            r#""https://stats.example.com." has a trailing dot; write "https://stats.example.com""#,
        ),
        (
            "https://Stats.Example.com.:443/x",
            r#""https://Stats.Example.com.:443/x" has a path; write "https://stats.example.com""#,
        ),
        (
            "stats.example.com",
            r#""stats.example.com" has no scheme; write "https://stats.example.com""#,
        ),
        (
            "ftp://stats.example.com",
            r#""ftp://stats.example.com" has the scheme "ftp"; write an origin that starts with https:// or http://"#,
        ),
        (
            "https://stats.example.com:99999",
            r#""https://stats.example.com:99999" has the port "99999"; write a port from 1 to 65535"#,
        ),
        (
            "https://stats.example.com:0",
            r#""https://stats.example.com:0" has the port "0"; write a port from 1 to 65535"#,
        ),
        (
            "https://stats.example.com:8o",
            r#""https://stats.example.com:8o" has the port "8o"; write a port from 1 to 65535"#,
        ),
    ]);
}

#[test]
fn hosts_a_browser_never_sends_are_errors_that_say_what_to_write() {
    refuses(&[
        (
            "null",
            r#""null" is what sandboxed frames, file: pages and redirects send, and it never identifies a site; remove it"#,
        ),
        (
            "",
            r#""" is empty; write an origin such as "https://example.com""#,
        ),
        (
            "https://",
            r#""https://" has no host; write an origin such as "https://example.com""#,
        ),
        (
            "https://a..example.com",
            r#""https://a..example.com" has an empty label ("..") in its host; remove the extra dot"#,
        ),
        (
            "https://exa mple.com",
            r#""https://exa mple.com" has the character ' ' in its host; write the host with letters, digits, '-' and '.' (an IDN host may be written in Unicode or punycode)"#,
        ),
        (
            "https://a.*.example.com",
            r#""https://a.*.example.com" has "*" inside its host; only a whole first label may be "*", as in "https://*.example.com""#,
        ),
        (
            "https://*example.com",
            r#""https://*example.com" has "*" inside its host; only a whole first label may be "*", as in "https://*.example.com""#,
        ),
        (
            "https://*.com",
            r#""https://*.com" would allow every site under ".com"; list a domain you own, as in "https://*.example.com""#,
        ),
        (
            "http://*.10.0.0.1",
            r#""http://*.10.0.0.1" puts "*." in front of an IP address; list the address itself"#,
        ),
        (
            "http://999.0.0.1",
            r#""http://999.0.0.1" has "999.0.0.1", which is not an IPv4 address; write four numbers from 0 to 255, as in "http://192.0.2.10""#,
        ),
        (
            "http://[::1",
            r#""http://[::1" has an IPv6 address without its closing "]"; write an origin such as "https://example.com""#,
        ),
    ]);
}

#[test]
fn display_round_trips_normalised_entries() {
    for input in [
        "https://stats.example.com",
        "http://localhost:8080",
        "https://*.example.com",
        "http://*.example.com:8080",
        "*",
    ] {
        assert_eq!(parse_entry(input).unwrap().to_string(), input);
    }
}
