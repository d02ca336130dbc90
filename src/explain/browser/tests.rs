//! Unit tests of `browser`.

use super::*;

const O: &str = "https://blog.example.com";

fn answer(status: u16, headers: &[(&str, &str)]) -> Answer {
    Answer {
        status,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

const GOOD: &[(&str, &str)] = &[
    ("Access-Control-Allow-Origin", O),
    ("Access-Control-Allow-Methods", "GET, POST, PATCH, OPTIONS"),
    (
        "Access-Control-Allow-Headers",
        "Content-Type, Authorization, Time-Zone",
    ),
    ("Access-Control-Allow-Credentials", "true"),
    ("Vary", "Origin"),
];

fn with(changes: &[(&str, Option<&str>)]) -> Vec<(&'static str, String)> {
    let mut h: Vec<(&'static str, String)> =
        GOOD.iter().map(|(k, v)| (*k, v.to_string())).collect();
    for (name, value) in changes {
        h.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        if let Some(v) = value {
            let k = GOOD
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map_or("Location", |(k, _)| k);
            h.push((k, v.to_string()));
        }
    }
    h
}

#[test]
fn preflights_are_judged_by_the_fetch_rules() {
    type Case = (
        &'static str,
        u16,
        Vec<(&'static str, String)>,
        &'static str,
        bool,
        Vec<&'static str>,
    );
    let two = {
        let mut h = with(&[]);
        h.push(("Access-Control-Allow-Origin", O.to_owned()));
        h
    };
    let cases: Vec<Case> = vec![
        ("the gateway's answer", 204, with(&[]), "POST", true, vec![]),
        (
            "without credentials too",
            204,
            with(&[]),
            "POST",
            false,
            vec![],
        ),
        (
            "two allow-origin headers",
            204,
            two,
            "POST",
            false,
            vec!["SeveralAllowOrigin"],
        ),
        (
            "* with credentials",
            204,
            with(&[("Access-Control-Allow-Origin", Some("*")), ("Vary", None)]),
            "POST",
            true,
            vec!["WildcardWithCredentials"],
        ),
        (
            "* without credentials",
            204,
            with(&[("Access-Control-Allow-Origin", Some("*")), ("Vary", None)]),
            "POST",
            false,
            vec![],
        ),
        (
            "a trailing slash",
            204,
            with(&[(
                "Access-Control-Allow-Origin",
                Some("https://blog.example.com/"),
            )]),
            "POST",
            true,
            vec!["OtherAllowOrigin"],
        ),
        (
            "no vary",
            204,
            with(&[("Vary", None)]),
            "POST",
            true,
            vec!["MissingVary"],
        ),
        (
            "no credentials header",
            204,
            with(&[("Access-Control-Allow-Credentials", None)]),
            "POST",
            true,
            vec!["NoCredentials"],
        ),
        (
            "no credentials header, credentials off",
            204,
            with(&[("Access-Control-Allow-Credentials", None)]),
            "POST",
            false,
            vec![],
        ),
        (
            "PATCH not allowed",
            204,
            with(&[("Access-Control-Allow-Methods", Some("GET, POST"))]),
            "PATCH",
            true,
            vec!["MethodNotAllowed"],
        ),
        (
            "content-type not allowed",
            204,
            with(&[("Access-Control-Allow-Headers", Some("Authorization"))]),
            "POST",
            true,
            vec!["HeaderNotAllowed"],
        ),
        (
            "* headers count only without credentials",
            204,
            with(&[("Access-Control-Allow-Headers", Some("*"))]),
            "POST",
            true,
            vec!["HeaderNotAllowed"],
        ),
        (
            "* headers without credentials",
            204,
            with(&[("Access-Control-Allow-Headers", Some("*"))]),
            "POST",
            false,
            vec![],
        ),
        (
            "a 404 preflight",
            404,
            with(&[]),
            "POST",
            true,
            vec!["NotOk"],
        ),
        (
            "a redirect",
            301,
            vec![("Location", "https://stats.example.com/api".to_owned())],
            "POST",
            true,
            vec!["Redirect"],
        ),
        (
            "nothing at all",
            403,
            vec![],
            "POST",
            true,
            vec!["NotOk", "NoAllowOrigin"],
        ),
    ];
    for (what, status, headers, method, credentials, want) in cases {
        let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut ask = Ask::tracker(O);
        ask.method = method.to_owned();
        let got = check_preflight(&ask, &answer(status, &refs), credentials);
        let names: Vec<String> = got
            .iter()
            .map(|f| {
                format!("{f:?}")
                    .split([' ', '{'])
                    .next()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(names, want, "{what}: {got:?}");
    }
}

#[test]
fn the_actual_answer_needs_the_origin_and_credentials_only() {
    let ask = Ask::tracker(O);
    let ok = answer(
        200,
        &[
            ("Access-Control-Allow-Origin", O),
            ("Access-Control-Allow-Credentials", "true"),
            ("Vary", "Accept-Encoding, Origin"),
        ],
    );
    assert_eq!(check_actual(&ask, &ok, true), vec![]);
    let bare = answer(200, &[("Vary", "Origin")]);
    assert_eq!(
        check_actual(&ask, &bare, false),
        vec![Finding::NoAllowOrigin {
            stage: Stage::Actual
        }]
    );
    let moved = answer(302, &[("Location", "/api/")]);
    assert!(matches!(
        check_actual(&ask, &moved, true).as_slice(),
        [Finding::Redirect { status: 302, .. }]
    ));
}

#[test]
fn safelisted_headers_need_no_listing() {
    let cases = [
        ("Content-Type", "application/json;charset=UTF-8", false),
        ("Content-Type", "text/plain;charset=UTF-8", true),
        ("Accept", "*/*", true),
        ("Authorization", "Bearer x", false),
        ("Time-Zone", "Europe/Berlin", false),
    ];
    for (name, value, want) in cases {
        assert_eq!(is_safelisted(name, value), want, "{name}: {value}");
    }
    let mut ask = Ask::tracker(O);
    ask.headers.push(("Time-Zone".into(), "UTC".into()));
    ask.headers.push(("Accept".into(), "*/*".into()));
    assert_eq!(ask.unsafe_header_names(), ["content-type", "time-zone"]);
}
