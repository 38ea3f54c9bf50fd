//! HTTP: metadata fetched into memory under a size cap, targets as streaming answers.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, RANGE};
use reqwest::{Response, Url};

use crate::error::{Error, Result};

/// The HTTP side of an updater: one client, the configured headers, the metadata timeout.
#[derive(Debug, Clone)]
pub(crate) struct Fetcher {
    client: reqwest::Client,
    headers: HeaderMap,
    timeout: Duration,
}

impl Fetcher {
    pub(crate) fn new(client: reqwest::Client, mut headers: HeaderMap, timeout: Duration) -> Self {
        // Marked sensitive so that neither reqwest's nor our Debug output shows credentials.
        for value in headers.values_mut() {
            value.set_sensitive(true);
        }
        Self { client, headers, timeout }
    }

    /// GETs `url` and returns the body if it is at most `cap` bytes. The body is read as it
    /// arrives and the transfer abandoned once past the cap ([`Error::TooLarge`]), whatever the
    /// server's `Content-Length` says. Any status other than 200 is [`Error::Http`].
    pub(crate) async fn get_capped(&self, url: &Url, what: &str, cap: u64) -> Result<Vec<u8>> {
        let mut response = self.send(url, None, Some(self.timeout)).await?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(Error::Http { url: url.to_string(), status: response.status().as_u16() });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|source| transport(url, source))? {
            if body.len() as u64 + chunk.len() as u64 > cap {
                return Err(Error::TooLarge { what: what.to_owned(), cap });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// GETs `url`, from byte `from` on when given (a `Range: bytes=FROM-` request). No total
    /// timeout: a large target may take long; the client's read timeout ends a stalled one.
    pub(crate) async fn get_target(&self, url: &Url, from: Option<u64>) -> Result<Response> {
        self.send(url, from, None).await
    }

    async fn send(&self, url: &Url, from: Option<u64>, timeout: Option<Duration>) -> Result<Response> {
        let mut request = self.client.get(url.clone()).headers(self.headers.clone());
        if let Some(from) = from {
            let range = HeaderValue::from_str(&format!("bytes={from}-")).map_err(|e| Error::Config(e.to_string()))?;
            request = request.header(RANGE, range);
        }
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        request.send().await.map_err(|source| transport(url, source))
    }
}

pub(crate) fn transport(url: &Url, source: reqwest::Error) -> Error {
    Error::Transport { url: url.to_string(), source }
}
