//! `If-None-Match` (RFC 9110, section 13.1.2): whether the client already holds the variant
//! it would be sent, so the answer is `304 Not Modified`.
//!
//! The header lists entity tags, or is `*`. Comparison is weak, as the RFC requires for this
//! header: `W/"x"` matches `"x"`. A list that cannot be read matches nothing, so the client
//! gets the whole answer rather than a wrong 304.

/// The opaque part of an entity tag, `"..."` with any `W/` taken off, or `None` if `tag` is
/// not one.
fn opaque(tag: &[u8]) -> Option<&[u8]> {
    let tag = tag.strip_prefix(b"W/").unwrap_or(tag);
    let ok = tag.len() >= 2
        && tag[0] == b'"'
        && tag[tag.len() - 1] == b'"'
        && !tag[1..tag.len() - 1].contains(&b'"');
    ok.then_some(tag)
}

/// The items of one header value: `*`, or entity tags (which may hold commas), read in order.
/// `Err` at the first thing that is neither.
fn items(mut v: &[u8]) -> impl Iterator<Item = Result<&[u8], ()>> {
    std::iter::from_fn(move || {
        v = v.trim_ascii_start();
        while let Some(rest) = v.strip_prefix(b",") {
            v = rest.trim_ascii_start();
        }
        if v.is_empty() {
            return None;
        }
        if let Some(rest) = v.strip_prefix(b"*") {
            v = rest;
            return Some(Ok(&b"*"[..]));
        }
        let weak = usize::from(v.starts_with(b"W/")) * 2;
        let quoted = &v[weak..];
        let close = match quoted.first() {
            Some(b'"') => quoted[1..].iter().position(|&b| b == b'"'),
            _ => None,
        };
        let Some(close) = close else {
            v = &[];
            return Some(Err(()));
        };
        let (tag, rest) = v.split_at(weak + close + 2);
        v = rest;
        Some(Ok(tag))
    })
}

/// Whether `If-None-Match` values `values` match `etag` (the variant's own strong tag, with
/// its quotes): true means "answer 304".
pub fn none_match<'a>(values: impl IntoIterator<Item = &'a [u8]>, etag: &[u8]) -> bool {
    let Some(ours) = opaque(etag) else {
        return false;
    };
    for value in values {
        for item in items(value) {
            match item {
                Ok(b"*") => return true,
                Ok(tag) if opaque(tag) == Some(ours) => return true,
                Ok(_) => {}
                // A list that cannot be read matches nothing.
                Err(()) => return false,
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_is_a_weak_comparison_over_a_list() {
        let etag = br#""k7X2-br""#;
        let cases: &[(&[&str], bool)] = &[
            (&[], false),
            (&[r#""k7X2-br""#], true),
            (&[r#"W/"k7X2-br""#], true),
            (&[r#""k7X2-gz""#], false),
            (&[r#""k7X2""#], false),
            (&[r#""old", "k7X2-br""#], true),
            (&[r#""old",W/"k7X2-br""#], true),
            (&[r#""old""#, r#""k7X2-br""#], true),
            (&["*"], true),
            (&[r#""a", *"#], true),
            // Not entity tags: no match, the whole answer is sent.
            (&["k7X2-br"], false),
            (&[r#""k7X2-br"#], false),
            (&[""], false),
            (&[r#"w/"k7X2-br""#], false),
            // Tags may hold commas; a broken list matches nothing.
            (&[r#""a,b", "k7X2-br""#], true),
            (&[r#""a,"k7X2-br""#], false),
            (&[r#"junk, "k7X2-br""#], false),
        ];
        for (values, want) in cases {
            let got = none_match(values.iter().map(|v| v.as_bytes()), etag);
            assert_eq!(got, *want, "If-None-Match: {values:?}");
        }
    }
}
