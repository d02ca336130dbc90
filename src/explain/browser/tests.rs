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

/// The failures `check_preflight` finds, by variant name, for a preflight of `method`.
fn judge(status: u16, headers: &[(&str, String)], method: &str, credentials: bool) -> Vec<String> {
    let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut ask = Ask::tracker(O);
    ask.method = method.to_owned();
    check_preflight(&ask, &answer(status, &refs), credentials)
        .iter()
        .map(|f| {
            format!("{f:?}")
                .split([' ', '{'])
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .collect()
}

/// Each case: what it is, the answer's status and headers, whether credentials are on, and
/// the failures expected.
type Case<'a> = (
    &'a str,
    u16,
    Vec<(&'static str, String)>,
    bool,
    &'a [&'a str],
);

/// Checks preflights of POST, the tracker's method.
fn check_all(cases: Vec<Case<'_>>) {
    for (what, status, headers, credentials, want) in cases {
        assert_eq!(judge(status, &headers, "POST", credentials), want, "{what}");
    }
}

#[test]
fn the_gateways_answer_passes_with_or_without_credentials() {
    check_all(vec![
        ("credentials on", 204, with(&[]), true, &[]),
        ("credentials off", 204, with(&[]), false, &[]),
    ]);
}

#[test]
fn allow_origin_must_be_one_exact_origin_and_star_only_without_credentials() {
    let mut two = with(&[]);
    two.push(("Access-Control-Allow-Origin", O.to_owned()));
    let star = with(&[("Access-Control-Allow-Origin", Some("*")), ("Vary", None)]);
    let slash = with(&[(
        "Access-Control-Allow-Origin",
        Some("https://blog.example.com/"),
    )]);
    check_all(vec![
        (
            "two allow-origin headers",
            204,
            two,
            false,
            &["SeveralAllowOrigin"],
        ),
        (
            "* with credentials",
            204,
            star.clone(),
            true,
            &["WildcardWithCredentials"],
        ),
        ("* without credentials", 204, star, false, &[]),
        ("a trailing slash", 204, slash, true, &["OtherAllowOrigin"]),
    ]);
}

#[test]
fn credentials_need_their_header_and_a_shared_cache_needs_vary() {
    let no_credentials = with(&[("Access-Control-Allow-Credentials", None)]);
    check_all(vec![
        (
            "no vary",
            204,
            with(&[("Vary", None)]),
            true,
            &["MissingVary"],
        ),
        (
            "no credentials header",
            204,
            no_credentials.clone(),
            true,
            &["NoCredentials"],
        ),
        (
            "no credentials header, credentials off",
            204,
            no_credentials,
            false,
            &[],
        ),
    ]);
}

#[test]
fn the_method_and_headers_must_be_allowed_and_star_headers_only_without_credentials() {
    let get_post = with(&[("Access-Control-Allow-Methods", Some("GET, POST"))]);
    assert_eq!(judge(204, &get_post, "PATCH", true), ["MethodNotAllowed"]);
    let no_type = with(&[("Access-Control-Allow-Headers", Some("Authorization"))]);
    let star = with(&[("Access-Control-Allow-Headers", Some("*"))]);
    check_all(vec![
        (
            "content-type not allowed",
            204,
            no_type,
            true,
            &["HeaderNotAllowed"],
        ),
        (
            "* headers with credentials",
            204,
            star.clone(),
            true,
            &["HeaderNotAllowed"],
        ),
        ("* headers without credentials", 204, star, false, &[]),
    ]);
}

#[test]
fn a_preflight_must_be_answered_ok_and_never_redirected() {
    let location = vec![("Location", "https://stats.example.com/api".to_owned())];
    check_all(vec![
        ("a 404 preflight", 404, with(&[]), true, &["NotOk"]),
        ("a redirect", 301, location, true, &["Redirect"]),
        (
            "nothing at all",
            403,
            vec![],
            true,
            &["NotOk", "NoAllowOrigin"],
        ),
    ]);
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
