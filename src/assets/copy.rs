//! One consistent copy of Ackee's static files, built once per change: each file's variants
//! (as sent, and each compressed form that came out smaller), each with its strong `ETag` and
//! its `Content-Length` as header values, so that answering a request copies nothing.

use std::time::SystemTime;

use bytes::Bytes;
use http::HeaderValue;

use super::compress::compress;
use super::fetch::Fetched;
use super::{Encoding, File};

/// One form of a file.
#[derive(Clone, Debug)]
pub struct Variant {
    /// Its content coding.
    pub encoding: Encoding,
    /// The bytes sent.
    pub body: Bytes,
    /// `Content-Encoding`, for a compressed variant.
    pub content_encoding: Option<HeaderValue>,
    /// A strong `ETag`: the file's content hash and the coding.
    pub etag: HeaderValue,
    /// `Content-Length`.
    pub length: HeaderValue,
}

/// One file: Ackee's `Content-Type` and the variants, identity first.
#[derive(Clone, Debug)]
pub struct FileCopy {
    /// The SHA-256 of the file as Ackee sent it.
    pub digest: [u8; 32],
    /// Ackee's `Content-Type` for it.
    pub content_type: HeaderValue,
    /// Identity first, then each compressed form that is smaller.
    pub variants: Vec<Variant>,
}

impl FileCopy {
    /// Each variant's coding and size, identity first.
    pub fn sizes(&self) -> Vec<(Encoding, usize)> {
        self.variants
            .iter()
            .map(|v| (v.encoding, v.body.len()))
            .collect()
    }
}

/// Every file, from one refresh.
#[derive(Clone, Debug)]
pub struct Copy {
    files: [FileCopy; 5],
    /// The digest of what was fetched ([`Fetched::fingerprint`]).
    pub fingerprint: [u8; 32],
    /// The replica it came from.
    pub replica: String,
    /// When it was taken.
    pub taken: SystemTime,
}

/// The `ETag` of a file's `encoding` variant: 24 hex digits of the SHA-256 of the file as
/// Ackee sent it, and the coding, so each variant has its own and an unchanged file keeps its
/// tags across refreshes, restarts and gateways.
fn etag(digest: &[u8], encoding: Encoding) -> HeaderValue {
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    let suffix = match encoding {
        Encoding::Identity => "",
        Encoding::Brotli => "-br",
        Encoding::Gzip => "-gz",
        Encoding::Zstd => "-zst",
    };
    HeaderValue::from_str(&format!("\"{hex}{suffix}\"")).unwrap_or(HeaderValue::from_static("\"\""))
}

fn variant(encoding: Encoding, body: Vec<u8>, digest: &[u8]) -> Variant {
    Variant {
        encoding,
        length: HeaderValue::from(body.len()),
        body: Bytes::from(body),
        content_encoding: (encoding != Encoding::Identity)
            .then(|| HeaderValue::from_static(encoding.token())),
        etag: etag(digest, encoding),
    }
}

/// One file's variants: compressed forms are kept only when smaller than the original.
fn file_copy(bytes: &[u8], content_type: HeaderValue, digest: [u8; 32]) -> FileCopy {
    let mut variants = vec![variant(Encoding::Identity, bytes.to_vec(), &digest)];
    for encoding in [Encoding::Brotli, Encoding::Gzip, Encoding::Zstd] {
        if let Some(packed) = compress(encoding, bytes).filter(|p| p.len() < bytes.len()) {
            variants.push(variant(encoding, packed, &digest));
        }
    }
    FileCopy {
        digest,
        content_type,
        variants,
    }
}

impl Copy {
    /// Compresses every file that is not the same in `previous`: seconds of CPU for Ackee's
    /// 570 kB, so the gateway runs it on tokio's blocking pool, once per change. A file that did
    /// not change keeps its variants.
    pub fn build(fetched: &Fetched, previous: Option<&Copy>, taken: SystemTime) -> Copy {
        Copy {
            files: std::array::from_fn(|i| {
                let body = &fetched.files[i];
                let digest = ring::digest::digest(&ring::digest::SHA256, &body.bytes);
                let mut d = [0; 32];
                d.copy_from_slice(digest.as_ref());
                let content_type = HeaderValue::from_str(&body.content_type)
                    .unwrap_or(HeaderValue::from_static("application/octet-stream"));
                let same = previous
                    .map(|p| &p.files[i])
                    .filter(|f| f.digest == d && f.content_type == content_type);
                match same {
                    Some(kept) => kept.clone(),
                    None => file_copy(&body.bytes, content_type, d),
                }
            }),
            fingerprint: fetched.fingerprint(),
            replica: fetched.replica.clone(),
            taken,
        }
    }

    /// One file.
    pub fn file(&self, file: File) -> &FileCopy {
        &self.files[file.index()]
    }

    /// The tracker's sizes for the log: `20650 B (br 7012, gzip 8132, zstd 7480)`.
    pub fn summary(&self, file: File) -> String {
        let sizes = self.file(file).sizes();
        let packed: Vec<String> = sizes[1..]
            .iter()
            .map(|(e, n)| format!("{} {n}", e.token()))
            .collect();
        format!("{} B ({})", sizes[0].1, packed.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::super::compress::tests::decode;
    use super::super::fetch::Body;
    use super::*;

    fn fetched(tracker: &[u8]) -> Fetched {
        let body = |ct: &str, b: &[u8]| Body {
            content_type: ct.to_owned(),
            bytes: b.to_vec(),
        };
        Fetched {
            replica: "ackee".to_owned(),
            files: [
                body("text/javascript; charset=utf-8", tracker),
                body(
                    "text/html; charset=utf-8",
                    b"<!doctype html><title>Ackee</title>",
                ),
                body("text/javascript; charset=utf-8", &[b'x'; 3000]),
                body("text/css; charset=utf-8", b"body{margin:0}"),
                // Random-looking bytes do not compress: identity only.
                body(
                    "image/vnd.microsoft.icon",
                    &(0..=255u8)
                        .map(|b| b.wrapping_mul(167) ^ 0x5a)
                        .collect::<Vec<_>>(),
                ),
            ],
        }
    }

    #[test]
    fn variants_decode_to_ackees_bytes_and_only_smaller_ones_are_kept() {
        let tracker: Vec<u8> = (0..800)
            .flat_map(|i| format!("navigator.sendBeacon('/api', {i});\n").into_bytes())
            .collect();
        let copy = Copy::build(&fetched(&tracker), None, SystemTime::UNIX_EPOCH);
        let t = copy.file(File::Tracker);
        let codings: Vec<Encoding> = t.variants.iter().map(|v| v.encoding).collect();
        assert_eq!(codings, Encoding::ALL);
        for v in &t.variants {
            assert_eq!(decode(v.encoding, &v.body), tracker, "{:?}", v.encoding);
            assert_eq!(v.length, HeaderValue::from(v.body.len()));
            assert!(v.body.len() <= tracker.len());
        }
        assert_eq!(t.content_type, "text/javascript; charset=utf-8");
        assert_eq!(copy.file(File::Favicon).variants.len(), 1);
        // Tiny files whose compressed forms are larger keep identity alone.
        assert_eq!(copy.file(File::IndexCss).variants.len(), 1);
    }

    #[test]
    fn etags_are_strong_per_variant_and_follow_the_content() {
        let a = Copy::build(
            &fetched(b"one tracker one tracker one tracker one tracker"),
            None,
            SystemTime::UNIX_EPOCH,
        );
        let b = Copy::build(
            &fetched(b"two tracker two tracker two tracker two tracker"),
            Some(&a),
            SystemTime::UNIX_EPOCH,
        );
        let tags = |c: &Copy| -> Vec<String> {
            c.file(File::Tracker)
                .variants
                .iter()
                .map(|v| v.etag.to_str().unwrap().to_owned())
                .collect()
        };
        let (ta, tb) = (tags(&a), tags(&b));
        assert!(
            ta[0].starts_with('"') && ta[0].ends_with('"') && ta[0].len() == 26,
            "{}",
            ta[0]
        );
        let mut distinct = ta.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), ta.len(), "one tag per variant: {ta:?}");
        assert_ne!(ta[0], tb[0]);
        // A file that did not change keeps its tags when another one did.
        let same = |c: &Copy| c.file(File::IndexJs).variants[0].etag.clone();
        assert_eq!(same(&a), same(&b));
        // ... and its variants, not compressed again.
        let body = |c: &Copy| c.file(File::IndexJs).variants[1].body.as_ptr();
        assert_eq!(body(&a), body(&b));
        assert_ne!(a.fingerprint, b.fingerprint);
    }
}
