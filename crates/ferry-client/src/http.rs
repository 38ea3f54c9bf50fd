//! The transport shared by [`crate::AdminClient`] and [`crate::DeviceClient`]: the base URL,
//! the credential, sending, and turning answers into values or [`ClientError`]s.

use std::time::Duration;

use ferry_api::{ErrorCode, Health};
use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{printable, MESSAGE_LIMIT};
use crate::ClientError;

/// How long to wait for a TCP (and TLS) connection. There is no overall timeout: uploads and
/// downloads of large artifacts legitimately take long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest JSON answer of the admin API read into memory. Generous, since a list of a large
/// fleet's devices or releases is one answer, but bounded, so that a hostile or broken server
/// cannot make the CLI allocate without end.
pub(crate) const ADMIN_ANSWER_LIMIT: usize = 256 << 20;
/// The largest JSON answer of the device API read into memory: enrollment, check-in and event
/// answers are a few kilobytes; the cap leaves room for many offers.
pub(crate) const DEVICE_ANSWER_LIMIT: usize = 4 << 20;
/// The largest TUF metadata file read through [`crate::DeviceClient`]'s metadata calls.
pub(crate) const METADATA_LIMIT: usize = 64 << 20;
/// How much of an error answer is read: enough for any Ferry error body; the rest is not
/// read at all.
const ERROR_BODY_LIMIT: usize = 64 << 10;

#[derive(Debug, Clone)]
pub(crate) struct Http {
    base: Url,
    client: reqwest::Client,
    /// `Bearer …`, marked sensitive so that it never shows in `Debug` output.
    authorization: Option<HeaderValue>,
    /// The largest JSON answer read; a larger one is a [`ClientError::Decode`].
    answer_limit: usize,
}

impl Http {
    pub(crate) fn new(base_url: &str, credential: Option<&str>) -> Result<Self, ClientError> {
        let base = parse_base_url(base_url)?;
        let authorization = credential.map(bearer).transpose()?;
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("ferry-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::InvalidUrl {
                url: base_url.to_owned(),
                reason: format!("cannot set up an http client for it: {e}"),
            })?;
        Ok(Self { base, client, authorization, answer_limit: ADMIN_ANSWER_LIMIT })
    }

    /// Like [`Http::new`] with a client the caller built (its proxy, timeouts, user agent).
    pub(crate) fn with_client(
        base_url: &str,
        credential: Option<&str>,
        client: reqwest::Client,
    ) -> Result<Self, ClientError> {
        let base = parse_base_url(base_url)?;
        let authorization = credential.map(bearer).transpose()?;
        Ok(Self { base, client, authorization, answer_limit: ADMIN_ANSWER_LIMIT })
    }

    /// Reads JSON answers of at most `limit` bytes.
    pub(crate) fn with_answer_limit(mut self, limit: usize) -> Self {
        self.answer_limit = limit;
        self
    }

    pub(crate) fn base(&self) -> &Url {
        &self.base
    }

    pub(crate) fn set_credential(&mut self, credential: &str) -> Result<(), ClientError> {
        self.authorization = Some(bearer(credential)?);
        Ok(())
    }

    /// `base` + `prefix` + the given path segments, each percent-encoded as one segment.
    pub(crate) fn url(&self, prefix: &str, segments: &[&str]) -> Url {
        join(&self.base, prefix, segments)
    }

    pub(crate) fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let req = self.client.request(method, url);
        match &self.authorization {
            Some(value) => req.header(AUTHORIZATION, value.clone()),
            None => req,
        }
    }

    /// Sends a request; any non-success status becomes [`ClientError::Api`].
    pub(crate) async fn send(&self, req: RequestBuilder) -> Result<Response, ClientError> {
        let resp = self.send_raw(req).await?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(error_from(resp).await)
        }
    }

    /// Sends a request and returns whatever status the server answered.
    pub(crate) async fn send_raw(&self, req: RequestBuilder) -> Result<Response, ClientError> {
        let (client, req) = req.build_split();
        let req = req.map_err(|e| ClientError::InvalidUrl {
            url: self.base.to_string(),
            reason: format!("cannot build the request: {e}"),
        })?;
        let url = req.url().clone();
        client.execute(req).await.map_err(|e| ClientError::transport(&url, e))
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, url: Url) -> Result<T, ClientError> {
        let resp = self.send(self.request(Method::GET, url)).await?;
        self.decode(resp).await
    }

    pub(crate) async fn send_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: &B,
    ) -> Result<T, ClientError> {
        let resp = self.send(self.request(method, url).json(body)).await?;
        self.decode(resp).await
    }

    /// A request without a body whose answer has no body either (204).
    pub(crate) async fn send_empty(&self, method: Method, url: Url) -> Result<(), ClientError> {
        self.send(self.request(method, url)).await.map(drop)
    }

    /// A `POST` without a body that answers JSON.
    pub(crate) async fn post_empty<T: DeserializeOwned>(&self, url: Url) -> Result<T, ClientError> {
        let resp = self.send(self.request(Method::POST, url)).await?;
        self.decode(resp).await
    }

    /// `HEAD` on content: `Some(length)` when stored, `None` on 404.
    pub(crate) async fn head_length(&self, url: Url) -> Result<Option<u64>, ClientError> {
        let resp = self.send_raw(self.request(Method::HEAD, url.clone())).await?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(ClientError::from_bodiless_status(status.as_u16()));
        }
        let length = header_u64(&resp, reqwest::header::CONTENT_LENGTH).ok_or_else(|| ClientError::Decode {
            url: url.to_string(),
            detail: "no Content-Length in the answer".into(),
        })?;
        Ok(Some(length))
    }

    /// `GET /livez`.
    pub(crate) async fn livez(&self) -> Result<Health, ClientError> {
        self.get(self.url("", &["livez"])).await
    }

    /// `GET /readyz`, whose 503 answer carries a [`Health`] rather than an error body.
    pub(crate) async fn readyz(&self) -> Result<Health, ClientError> {
        let resp = self.send_raw(self.request(Method::GET, self.url("", &["readyz"]))).await?;
        let status = resp.status();
        if status.is_success() {
            return self.decode(resp).await;
        }
        let text = String::from_utf8_lossy(&read_prefix(resp, ERROR_BODY_LIMIT).await).into_owned();
        match serde_json::from_str::<Health>(&text) {
            Ok(health) => {
                Err(ClientError::Api { status: status.as_u16(), code: ErrorCode::Unavailable, message: health.status })
            }
            Err(_) => Err(ClientError::from_response_body(status.as_u16(), &text)),
        }
    }

    /// Reads a JSON answer of at most this client's answer limit.
    pub(crate) async fn decode<T: DeserializeOwned>(&self, resp: Response) -> Result<T, ClientError> {
        decode_limited(resp, self.answer_limit).await
    }
}

fn bearer(credential: &str) -> Result<HeaderValue, ClientError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", credential.trim())).map_err(|_| {
        ClientError::InvalidCredential { reason: "it contains characters that cannot be sent in an http header".into() }
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Reads an error answer into a [`ClientError::Api`]. Only its first [`ERROR_BODY_LIMIT`]
/// bytes are read: an error body larger than that is no Ferry error body.
pub(crate) async fn error_from(resp: Response) -> ClientError {
    let status = resp.status().as_u16();
    // A body that cannot be read is reported like an empty one: the status still says enough.
    let bytes = read_prefix(resp, ERROR_BODY_LIMIT).await;
    ClientError::from_response_body(status, &String::from_utf8_lossy(&bytes))
}

/// Reads a JSON answer of at most `limit` bytes: a larger one is refused as soon as its
/// `Content-Length` or the bytes received pass the limit, without reading the rest.
pub(crate) async fn decode_limited<T: DeserializeOwned>(resp: Response, limit: usize) -> Result<T, ClientError> {
    let url = resp.url().clone();
    let bytes = read_limited(resp, limit).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ClientError::Decode { url: url.to_string(), detail: printable(&e.to_string(), MESSAGE_LIMIT) })
}

/// The whole body of `resp`, or [`ClientError::Decode`] when it is longer than `limit` bytes.
pub(crate) async fn read_limited(mut resp: Response, limit: usize) -> Result<Vec<u8>, ClientError> {
    let url = resp.url().clone();
    let too_large = || ClientError::Decode {
        url: url.to_string(),
        detail: format!("the answer is longer than {limit} bytes, far more than a Ferry server sends"),
    };
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| ClientError::transport(&url, e))? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The first `limit` bytes of the body (fewer if it is shorter or breaks off); the rest is
/// not read.
async fn read_prefix(mut resp: Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < limit {
        match resp.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk[..chunk.len().min(limit - body.len())]),
            _ => break,
        }
    }
    body
}

pub(crate) fn header_u64(resp: &Response, name: reqwest::header::HeaderName) -> Option<u64> {
    resp.headers().get(name)?.to_str().ok()?.trim().parse().ok()
}

/// Parses the server's base URL: http or https, no query or fragment. A path is kept, so a
/// server behind a reverse proxy at `https://host/ferry/` works.
pub(crate) fn parse_base_url(raw: &str) -> Result<Url, ClientError> {
    let invalid = |reason: &str| ClientError::InvalidUrl { url: raw.to_owned(), reason: reason.to_owned() };
    let url = Url::parse(raw.trim()).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(invalid("it has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("it must not have a query or fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("credentials belong in --token, not in the url"));
    }
    Ok(url)
}

fn join(base: &Url, prefix: &str, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty();
        path.extend(prefix.split('/').filter(|s| !s.is_empty()));
        path.extend(segments);
    }
    url
}

/// Resolves a path from a server answer under `base`, keeping `base`'s path (see
/// `DeviceClient::resolve`). A full URL is taken as it is.
pub(crate) fn resolve(base: &Url, path: &str) -> Result<Url, ClientError> {
    let mut root = base.clone();
    if !root.path().ends_with('/') {
        let with_slash = format!("{}/", root.path());
        root.set_path(&with_slash);
    }
    root.join(path.trim_start_matches('/')).map_err(|e| ClientError::InvalidUrl {
        url: path.to_owned(),
        reason: format!("the server gave a bad URL: {e}"),
    })
}

/// Appends query parameters, skipping absent ones.
pub(crate) fn with_query(mut url: Url, pairs: &[(&str, Option<String>)]) -> Url {
    if pairs.iter().any(|(_, v)| v.is_some()) {
        let mut query = url.query_pairs_mut();
        for (key, value) in pairs {
            if let Some(value) = value {
                query.append_pair(key, value);
            }
        }
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(base: &str, prefix: &str, segments: &[&str]) -> String {
        join(&parse_base_url(base).unwrap(), prefix, segments).to_string()
    }

    #[test]
    fn urls_join_prefix_and_segments() {
        assert_eq!(
            url("http://127.0.0.1:8080", "/api/v1", &["products", "vpn"]),
            "http://127.0.0.1:8080/api/v1/products/vpn"
        );
        assert_eq!(url("http://h/", "/device/v1", &["checkin"]), "http://h/device/v1/checkin");
        assert_eq!(url("https://h/ferry/", "/api/v1", &["whoami"]), "https://h/ferry/api/v1/whoami");
        assert_eq!(url("https://h/ferry", "", &["livez"]), "https://h/ferry/livez");
    }

    #[test]
    fn server_paths_resolve_under_the_base_path() {
        let resolved = |base: &str, path: &str| resolve(&parse_base_url(base).unwrap(), path).unwrap().to_string();
        assert_eq!(resolved("http://h:8080", "/tuf/director/"), "http://h:8080/tuf/director/");
        assert_eq!(resolved("https://h/ferry", "/tuf/director/"), "https://h/ferry/tuf/director/");
        assert_eq!(resolved("https://h/ferry/", "/tuf/image/targets/"), "https://h/ferry/tuf/image/targets/");
        assert_eq!(resolved("https://h/a/b", "tuf/image/"), "https://h/a/b/tuf/image/");
        assert_eq!(resolved("https://h/ferry", "https://cdn/x/"), "https://cdn/x/");
    }

    #[test]
    fn segments_are_encoded_as_one_segment() {
        assert_eq!(url("http://h", "/api/v1", &["devices", "a/b?c#d"]), "http://h/api/v1/devices/a%2Fb%3Fc%23d");
        assert_eq!(url("http://h", "/api/v1", &["devices", "SN:1@x"]), "http://h/api/v1/devices/SN:1@x");
    }

    #[test]
    fn query_skips_absent_values() {
        let base = Url::parse("http://h/api/v1/devices").unwrap();
        let q = with_query(
            base.clone(),
            &[("status", Some("pending".into())), ("group", None), ("after", Some("a&b".into()))],
        );
        assert_eq!(q.as_str(), "http://h/api/v1/devices?status=pending&after=a%26b");
        assert_eq!(with_query(base, &[("group", None)]).as_str(), "http://h/api/v1/devices");
    }

    #[test]
    fn bad_base_urls_are_refused() {
        for bad in ["127.0.0.1:8080", "ftp://h", "http://h/?x=1", "http://u:p@h", "not a url", "file:///x"] {
            let err = parse_base_url(bad).unwrap_err();
            assert!(matches!(err, ClientError::InvalidUrl { .. }), "{bad}: {err:?}");
        }
    }

    #[test]
    fn credentials_are_sensitive_and_validated() {
        let http = Http::new("http://h", Some("ferry_adm_secret\n")).unwrap();
        assert!(!format!("{http:?}").contains("secret"));
        let value = http.authorization.as_ref().unwrap();
        assert!(value.is_sensitive());
        assert_eq!(value.to_str().unwrap(), "Bearer ferry_adm_secret");
        assert!(Http::new("http://h", Some("a\u{7}b")).is_err());
    }
}
