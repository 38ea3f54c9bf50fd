//! A JSON body for the one error answer the router never sees.
//!
//! hyper answers a request it cannot parse (a `Content-Length` that is not one number, a
//! request or header line that is not HTTP) by itself, before any of the server's code runs:
//! a bare `400 Bad Request` with no body, after which it closes the connection. It offers no
//! hook to change that answer. Every other error answer carries `{"error":{"code","message"}}`,
//! so this adapter, between hyper and the socket, replaces exactly that one: it is the only
//! `400` written as a head alone with `content-length: 0`, because every `400` the router gives
//! has the JSON body (the `json_errors` middleware sees to it).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use ferry_api::{ErrorBody, ErrorCode, ErrorDetail};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The status lines of hyper's own answers: a request it cannot parse, and one with more
/// header fields than it reads at all (the router's own limit, lower, answers 431 with JSON).
const BARE_400: &[u8] = b"HTTP/1.1 400 Bad Request\r\n";
const BARE_431: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\n";

/// Wraps a connection's stream; see the module documentation.
pub(crate) struct JsonParseErrors<I> {
    inner: I,
    replacing: Option<Replacement>,
}

/// The JSON answer being written in place of hyper's head.
struct Replacement {
    bytes: Vec<u8>,
    written: usize,
    /// How many bytes of hyper's head it stands for.
    consumed: usize,
}

impl<I> JsonParseErrors<I> {
    pub(crate) fn new(inner: I) -> Self {
        Self { inner, replacing: None }
    }
}

/// The JSON answer for `buf` if it is exactly one of hyper's bodiless error heads.
fn replacement_for(buf: &[u8]) -> Option<Vec<u8>> {
    let (status, code, message) = if buf.starts_with(BARE_400) {
        (
            BARE_400,
            ErrorCode::BadRequest,
            "the request is not valid HTTP/1.1 (a Content-Length that is not one number, or a malformed \
             request or header line); fix the client or the proxy that sent it",
        )
    } else if buf.starts_with(BARE_431) {
        (BARE_431, ErrorCode::HeadersTooLarge, "the request has far too many header fields; send at most 64")
    } else {
        return None;
    };
    if !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let head = &buf[..buf.len() - 2];
    let one_head = !head.windows(4).any(|w| w == b"\r\n\r\n");
    let bodiless = head.windows(21).any(|w| w.eq_ignore_ascii_case(b"\r\ncontent-length: 0\r\n"));
    (one_head && bodiless).then(|| json_answer(status, code, message))
}

fn json_answer(status_line: &[u8], code: ErrorCode, message: &str) -> Vec<u8> {
    let body = ErrorBody { error: ErrorDetail { code, message: message.to_owned() } };
    let body = serde_json::to_vec(&body).unwrap_or_default();
    let mut answer = status_line.to_vec();
    answer.extend_from_slice(
        format!("content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len())
            .as_bytes(),
    );
    answer.extend_from_slice(&body);
    answer
}

impl<I: AsyncRead + Unpin> AsyncRead for JsonParseErrors<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for JsonParseErrors<I> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.replacing.is_none() {
            if let Some(bytes) = replacement_for(buf) {
                this.replacing = Some(Replacement { bytes, written: 0, consumed: buf.len() });
            }
        }
        let Some(r) = &mut this.replacing else { return Pin::new(&mut this.inner).poll_write(cx, buf) };
        // hyper calls again with the same head while this returns Pending.
        while r.written < r.bytes.len() {
            match Pin::new(&mut this.inner).poll_write(cx, &r.bytes[r.written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => r.written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        let consumed = r.consumed.min(buf.len());
        this.replacing = None;
        Poll::Ready(Ok(consumed))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut filled = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (filled.next(), filled.next()) {
            if self.replacing.is_some() || only.starts_with(b"HTTP/1.1 4") {
                return self.poll_write(cx, only);
            }
        }
        let this = self.get_mut();
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bodiless_400_and_431_heads_are_replaced() {
        let replaced = replacement_for(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: x\r\n\r\n").unwrap();
        let text = String::from_utf8(replaced).unwrap();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n") && text.ends_with('}'), "{text}");
        assert!(text.contains("\"code\":\"bad_request\""), "{text}");
        let big =
            replacement_for(b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n").unwrap();
        assert!(String::from_utf8(big).unwrap().contains("\"code\":\"headers_too_large\""));
        let with_body = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}";
        assert!(replacement_for(with_body).is_none(), "an answer with a body is the router's own");
        let two = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n";
        assert!(replacement_for(two).is_none());
        assert!(replacement_for(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        let unfinished = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n";
        assert!(replacement_for(unfinished).is_none(), "an unfinished head");
    }
}
