//! The poller's client: one `POST /api` to each replica in turn, through
//! [`crate::ackee_client`] (blocking, every step bounded by the timeout, the answer read whole:
//! at most `MAX_ANSWER` bytes).

use std::time::Duration;

use super::answer::{self, Domain, Failed, Failure, QUERY_BODY};
pub use crate::ackee_client::Target;

/// The largest answer read: about 50,000 domains.
pub(crate) const MAX_ANSWER: usize = 4 << 20;

/// Asks each replica in order until one answers with a domain list or refuses the token.
/// A replica that cannot be reached, or answers something else, passes the question on.
pub(crate) fn fetch(
    targets: &[Target],
    token: &str,
    timeout: Duration,
) -> Result<Vec<Domain>, Failed> {
    let mut problems: Vec<String> = Vec::new();
    let mut bad_answer: Option<Failed> = None;
    for target in targets {
        match exchange(target, token, timeout) {
            Err(e) => problems.push(format!("replica \"{}\": {e}", target.name)),
            Ok((status, body)) => match answer::parse(status, &body) {
                Ok(domains) => return Ok(domains),
                Err(f) if f.reason == Failure::TokenRefused => {
                    return Err(Failed::new(
                        f.reason,
                        format!("replica \"{}\": {}", target.name, f.detail),
                    ));
                }
                Err(f) => {
                    problems.push(format!("replica \"{}\": {}", target.name, f.detail));
                    bad_answer.get_or_insert(f);
                }
            },
        }
    }
    let reason = bad_answer.map_or(Failure::Unreachable, |f| f.reason);
    Err(Failed::new(reason, problems.join("; ")))
}

/// Sends the query to one replica and returns the status and the body.
pub(crate) fn exchange(
    target: &Target,
    token: &str,
    timeout: Duration,
) -> std::io::Result<(u16, Vec<u8>)> {
    let request = format!(
        "POST /api HTTP/1.1\r\nHost: {}\r\nUser-Agent: ackee-gateway/{}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{QUERY_BODY}",
        target.host,
        env!("CARGO_PKG_VERSION"),
        QUERY_BODY.len(),
    );
    let answer = crate::ackee_client::exchange(target, request.as_bytes(), timeout, MAX_ANSWER)?;
    Ok((answer.status, answer.body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_replica_passes_the_question_on_and_is_named() {
        // A port nothing listens on: bind one, note it, close it.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let target = Target {
            name: "gone".into(),
            address: addr,
            host: addr.to_string(),
        };
        let err = fetch(&[target], "t", Duration::from_secs(2)).unwrap_err();
        assert_eq!(err.reason, Failure::Unreachable);
        assert!(
            err.detail.starts_with("replica \"gone\": "),
            "{}",
            err.detail
        );
    }
}
