//! The device API (`/device/v1`), authenticated by a device credential.

use std::io::SeekFrom;
use std::path::Path;

use bytes::Bytes;
use ferry_api::{
    CheckinRequest, CheckinResponse, EnrollRequest, EnrollResponse, EventBatch, Health, WakeAnswer, DEVICE_PREFIX,
    DEVICE_TOKEN_PREFIX,
};
use ferry_core::{AppendOutcome, Sha256};
use futures::Stream;
use reqwest::header::{HeaderValue, CONTENT_LENGTH, CONTENT_RANGE, ETAG, IF_RANGE, RANGE};
use reqwest::{Method, Response, Url};
use sha2::Digest;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use crate::content::{finish, hash_reader};
use crate::http::{header_u64, read_limited, Http, DEVICE_ANSWER_LIMIT, METADATA_LIMIT};
use crate::ClientError;

/// A client of the device API.
#[derive(Debug, Clone)]
pub struct DeviceClient {
    http: Http,
}

impl DeviceClient {
    /// A client for the server at `base_url`. Without a credential only [`Self::enroll`] (and
    /// the health checks) work; enroll, then [`Self::set_credential`] with the answer's
    /// credential.
    pub fn new(base_url: &str, credential: Option<String>) -> Result<Self, ClientError> {
        let http = Http::new(base_url, credential.as_deref())?.with_answer_limit(DEVICE_ANSWER_LIMIT);
        Ok(Self { http })
    }

    /// Like [`Self::new`], sending through `client`: the device agent's, with its proxy,
    /// timeouts and user agent.
    pub fn with_client(
        base_url: &str,
        credential: Option<String>,
        client: reqwest::Client,
    ) -> Result<Self, ClientError> {
        let http = Http::with_client(base_url, credential.as_deref(), client)?.with_answer_limit(DEVICE_ANSWER_LIMIT);
        Ok(Self { http })
    }

    /// Uses `credential` (`ferry_dev_…`) from now on.
    pub fn set_credential(&mut self, credential: &str) -> Result<(), ClientError> {
        self.http.set_credential(credential)
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &Url {
        self.http.base()
    }

    /// A URL the server's answers give as a path (the check-in's repository and download
    /// URLs), resolved under the base URL. A leading `/` means the server's root, which is the
    /// base URL's path: behind a reverse proxy at `https://host/ferry/`, `/tuf/director/` is
    /// `https://host/ferry/tuf/director/`, not `https://host/tuf/director/`.
    pub fn resolve(&self, path: &str) -> Result<Url, ClientError> {
        crate::http::resolve(self.http.base(), path)
    }

    fn url(&self, segments: &[&str]) -> Url {
        self.http.url(DEVICE_PREFIX, segments)
    }

    /// `GET /livez`: the process is up.
    pub async fn livez(&self) -> Result<Health, ClientError> {
        self.http.livez().await
    }

    /// `GET /readyz`: the server can reach its database.
    pub async fn readyz(&self) -> Result<Health, ClientError> {
        self.http.readyz().await
    }

    /// `POST /enroll`: claims an identity and receives a credential (shown only this once).
    /// A credential that does not have the shape the server issues ([`check_device_credential`])
    /// is refused as [`ClientError::Decode`], so that nothing else is ever stored as one.
    pub async fn enroll(&self, request: &EnrollRequest) -> Result<EnrollResponse, ClientError> {
        let url = self.url(&["enroll"]);
        let answer: EnrollResponse = self.http.send_json(Method::POST, url.clone(), request).await?;
        check_device_credential(&answer.credential).map_err(|detail| ClientError::Decode {
            url: url.to_string(),
            detail: format!("the credential {detail}"),
        })?;
        Ok(answer)
    }

    /// `POST /checkin`: reports the device's state and receives its offers.
    pub async fn checkin(&self, request: &CheckinRequest) -> Result<CheckinResponse, ClientError> {
        self.http.send_json(Method::POST, self.url(&["checkin"]), request).await
    }

    /// `POST /events`: sends status events; retries of stored events are counted as duplicates.
    pub async fn send_events(&self, batch: &EventBatch) -> Result<AppendOutcome, ClientError> {
        self.http.send_json(Method::POST, self.url(&["events"]), batch).await
    }

    /// `GET /wait?timeout_secs=`: the long poll. Answers `wake: true` when an administrator
    /// asks the device to check in now, `wake: false` when `timeout_secs` (capped by the
    /// server) pass first. The answer is read up to the device API's answer cap like any other.
    pub async fn wait(&self, timeout_secs: u64) -> Result<WakeAnswer, ClientError> {
        let url = crate::http::with_query(self.url(&["wait"]), &[("timeout_secs", Some(timeout_secs.to_string()))]);
        self.http.get(url).await
    }

    /// `GET /tuf/image/{file}`: one image-repository metadata file, as raw bytes (verify it
    /// before trusting it), or `None` if the repository has no such file.
    pub async fn image_metadata(&self, file: &str) -> Result<Option<Bytes>, ClientError> {
        self.tuf_metadata("/tuf/image", file).await
    }

    /// `GET /tuf/director/{file}`: the director repository's root, or this device's own
    /// timestamp, snapshot and targets, as signed; `None` when the server has no such file.
    pub async fn director_metadata(&self, file: &str) -> Result<Option<Bytes>, ClientError> {
        self.tuf_metadata("/tuf/director", file).await
    }

    async fn tuf_metadata(&self, repo: &str, file: &str) -> Result<Option<Bytes>, ClientError> {
        let url = self.http.url(repo, &[file]);
        let resp = self.http.send_raw(self.http.request(Method::GET, url.clone())).await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(crate::http::error_from(resp).await);
        }
        read_limited(resp, METADATA_LIMIT).await.map(|body| Some(Bytes::from(body)))
    }

    /// `HEAD /content/{sha256}`: the length of content this device may download, or `None`
    /// when the server does not have it.
    pub async fn content_exists(&self, sha256: &Sha256) -> Result<Option<u64>, ClientError> {
        self.http.head_length(self.url(&["content", sha256.as_str()])).await
    }

    /// `GET /content/{sha256}`, optionally for the byte range `start..=end` (`end` absent: to
    /// the end), and with `If-Range` so that a range applies only while the entity tag still
    /// matches. Answers 200 (all of it) or 206 (the range); anything else, including 416 for a
    /// range beyond the end, is an error.
    pub async fn download_content(
        &self,
        sha256: &Sha256,
        range: Option<(u64, Option<u64>)>,
        if_range: Option<&str>,
    ) -> Result<Download, ClientError> {
        let mut req = self.http.request(Method::GET, self.url(&["content", sha256.as_str()]));
        if let Some((start, end)) = range {
            let end = end.map(|e| e.to_string()).unwrap_or_default();
            req = req.header(RANGE, format!("bytes={start}-{end}"));
        }
        if let Some(tag) = if_range {
            let value = HeaderValue::from_str(tag).map_err(|_| ClientError::InvalidUrl {
                url: self.base_url().to_string(),
                reason: format!("If-Range value {tag:?} cannot be sent in a header"),
            })?;
            req = req.header(IF_RANGE, value);
        }
        let response = self.http.send(req).await?;
        Ok(Download::new(response))
    }

    /// Downloads content to `path`, resuming a partial file: when `path` already has bytes,
    /// only the rest is requested (`Range` from its length, `If-Range` with the content's
    /// entity tag). The whole file is verified against `sha256` at the end; a file that does
    /// not match is removed, so the next attempt starts over.
    pub async fn download_to_file_resumable(
        &self,
        sha256: &Sha256,
        path: &Path,
    ) -> Result<DownloadOutcome, ClientError> {
        let mut file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .await
            .map_err(|e| ClientError::io("open", path, e))?;
        // Hashing what is already there lets the digest cover the whole file in one pass.
        let mut hasher = sha2::Sha256::new();
        let mut have =
            hash_reader(&mut file, &mut hasher, |_| {}).await.map_err(|e| ClientError::io("read", path, e))?;
        let etag = entity_tag(sha256);
        let mut download = match self.resume(sha256, have, &etag).await? {
            Some(download) => download,
            // The file is at least as long as the content: complete, or longer and wrong.
            None if finish(hasher.clone()) == *sha256 => {
                return Ok(DownloadOutcome { length: have, resumed_from: have });
            }
            None => {
                truncate(&mut file, path).await?;
                hasher = sha2::Sha256::new();
                have = 0;
                self.download_content(sha256, None, None).await?
            }
        };
        let resumed_from = match download.content_range {
            Some(range) if download.status == 206 && range.start == have => have,
            Some(range) if download.status == 206 => {
                return Err(ClientError::Decode {
                    url: download.response.url().to_string(),
                    detail: format!("asked for bytes from {have} but got a range from {}", range.start),
                });
            }
            // The whole content came back (the tag did not match, or ranges are unsupported).
            _ => {
                truncate(&mut file, path).await?;
                hasher = sha2::Sha256::new();
                0
            }
        };
        let mut length = resumed_from;
        while let Some(chunk) = download.chunk().await? {
            file.write_all(&chunk).await.map_err(|e| ClientError::io("write", path, e))?;
            hasher.update(&chunk);
            length += chunk.len() as u64;
        }
        file.sync_all().await.map_err(|e| ClientError::io("write", path, e))?;
        let actual = finish(hasher);
        if actual != *sha256 {
            drop(file);
            let _ = tokio::fs::remove_file(path).await;
            return Err(ClientError::Integrity { expected: sha256.to_string(), actual: actual.to_string() });
        }
        Ok(DownloadOutcome { length, resumed_from })
    }

    /// Requests content from byte `have` on; `None` when the server says nothing is left (416).
    async fn resume(&self, sha256: &Sha256, have: u64, etag: &str) -> Result<Option<Download>, ClientError> {
        if have == 0 {
            return self.download_content(sha256, None, None).await.map(Some);
        }
        match self.download_content(sha256, Some((have, None)), Some(etag)).await {
            Err(ClientError::Api { status: 416, .. }) => Ok(None),
            other => other.map(Some),
        }
    }
}

async fn truncate(file: &mut tokio::fs::File, path: &Path) -> Result<(), ClientError> {
    file.set_len(0).await.map_err(|e| ClientError::io("truncate", path, e))?;
    file.seek(SeekFrom::Start(0)).await.map_err(|e| ClientError::io("seek in", path, e))?;
    Ok(())
}

/// Checks that `credential` has the shape of a device credential the server issues:
/// `ferry_dev_` followed by 256 random bits as 64 hex digits (or 43 unpadded base64url
/// characters). The error says what is wrong without repeating the value.
pub fn check_device_credential(credential: &str) -> Result<(), String> {
    let Some(secret) = credential.strip_prefix(DEVICE_TOKEN_PREFIX) else {
        return Err(format!("does not start with {DEVICE_TOKEN_PREFIX}"));
    };
    let hex = secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit());
    let base64 = secret.len() == 43 && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if hex || base64 {
        Ok(())
    } else {
        Err(format!(
            "is not {DEVICE_TOKEN_PREFIX} followed by 64 hex digits ({} characters follow the prefix)",
            secret.chars().count()
        ))
    }
}

/// The strong entity tag the server gives content: its quoted digest.
pub fn entity_tag(sha256: &Sha256) -> String {
    format!("\"{sha256}\"")
}

/// What [`DeviceClient::download_to_file_resumable`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownloadOutcome {
    /// Length of the complete, verified file.
    pub length: u64,
    /// How many bytes were already on disk and kept (0 when it started from scratch).
    pub resumed_from: u64,
}

/// A `Content-Range: bytes START-END/TOTAL` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange {
    /// First byte sent.
    pub start: u64,
    /// Last byte sent, inclusive.
    pub end: u64,
    /// Length of the whole content, when the server states it.
    pub total: Option<u64>,
}

impl ContentRange {
    /// Parses a satisfied range (`bytes 0-99/1000` or `bytes 0-99/*`); `None` otherwise.
    pub fn parse(value: &str) -> Option<Self> {
        let rest = value.trim().strip_prefix("bytes ")?;
        let (span, total) = rest.split_once('/')?;
        let (start, end) = span.split_once('-')?;
        let (start, end) = (start.trim().parse().ok()?, end.trim().parse().ok()?);
        let total = match total.trim() {
            "*" => None,
            t => Some(t.parse().ok()?),
        };
        (start <= end && total.is_none_or(|t| end < t)).then_some(Self { start, end, total })
    }
}

/// A content download under way: the answer's status and headers, and its body as a stream.
#[derive(Debug)]
pub struct Download {
    /// 200 (the whole content) or 206 (the requested range).
    pub status: u16,
    /// Bytes in this answer's body.
    pub content_length: Option<u64>,
    /// The range sent, for a 206.
    pub content_range: Option<ContentRange>,
    /// The content's entity tag (its quoted sha256).
    pub etag: Option<String>,
    response: Response,
}

impl Download {
    fn new(response: Response) -> Self {
        let header = |name| response.headers().get(name).and_then(|v: &HeaderValue| v.to_str().ok());
        Self {
            status: response.status().as_u16(),
            content_length: header_u64(&response, CONTENT_LENGTH),
            content_range: header(CONTENT_RANGE).and_then(ContentRange::parse),
            etag: header(ETAG).map(str::to_owned),
            response,
        }
    }

    /// Whether only a range was sent.
    pub fn is_partial(&self) -> bool {
        self.status == 206
    }

    /// The next piece of the body, or `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, ClientError> {
        let url = self.response.url().clone();
        self.response.chunk().await.map_err(|e| ClientError::transport(&url, e))
    }

    /// The body as a stream of byte chunks.
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, ClientError>> + Send {
        use futures::TryStreamExt;
        let url = self.response.url().clone();
        self.response.bytes_stream().map_err(move |e| ClientError::transport(&url, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_parse() {
        assert_eq!(ContentRange::parse("bytes 0-99/1000"), Some(ContentRange { start: 0, end: 99, total: Some(1000) }));
        assert_eq!(ContentRange::parse("bytes 5-5/*"), Some(ContentRange { start: 5, end: 5, total: None }));
        for bad in ["bytes */1000", "bytes 9-1/10", "bytes 0-10/10", "items 0-1/2", "bytes 0-1", ""] {
            assert_eq!(ContentRange::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn device_credentials_must_have_the_issued_shape() {
        check_device_credential(&format!("ferry_dev_{}", "a1".repeat(32))).unwrap();
        check_device_credential(&format!("ferry_dev_{}", "A-_b".repeat(10) + "xyz")).unwrap();
        for bad in [
            String::new(),
            "ferry_adm_".to_owned() + &"a".repeat(64),
            "ferry_dev_".to_owned() + &"a".repeat(63),
            "ferry_dev_".to_owned() + &"a".repeat(1 << 20),
            "ferry_dev_".to_owned() + &"g".repeat(64),
            "ferry_dev_".to_owned() + &"a".repeat(42) + "\n",
        ] {
            let err = check_device_credential(&bad).unwrap_err();
            assert!(err.len() < 100, "{err}");
        }
    }

    #[test]
    fn entity_tags_are_the_quoted_digest() {
        let sha = Sha256::parse(&"ab".repeat(32)).unwrap();
        assert_eq!(entity_tag(&sha), format!("\"{}\"", "ab".repeat(32)));
    }
}
