//! Reading Ackee's static files from a replica, and what is not taken: an answer other than
//! `200`, a `Content-Type` that is not Ackee's for that file, a file over the size cap. A
//! refresh takes every file from one replica or none, so the copy in use is always one
//! version of Ackee's files, never a mix.

use std::time::{Duration, Instant};

use super::{AssetSettings, File};
use crate::ackee_client::{self, Target};

/// Room for the answer's head above the file itself.
const HEAD_ROOM: u64 = 16 * 1024;

/// Why a refresh took nothing. A fixed set, safe for labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No replica passes its health checks.
    NoReplica,
    /// No replica could be reached, or it did not answer in time.
    Unreachable,
    /// A replica answered something other than `200` with the file's `Content-Type`.
    BadAnswer,
    /// A file was larger than `assets.max_file_bytes`.
    TooLarge,
}

impl Failure {
    /// Every reason, for pre-registering series.
    pub const ALL: [Failure; 4] = [
        Failure::NoReplica,
        Failure::Unreachable,
        Failure::BadAnswer,
        Failure::TooLarge,
    ];

    /// The metric label value, and the reason in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::NoReplica => "no_replica",
            Failure::Unreachable => "unreachable",
            Failure::BadAnswer => "bad_answer",
            Failure::TooLarge => "too_large",
        }
    }
}

/// A refresh that took nothing: why, and what each replica did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failed {
    /// The reason counted.
    pub reason: Failure,
    /// For the log.
    pub detail: String,
}

/// One file as Ackee sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Body {
    /// Ackee's `Content-Type`, sent on with the file.
    pub content_type: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// Every file, by [`File::index`], from one replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// The replica's name.
    pub replica: String,
    /// The files.
    pub files: [Body; 5],
}

impl Fetched {
    /// A digest of every file and its `Content-Type`: a refresh that gives the same one
    /// changes nothing.
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for (file, body) in File::ALL.iter().zip(&self.files) {
            for part in [file.path().as_bytes(), body.content_type.as_bytes()] {
                ctx.update(&(part.len() as u64).to_be_bytes());
                ctx.update(part);
            }
            ctx.update(&(body.bytes.len() as u64).to_be_bytes());
            ctx.update(&body.bytes);
        }
        let mut out = [0; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }
}

/// The request for one file.
fn request(target: &Target, file: File) -> String {
    format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: ackee-gateway/{}\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n",
        file.path(),
        target.host,
        env!("CARGO_PKG_VERSION"),
    )
}

/// One file from one replica, or why it is not taken.
fn one(target: &Target, file: File, s: &AssetSettings, left: Duration) -> Result<Body, Failed> {
    let max = s.max_file_bytes;
    let limit = usize::try_from(max + HEAD_ROOM).unwrap_or(usize::MAX);
    let path = file.path();
    let failed = |reason, what: String| Failed {
        reason,
        detail: format!("{path}: {what}"),
    };
    let answer = match ackee_client::exchange(target, request(target, file).as_bytes(), left, limit)
    {
        Ok(a) => a,
        Err(e) if e.kind() == std::io::ErrorKind::FileTooLarge => {
            return Err(failed(
                Failure::TooLarge,
                format!("larger than assets.max_file_bytes ({max} bytes)"),
            ));
        }
        Err(e) => return Err(failed(Failure::Unreachable, e.to_string())),
    };
    if answer.status != 200 {
        return Err(failed(
            Failure::BadAnswer,
            format!("Ackee answered {}", answer.status),
        ));
    }
    let content_type = answer.content_type.unwrap_or_default();
    if !file.accepts(&content_type) {
        let what =
            format!("Ackee answered 200 with Content-Type \"{content_type}\", not the file's");
        return Err(failed(Failure::BadAnswer, what));
    }
    if answer.body.len() as u64 > max {
        let what = format!(
            "{} bytes, larger than assets.max_file_bytes ({max} bytes)",
            answer.body.len()
        );
        return Err(failed(Failure::TooLarge, what));
    }
    Ok(Body {
        content_type,
        bytes: answer.body,
    })
}

/// Every file from one replica, within `s.timeout` in all.
fn from(target: &Target, s: &AssetSettings) -> Result<Fetched, Failed> {
    let deadline = Instant::now() + s.timeout;
    let mut files = Vec::with_capacity(File::ALL.len());
    for file in File::ALL {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Failed {
                reason: Failure::Unreachable,
                detail: format!(
                    "{}: the answers took longer than assets.timeout_seconds",
                    file.path()
                ),
            });
        }
        files.push(one(target, file, s, left)?);
    }
    let files: [Body; 5] = files.try_into().map_err(|_| Failed {
        reason: Failure::BadAnswer,
        detail: "internal error: a file is missing".to_owned(),
    })?;
    Ok(Fetched {
        replica: target.name.clone(),
        files,
    })
}

/// Every file from the first of `targets` (the healthy replicas) that gives them all. It
/// blocks: the gateway runs it on tokio's blocking pool.
pub fn fetch(targets: &[Target], s: &AssetSettings) -> Result<Fetched, Failed> {
    if targets.is_empty() {
        return Err(Failed {
            reason: Failure::NoReplica,
            detail: "no replica passes its health checks".to_owned(),
        });
    }
    let mut problems = Vec::with_capacity(targets.len());
    let mut reason = Failure::Unreachable;
    for target in targets {
        match from(target, s) {
            Ok(fetched) => return Ok(fetched),
            Err(f) => {
                // What a replica answered says more than one that could not be reached.
                if f.reason != Failure::Unreachable {
                    reason = f.reason;
                }
                problems.push(format!("replica \"{}\": {}", target.name, f.detail));
            }
        }
    }
    Err(Failed {
        reason,
        detail: problems.join("; "),
    })
}
