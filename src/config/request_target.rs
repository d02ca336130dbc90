//! A health-check path checked as an HTTP request target, so the checker can always send it.

/// The longest health-check path accepted, in bytes.
pub const MAX_TARGET_BYTES: usize = 2048;

/// Whether a byte may appear as is in an origin-form request target (RFC 9112 3.2.1: an
/// absolute path of RFC 3986 `pchar`s and `/`, then optionally `?` and a query).
fn is_target_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?".contains(&b)
}

/// Checks a health-check path as an HTTP request target, so the checker can always send it.
/// The error says what was found and what to write; for characters that must be
/// percent-encoded, it writes the encoded path.
pub fn check_request_target(path: &str) -> Result<(), String> {
    let shown = || {
        let mut s: String = path
            .chars()
            .take(60)
            .collect::<String>()
            .escape_debug()
            .to_string();
        if path.chars().count() > 60 {
            s.push_str("...");
        }
        s
    };
    if path.len() > MAX_TARGET_BYTES {
        return Err(format!(
            "found a path of {} bytes (\"{}\"); write a path of at most {MAX_TARGET_BYTES} bytes, such as \"/.well-known/apollo/server-health\"",
            path.len(),
            shown()
        ));
    }
    if !path.starts_with('/') {
        return Err(format!(
            "found \"{}\"; write a path that starts with /, such as \"/.well-known/apollo/server-health\"",
            shown()
        ));
    }
    let bytes = path.as_bytes();
    let mut bad = false;
    let mut encoded = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let escape_ok = b == b'%'
            && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
        if is_target_byte(b) || escape_ok {
            encoded.push(char::from(b));
        } else {
            bad = true;
            encoded.push_str(&format!("%{b:02X}"));
        }
        i += 1;
    }
    if bad {
        return Err(format!(
            "found \"{}\", which is not a valid HTTP request target (spaces, control characters, non-ASCII letters and characters such as < > \" # must be percent-encoded); write \"{encoded}\"",
            shown()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_check_paths_are_checked_as_request_targets() {
        // path -> None if valid, or the fix the message must quote.
        let long = format!("/{}", "a".repeat(MAX_TARGET_BYTES));
        let cases: [(&str, Option<&str>); 10] = [
            ("/.well-known/apollo/server-health", None),
            ("/health?probe=1&x=%20", None),
            ("/a:b@c;d=e,f!$'()*+~", None),
            ("/health<x>", Some("write \"/health%3Cx%3E\"")),
            ("/gesundheit-ü", Some("write \"/gesundheit-%C3%BC\"")),
            ("/he\u{1}alth", Some("write \"/he%01alth\"")),
            ("/a b", Some("write \"/a%20b\"")),
            ("/100%", Some("write \"/100%25\"")),
            ("/x#frag", Some("write \"/x%23frag\"")),
            ("health", Some("write a path that starts with /")),
        ];
        for (path, want) in cases {
            match (check_request_target(path), want) {
                (Ok(()), None) => {}
                (Err(e), Some(fix)) => assert!(e.contains(fix), "{path:?}: {e}"),
                (got, want) => panic!("{path:?}: got {got:?}, want {want:?}"),
            }
        }
        let e = check_request_target(&long).unwrap_err();
        assert!(e.contains("write a path of at most 2048 bytes"), "{e}");
        assert!(e.len() < 300, "the message quotes only the start: {e}");
    }
}
