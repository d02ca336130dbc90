//! Reading Ackee's answer to `{ domains { id title } }`.
//!
//! Ackee answers GraphQL errors with HTTP 200 and an `errors` array, so the status alone says
//! little: a refused token is `200 {"errors":[{"message":"Token invalid", ...}]}`. The answer
//! is read whole (the body of a few hundred domains is a few kB) and judged here.

use serde_json::Value;

/// The query the poller sends: every domain's id and title.
pub(crate) const QUERY_BODY: &str = r#"{"query":"{ domains { id title } }"}"#;

/// One of Ackee's domains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Domain {
    /// Ackee's id for it.
    pub id: String,
    /// Its title, as typed in the dashboard.
    pub title: String,
}

/// Why a refresh failed. A fixed set, safe for metric labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Failure {
    /// No replica could be connected to, or none answered in time.
    Unreachable,
    /// Ackee refused the token (GraphQL error about the token, or 401/403).
    TokenRefused,
    /// Ackee answered, but not with a domain list (another status, another error, not JSON).
    BadAnswer,
    /// The token file could not be read, or is empty.
    TokenUnreadable,
}

impl Failure {
    /// Every reason, for pre-registering metric series.
    pub(crate) const ALL: [Failure; 4] = [
        Failure::Unreachable,
        Failure::TokenRefused,
        Failure::BadAnswer,
        Failure::TokenUnreadable,
    ];

    /// The metric label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Failure::Unreachable => "unreachable",
            Failure::TokenRefused => "token_refused",
            Failure::BadAnswer => "bad_answer",
            Failure::TokenUnreadable => "token_unreadable",
        }
    }
}

/// A failed refresh: the reason, and the details for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failed {
    /// The reason, for the metric and for telling state changes apart.
    pub reason: Failure,
    /// What happened, for the log.
    pub detail: String,
}

impl Failed {
    /// A failure with a detail.
    pub(crate) fn new(reason: Failure, detail: impl Into<String>) -> Failed {
        Failed {
            reason,
            detail: detail.into(),
        }
    }
}

/// Whether a GraphQL error message is about the token. Ackee 3.4.2 says "Token invalid" for an
/// unknown or deleted token and "Token missing" without one; other versions and proxies say
/// "Unauthorized" or send the code `UNAUTHENTICATED`.
fn about_the_token(error: &Value) -> bool {
    let message = error["message"].as_str().unwrap_or("").to_ascii_lowercase();
    let code = error["extensions"]["code"].as_str().unwrap_or("");
    message.contains("token")
        || message.contains("unauthorized")
        || message.contains("unauthenticated")
        || code == "UNAUTHENTICATED"
        || code == "FORBIDDEN"
}

/// Judges Ackee's answer: its HTTP status and body.
pub(crate) fn parse(status: u16, body: &[u8]) -> Result<Vec<Domain>, Failed> {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let errors = json
        .as_ref()
        .and_then(|j| j["errors"].as_array())
        .filter(|e| !e.is_empty());
    if let Some(errors) = errors {
        let first = errors[0]["message"].as_str().unwrap_or("(no message)");
        let reason = if errors.iter().any(about_the_token) {
            Failure::TokenRefused
        } else {
            Failure::BadAnswer
        };
        return Err(Failed::new(
            reason,
            format!("Ackee answered {status} with the GraphQL error \"{first}\""),
        ));
    }
    if status == 401 || status == 403 {
        return Err(Failed::new(
            Failure::TokenRefused,
            format!("Ackee answered {status}"),
        ));
    }
    if status != 200 {
        return Err(Failed::new(
            Failure::BadAnswer,
            format!("Ackee answered {status} instead of 200"),
        ));
    }
    let Some(json) = json else {
        return Err(Failed::new(
            Failure::BadAnswer,
            "Ackee's answer is not JSON: is the replica Ackee?",
        ));
    };
    let Some(list) = json["data"]["domains"].as_array() else {
        return Err(Failed::new(
            Failure::BadAnswer,
            "Ackee's answer has no data.domains list",
        ));
    };
    let mut domains = Vec::with_capacity(list.len());
    for d in list {
        let (Some(id), Some(title)) = (d["id"].as_str(), d["title"].as_str()) else {
            return Err(Failed::new(
                Failure::BadAnswer,
                "a domain in Ackee's answer has no text id or title",
            ));
        };
        domains.push(Domain {
            id: id.to_owned(),
            title: title.to_owned(),
        });
    }
    Ok(domains)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn titles(r: Result<Vec<Domain>, Failed>) -> Result<Vec<String>, Failure> {
        r.map(|ds| ds.into_iter().map(|d| d.title).collect())
            .map_err(|f| f.reason)
    }

    #[test]
    fn answers_are_judged_by_their_graphql_errors_not_only_their_status() {
        use Failure::*;
        type Case<'a> = (u16, &'a str, Result<&'a [&'a str], Failure>);
        let cases: &[Case] = &[
            (
                200,
                r#"{"data":{"domains":[{"id":"a","title":"example.com"},{"id":"b","title":"My blog"}]}}"#,
                Ok(&["example.com", "My blog"]),
            ),
            (200, r#"{"data":{"domains":[]}}"#, Ok(&[])),
            (
                200,
                r#"{"errors":[{"message":"Token invalid","locations":[{"line":1,"column":3}],"path":["domains"]}],"data":null}"#,
                Err(TokenRefused),
            ),
            (
                200,
                r#"{"errors":[{"message":"Token missing"}],"data":null}"#,
                Err(TokenRefused),
            ),
            (
                200,
                r#"{"errors":[{"message":"Not allowed","extensions":{"code":"UNAUTHENTICATED"}}]}"#,
                Err(TokenRefused),
            ),
            (
                400,
                r#"{"errors":[{"message":"Cannot query field \"domainz\" on type \"Query\"."}]}"#,
                Err(BadAnswer),
            ),
            (401, "Unauthorized", Err(TokenRefused)),
            (403, "", Err(TokenRefused)),
            (502, "Bad Gateway", Err(BadAnswer)),
            (200, "<html>nginx</html>", Err(BadAnswer)),
            (200, r#"{"data":{}}"#, Err(BadAnswer)),
            (200, r#"{"data":{"domains":null}}"#, Err(BadAnswer)),
            (200, r#"{"data":{"domains":[{"id":"a"}]}}"#, Err(BadAnswer)),
            (
                200,
                r#"{"data":{"domains":[{"id":"a","title":7}]}}"#,
                Err(BadAnswer),
            ),
            (200, r#"{"errors":[],"data":{"domains":[]}}"#, Ok(&[])),
        ];
        for (status, body, want) in cases {
            let want = want.map(|t| t.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            assert_eq!(
                titles(parse(*status, body.as_bytes())),
                want,
                "{status} {body}"
            );
        }
    }

    #[test]
    fn a_refused_token_names_ackees_message() {
        let f = parse(200, br#"{"errors":[{"message":"Token invalid"}]}"#).unwrap_err();
        assert_eq!(
            f.detail,
            "Ackee answered 200 with the GraphQL error \"Token invalid\""
        );
    }
}
