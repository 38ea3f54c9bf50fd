//! Each class of bad input gets the right status, a stable code and a message, and changes
//! nothing. Raw HTTP here, because the typed client cannot send malformed requests.

mod common;

use ferry_api::{ErrorBody, ErrorCode};
use reqwest::StatusCode;
use sha2::Digest;

async fn error_of(resp: reqwest::Response) -> (StatusCode, ErrorCode, String) {
    let status = resp.status();
    let body: ErrorBody = resp.json().await.expect("every error has a JSON error body");
    assert!(!body.error.message.is_empty());
    (status, body.error.code, body.error.message)
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

on_both_backends!(malformed_and_oversized_json, |srv: common::TestServer| async move {
    let url = format!("{}/api/v1/products", srv.url);
    let send = |body: Vec<u8>| {
        client().post(&url).bearer_auth(&srv.admin_token).header("content-type", "application/json").body(body).send()
    };
    let (s, c, m) = error_of(send(b"{\"name\": ".to_vec()).await.unwrap()).await;
    assert_eq!((s, c), (StatusCode::BAD_REQUEST, ErrorCode::InvalidJson), "{m}");
    let (s, c, m) = error_of(send(b"{\"name\": \"a\", \"colour\": 1}".to_vec()).await.unwrap()).await;
    assert_eq!((s, c), (StatusCode::BAD_REQUEST, ErrorCode::InvalidJson));
    assert!(m.contains("colour"), "the message names the unknown field: {m}");
    let big = format!("{{\"name\":\"a\",\"description\":\"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let (s, c, _) = error_of(send(big.into_bytes()).await.unwrap()).await;
    assert_eq!((s, c), (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge));
    let no_type = client().post(&url).bearer_auth(&srv.admin_token).body("{}").send().await.unwrap();
    assert_eq!(error_of(no_type).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(products(&srv).await.is_empty(), "nothing was created");
});

on_both_backends!(traversal_in_names_is_refused, |srv: common::TestServer| async move {
    let post = |path: &str, body: serde_json::Value| {
        client().post(format!("{}/api/v1/{path}", srv.url)).bearer_auth(&srv.admin_token).json(&body).send()
    };
    for bad in ["../etc", "a/b", "..", ".hidden", "a\\b", ""] {
        let (s, c, m) = error_of(post("products", serde_json::json!({ "name": bad })).await.unwrap()).await;
        assert_eq!((s, c), (StatusCode::BAD_REQUEST, ErrorCode::InvalidJson), "{bad:?}: {m}");
    }
    for path in ["products/..%2F..%2Fetc%2Fpasswd", "groups/a%5Cb", "platforms/%2E%2E%2Fx", "devices/bad%00id"] {
        let resp =
            client().get(format!("{}/api/v1/{path}", srv.url)).bearer_auth(&srv.admin_token).send().await.unwrap();
        let (s, c, m) = error_of(resp).await;
        assert_eq!((s, c), (StatusCode::BAD_REQUEST, ErrorCode::InvalidName), "{path}: {m}");
    }
    // An artifact name with a path in it, inside a release.
    post("products", serde_json::json!({"name": "p"})).await.unwrap();
    post("platforms", serde_json::json!({"name": "x"})).await.unwrap();
    let release = serde_json::json!({
        "product": "p", "version": "1.0", "platforms": ["x"],
        "artifacts": [{"name": "../../etc/passwd", "length": 1, "sha256": "00".repeat(32)}]
    });
    let (s, c, m) = error_of(post("releases", release).await.unwrap()).await;
    assert_eq!((s, c), (StatusCode::BAD_REQUEST, ErrorCode::InvalidJson));
    assert!(m.contains("artifact name"), "{m}");
    let bad_version =
        serde_json::json!({"product": "p", "version": "1.0/../../x", "platforms": ["x"], "artifacts": []});
    assert_eq!(error_of(post("releases", bad_version).await.unwrap()).await.0, StatusCode::BAD_REQUEST);
    let bad_sha = client()
        .get(format!("{}/device/v1/content/not-a-digest", srv.url))
        .bearer_auth("ferry_dev_x")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_sha.status(), StatusCode::UNAUTHORIZED, "authentication comes first");
});

on_both_backends!(uploads_enforce_size_and_hash, |srv: common::TestServer| async move {
    let url = format!("{}/api/v1/content", srv.url);
    let data = b"0123456789".to_vec();
    let digest = hex::encode(sha2::Sha256::digest(&data));
    // Wrong expected digest.
    let resp = client()
        .post(&url)
        .bearer_auth(&srv.admin_token)
        .header("x-ferry-sha256", "ab".repeat(32))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    let (s, c, m) = error_of(resp).await;
    assert_eq!((s, c), (StatusCode::BAD_REQUEST, ErrorCode::HashMismatch), "{m}");
    // Malformed expected digest.
    let resp = client()
        .post(&url)
        .bearer_auth(&srv.admin_token)
        .header("x-ferry-sha256", "zz")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp).await.1, ErrorCode::InvalidName);
    // No Content-Length (a chunked stream).
    let stream = futures::stream::iter(vec![Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"abc"))]);
    let resp = client()
        .post(&url)
        .bearer_auth(&srv.admin_token)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    let (s, c, _) = error_of(resp).await;
    assert_eq!((s, c), (StatusCode::LENGTH_REQUIRED, ErrorCode::LengthRequired));
    // Nothing was stored by any of these.
    let head = client().head(format!("{url}/{digest}")).bearer_auth(&srv.admin_token).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::NOT_FOUND);
    let tmp = std::fs::read_dir(srv.data_dir.join("content/tmp")).unwrap().count();
    assert_eq!(tmp, 0, "no temporary files left");
    // The same upload done right works.
    let resp = client()
        .post(&url)
        .bearer_auth(&srv.admin_token)
        .header("x-ferry-sha256", &digest)
        .body(data)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
});

on_both_backends!(unknown_things_are_not_found, |srv: common::TestServer| async move {
    let get = |path: &str| client().get(format!("{}{path}", srv.url)).bearer_auth(&srv.admin_token).send();
    for path in [
        "/api/v1/releases/4242",
        "/api/v1/products/nope",
        "/api/v1/groups/nope",
        "/api/v1/devices/nope",
        "/api/v1/nothing-here",
    ] {
        let (s, c, m) = error_of(get(path).await.unwrap()).await;
        assert_eq!((s, c), (StatusCode::NOT_FOUND, ErrorCode::NotFound), "{path}: {m}");
    }
    let (s, c, _) = error_of(get("/api/v1/releases/abc").await.unwrap()).await;
    assert_eq!((s, c), (StatusCode::BAD_REQUEST, ErrorCode::InvalidName));
    let put = client()
        .put(format!("{}/api/v1/releases/4242/approvals/office", srv.url))
        .bearer_auth(&srv.admin_token)
        .json(&serde_json::json!({"action": "install"}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(put).await.0, StatusCode::NOT_FOUND);
    // No credential at all.
    let anon = client().get(format!("{}/api/v1/products", srv.url)).send().await.unwrap();
    assert_eq!(error_of(anon).await.1, ErrorCode::Unauthorized);
});

#[tokio::test]
async fn uploads_over_the_configured_limit_are_refused() {
    let srv = common::TestServer::start_with(common::Backend::Sqlite, |c| c.limits.artifact_bytes = 1000).await;
    let resp = client()
        .post(format!("{}/api/v1/content", srv.url))
        .bearer_auth(&srv.admin_token)
        .body(vec![7u8; 1001])
        .send()
        .await
        .unwrap();
    let (s, c, m) = error_of(resp).await;
    assert_eq!((s, c), (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge));
    assert!(m.contains("1000"), "{m}");
}

on_both_backends!(conditional_and_head_downloads, |srv: common::TestServer| async move {
    // Publish, approve and enroll through the raw API, then probe the download's HTTP semantics.
    let admin = |m: reqwest::Method, path: &str| {
        client().request(m, format!("{}/api/v1/{path}", srv.url)).bearer_auth(&srv.admin_token)
    };
    admin(reqwest::Method::POST, "products").json(&serde_json::json!({"name": "fw"})).send().await.unwrap();
    admin(reqwest::Method::POST, "platforms").json(&serde_json::json!({"name": "m1"})).send().await.unwrap();
    let group: serde_json::Value = admin(reqwest::Method::POST, "groups")
        .json(&serde_json::json!({"name": "g"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let data = vec![42u8; 5000];
    let digest = hex::encode(sha2::Sha256::digest(&data));
    admin(reqwest::Method::POST, "content").body(data.clone()).send().await.unwrap();
    let release: serde_json::Value = admin(reqwest::Method::POST, "releases")
        .json(&serde_json::json!({"product": "fw", "version": "2", "platforms": ["m1"],
            "artifacts": [{"name": "fw.bin", "length": 5000, "sha256": digest}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = release["id"].as_i64().unwrap();
    admin(reqwest::Method::PUT, &format!("releases/{id}/approvals/g"))
        .json(&serde_json::json!({"action": "install"}))
        .send()
        .await
        .unwrap();
    let enrolled: serde_json::Value = client()
        .post(format!("{}/device/v1/enroll", srv.url))
        .json(&serde_json::json!({"device_id": "m1-dev", "enrollment_key": group["enrollment_key"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cred = enrolled["credential"].as_str().unwrap().to_owned();
    client()
        .post(format!("{}/device/v1/checkin", srv.url))
        .bearer_auth(&cred)
        .json(&serde_json::json!({"platform": "m1"}))
        .send()
        .await
        .unwrap();

    let url = format!("{}/device/v1/content/{digest}", srv.url);
    let etag = format!("\"{digest}\"");
    let head = client().head(&url).bearer_auth(&cred).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["content-length"], "5000");
    assert_eq!(head.headers()["etag"], etag.as_str());
    assert_eq!(head.headers()["accept-ranges"], "bytes");
    let not_modified = client().get(&url).bearer_auth(&cred).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);
    let suffix = client().get(&url).bearer_auth(&cred).header("range", "bytes=-100").send().await.unwrap();
    assert_eq!(suffix.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(suffix.headers()["content-range"], "bytes 4900-4999/5000");
    assert_eq!(suffix.bytes().await.unwrap().len(), 100);
    let unsatisfiable = client().get(&url).bearer_auth(&cred).header("range", "bytes=9000-").send().await.unwrap();
    assert_eq!(unsatisfiable.headers()["content-range"], "bytes */5000");
    assert_eq!(error_of(unsatisfiable).await.1, ErrorCode::RangeNotSatisfiable);
    let multi = client().get(&url).bearer_auth(&cred).header("range", "bytes=0-1,10-11").send().await.unwrap();
    assert_eq!(multi.status(), StatusCode::OK, "several ranges are answered with the whole content");
    assert_eq!(multi.bytes().await.unwrap(), data);
});

/// Sends `request` byte for byte on a new connection (the requests say `connection: close`),
/// optionally closing the sending side after it, and reads the answer to its end: status,
/// headers (names lower-case) and body.
async fn raw(srv: &common::TestServer, request: &[u8], close_sending: bool) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tcp = tokio::net::TcpStream::connect(srv.url.trim_start_matches("http://")).await.unwrap();
    tcp.write_all(request).await.unwrap();
    if close_sending {
        tcp.shutdown().await.unwrap();
    }
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.unwrap();
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete answer head") + 4;
    let head = String::from_utf8(answer[..end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_owned())).collect();
    (status, headers, answer[end..].to_vec())
}

/// The error of a raw answer: it must be declared JSON and be the API's error body.
fn raw_error((status, headers, body): &(u16, Vec<(String, String)>, Vec<u8>)) -> (u16, ErrorCode, String) {
    let content_type = headers.iter().find(|(n, _)| n == "content-type").map(|(_, v)| v.as_str());
    assert_eq!(content_type, Some("application/json"), "status {status}: {}", String::from_utf8_lossy(body));
    let parsed: ErrorBody = serde_json::from_slice(body).expect("the JSON error body");
    assert!(!parsed.error.message.is_empty());
    (*status, parsed.error.code, parsed.error.message)
}

/// The products the server lists (to check that a refused request created nothing).
async fn products(srv: &common::TestServer) -> Vec<serde_json::Value> {
    let url = format!("{}/api/v1/products", srv.url);
    client().get(url).bearer_auth(&srv.admin_token).send().await.unwrap().json().await.unwrap()
}

fn post_products(srv: &common::TestServer, extra_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "POST /api/v1/products HTTP/1.1\r\nhost: x\r\nconnection: close\r\nauthorization: Bearer {}\r\n{extra_headers}\r\n{body}",
        srv.admin_token
    )
    .into_bytes()
}

on_both_backends!(every_error_answer_has_the_json_body, |srv: common::TestServer| async move {
    // A route that exists, asked with a method it does not take: 405, with Allow.
    let resp =
        client().delete(format!("{}/api/v1/products", srv.url)).bearer_auth(&srv.admin_token).send().await.unwrap();
    let allow = resp.headers()["allow"].to_str().unwrap().to_owned();
    let (s, c, m) = error_of(resp).await;
    assert_eq!((s, c), (StatusCode::METHOD_NOT_ALLOWED, ErrorCode::MethodNotAllowed), "{m}");
    assert!(allow.contains("GET") && allow.contains("POST") && m.contains("DELETE"), "{allow}: {m}");
    let resp = client().get(format!("{}/device/v1/checkin", srv.url)).send().await.unwrap();
    assert_eq!(error_of(resp).await.1, ErrorCode::MethodNotAllowed);
    let resp = client().get(format!("{}/nowhere", srv.url)).send().await.unwrap();
    assert_eq!(error_of(resp).await.1, ErrorCode::NotFound);

    // Too many header fields, and too many header bytes.
    let many: String = (0..80).map(|i| format!("x-filler-{i}: {i}\r\n")).collect();
    let (s, c, m) = raw_error(&raw(&srv, &post_products(&srv, &many, ""), false).await);
    assert_eq!((s, c), (431, ErrorCode::HeadersTooLarge), "{m}");
    assert!(m.contains("64 fields"), "{m}");
    let long = format!("x-long: {}\r\n", "a".repeat(40 * 1024));
    let (s, c, _) = raw_error(&raw(&srv, &post_products(&srv, &long, ""), false).await);
    assert_eq!((s, c), (431, ErrorCode::HeadersTooLarge));

    // A body shorter than its Content-Length: the sender gave up part-way.
    let short = "content-type: application/json\r\ncontent-length: 100\r\n";
    let (s, c, m) = raw_error(&raw(&srv, &post_products(&srv, short, "{\"name\":\"cut\"}"), true).await);
    assert_eq!((s, c), (400, ErrorCode::InvalidJson), "{m}");
    // And one longer than its Content-Length: what the length covers is read, and is cut JSON.
    let long = "content-type: application/json\r\ncontent-length: 5\r\n";
    let (s, c, m) = raw_error(&raw(&srv, &post_products(&srv, long, "{\"name\":\"cut\"}"), false).await);
    assert_eq!((s, c), (400, ErrorCode::InvalidJson), "{m}");

    // A Content-Length that is not one number, and a header line that is not a header: the
    // HTTP parser refuses the request before any handler runs, and still says why in JSON.
    for bad in ["content-type: application/json\r\ncontent-length: abc\r\n", "this is not a header\r\n"] {
        let (s, c, m) = raw_error(&raw(&srv, &post_products(&srv, bad, "{}"), false).await);
        assert_eq!((s, c), (400, ErrorCode::BadRequest), "{bad:?}: {m}");
        assert!(m.contains("Content-Length"), "{m}");
    }
    // More header fields than the HTTP parser reads at all (it stops at 100).
    let far_too_many: String = (0..120).map(|i| format!("x-f{i}: {i}\r\n")).collect();
    let (s, c, _) = raw_error(&raw(&srv, &post_products(&srv, &far_too_many, ""), false).await);
    assert_eq!((s, c), (431, ErrorCode::HeadersTooLarge));

    let listed = products(&srv).await;
    assert!(listed.is_empty(), "nothing was created: {listed:?}");
});

on_both_backends!(only_application_json_is_read_as_json, |srv: common::TestServer| async move {
    let send = |content_type: &'static str, name: &str| {
        client()
            .post(format!("{}/api/v1/products", srv.url))
            .bearer_auth(&srv.admin_token)
            .header("content-type", content_type)
            .body(format!("{{\"name\":\"{name}\"}}"))
            .send()
    };
    for refused in [
        "application/json-patch+json",
        "text/json",
        "application/vnd.foo+json",
        "application/json; charset=latin1",
        "application/json; charset=utf-8; profile=x",
        "text/plain",
    ] {
        let (s, c, m) = error_of(send(refused, "refused").await.unwrap()).await;
        assert_eq!((s, c), (StatusCode::UNSUPPORTED_MEDIA_TYPE, ErrorCode::UnsupportedMediaType), "{refused}: {m}");
        assert!(m.contains("application/json") && m.contains(refused), "{m}");
    }
    for (i, accepted) in
        ["application/json", "application/json; charset=utf-8", "Application/JSON;Charset=\"UTF-8\""].iter().enumerate()
    {
        let resp = send(accepted, &format!("p{i}")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED, "{accepted}");
    }
    let listed = products(&srv).await;
    assert_eq!(listed.len(), 3, "only the accepted ones were created");
});
