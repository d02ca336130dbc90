//! Errors talking to Ackee: their metric label, and the answer the client gets.

use pingora_core::{Error, ErrorSource, ErrorType};

use crate::metrics::UpstreamErrorKind;

pub(super) fn upstream_error_kind(e: &Error) -> UpstreamErrorKind {
    match e.etype() {
        ErrorType::ConnectRefused => UpstreamErrorKind::ConnectRefused,
        ErrorType::ConnectTimedout => UpstreamErrorKind::ConnectTimeout,
        ErrorType::ConnectNoRoute
        | ErrorType::ConnectError
        | ErrorType::BindError
        | ErrorType::SocketError => UpstreamErrorKind::ConnectError,
        ErrorType::ReadTimedout => UpstreamErrorKind::ReadTimeout,
        ErrorType::WriteTimedout => UpstreamErrorKind::WriteTimeout,
        ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError => {
            UpstreamErrorKind::ConnectionClosed
        }
        ErrorType::InvalidHTTPHeader
        | ErrorType::H1Error
        | ErrorType::H2Error
        | ErrorType::InvalidH2 => UpstreamErrorKind::InvalidResponse,
        _ => UpstreamErrorKind::Other,
    }
}

/// Whether the client went away: it closed or reset its connection (or its HTTP/2 or HTTP/3
/// stream) before the answer was complete. Nothing can be answered, and it is not the
/// gateway's failure nor Ackee's. On HTTP/2 that is an `H2Error` from the client's side:
/// pingora's "Client closed H2" for a stream the client reset (`RST_STREAM`, `CANCEL` when a
/// page is left) while Ackee worked, or an error of the stream or connection while reading or
/// writing it; malformed requests are refused before any filter runs.
pub(super) fn client_went_away(e: &Error) -> bool {
    e.esource() == &ErrorSource::Downstream
        && matches!(
            e.etype(),
            ErrorType::ReadError
                | ErrorType::WriteError
                | ErrorType::ConnectionClosed
                | ErrorType::H2Error
        )
}

/// The status and body for a request that failed after `request_filter`.
pub(super) fn failure_response(e: &Error) -> (u16, &'static [u8]) {
    match e.etype() {
        ErrorType::HTTPStatus(503) => (503, b"Service Unavailable: no Ackee replica is up\n"),
        ErrorType::HTTPStatus(code) if (400..600).contains(code) => (*code, b"Error\n"),
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout
            if e.esource() == &ErrorSource::Upstream =>
        {
            (504, b"Gateway Timeout: Ackee did not answer in time\n")
        }
        _ => match e.esource() {
            ErrorSource::Upstream => (502, b"Bad Gateway: Ackee is not reachable\n"),
            ErrorSource::Downstream if client_went_away(e) => (0, b""),
            ErrorSource::Downstream => match e.etype() {
                ErrorType::ReadTimedout => (408, b"Request Timeout\n"),
                _ => (400, b"Bad Request\n"),
            },
            ErrorSource::Internal | ErrorSource::Unset => (500, b"Internal Server Error\n"),
        },
    }
}
