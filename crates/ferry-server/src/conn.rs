//! The connection layer: the accept loop in front of the router, with bounds on every
//! connection, so that a client that is silent, slow or opens many sockets cannot use up the
//! server's memory or file descriptors (settings in `[connections]`):
//!
//! - at most `max` connections are served at once. `reserve` more get one answer each
//!   (`/livez` and `/readyz` as usual, so health checks keep working, 503 for anything else)
//!   and are closed; beyond that a connection is closed as soon as it is accepted, so the
//!   listen backlog keeps moving and no descriptor is held for it;
//! - a request's headers must arrive within `header_timeout_secs` of the connection opening or
//!   of the previous answer (hyper's header read timeout), which also bounds how long an idle
//!   keep-alive connection stays; a TLS handshake gets the same time;
//! - a request body that sends nothing for `body_timeout_secs` is cut with 408.
//!
//! None of these cuts a request whose handler is still working on the answer, such as a
//! device's long poll on the wake channel (`routes::wake`): the header timeout runs only while
//! a request head is read, the body timeout only while a body is read. That poll ends by its
//! own deadline, a wake-up, the client going away, or shutdown (`wakeups::Wakeups::close`).
//!
//! Connections speak HTTP/1.1, over TLS when `[tls]` names a certificate and key. The peer's
//! address reaches handlers as `ConnectInfo<SocketAddr>`, as with `axum::serve`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;
use tower_http::timeout::{TimeoutBody, TimeoutError};

use crate::config::{Connections, Tls};
use crate::error::ApiError;

/// How long the accept loop pauses after `accept` fails (typically: out of file descriptors),
/// so that it does not spin while connections close.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How often, at most, connections closed for being over the limit are logged.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// Reads the certificate chain and key named by `[tls]`; `None` when HTTPS is not configured.
pub(crate) fn tls_acceptor(tls: &Tls) -> Result<Option<TlsAcceptor>, String> {
    if !tls.enabled() {
        return Ok(None);
    }
    let certs = read_certificates(&tls.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&tls.key_file).map_err(|e| {
        format!(
            "tls.key_file {}: {e}; it must be a PEM file holding the certificate's private key",
            tls.key_file.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            format!(
                "tls.cert_file {} and tls.key_file {} cannot be used together: {e}",
                tls.cert_file.display(),
                tls.key_file.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let invalid = |e: &dyn std::fmt::Display| format!("tls.cert_file {}: {e}", path.display());
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| invalid(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(&e))?;
    if certs.is_empty() {
        return Err(invalid(&"no certificate in it; it must be a PEM file starting with the server's certificate"));
    }
    Ok(certs)
}

/// Middleware: a request body that sends nothing for `timeout` ends the request with 408,
/// whatever the handler made of the failed read. The timer restarts with every chunk, so a
/// large upload at a steady pace is never cut.
pub(crate) async fn body_deadline(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    let stalled = Arc::new(AtomicBool::new(false));
    let flag = stalled.clone();
    let request = request.map(|body| {
        axum::body::Body::new(TimeoutBody::new(timeout, body).map_err(move |e| {
            if e.is::<TimeoutError>() {
                flag.store(true, Ordering::Relaxed);
            }
            e
        }))
    });
    let response = next.run(request).await;
    if stalled.load(Ordering::Relaxed) {
        return ApiError::body_timeout(timeout.as_secs()).into_response();
    }
    response
}

/// What connections over `connections.max` are answered by: health checks as usual, 503
/// for anything else.
fn reserve_router(app: Router) -> Router {
    Router::new()
        .route_service("/livez", app.clone().into_service::<axum::body::Body>())
        .route_service("/readyz", app.into_service::<axum::body::Body>())
        .fallback(|| async { ApiError::too_many_connections() })
}

/// Accepts connections on `listener` and serves `router` on them within `limits` until
/// `shutdown` resolves; then stops accepting and waits for the open connections to finish
/// their requests in flight (idle ones close at once).
pub(crate) async fn accept_loop(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    limits: &Connections,
    shutdown: impl Future<Output = ()>,
) {
    let header_timeout = Duration::from_secs(limits.header_timeout_secs);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(header_timeout).keep_alive(true);
    let mut once = http.clone();
    once.keep_alive(false);
    let reserve = reserve_router(router.clone());
    let served = Arc::new(Semaphore::new(limits.max));
    let spare = Arc::new(Semaphore::new(limits.reserve));
    let graceful = GracefulShutdown::new();
    let mut refused = 0u64;
    let mut last_refusal_log: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a connection; check the open-file limit (ulimit -n) against connections.max");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let (permit, service, builder) = match served.clone().try_acquire_owned() {
            Ok(permit) => (permit, router.clone(), http.clone()),
            Err(_) => match spare.clone().try_acquire_owned() {
                Ok(permit) => (permit, reserve.clone(), once.clone()),
                Err(_) => {
                    drop(tcp);
                    refused += 1;
                    if last_refusal_log.is_none_or(|at| at.elapsed() >= REFUSAL_LOG_EVERY) {
                        tracing::warn!(
                            refused,
                            "closing new connections: connections.max + connections.reserve are open"
                        );
                        last_refusal_log = Some(Instant::now());
                    }
                    continue;
                }
            },
        };
        // Small API answers are not delayed by Nagle's algorithm.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY");
        }
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                None => serve_connection(tcp, &builder, service, peer, watcher).await,
                Some(acceptor) => match tokio::time::timeout(header_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => serve_connection(stream, &builder, service, peer, watcher).await,
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                },
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

async fn serve_connection<I>(io: I, builder: &http1::Builder, router: Router, peer: SocketAddr, watcher: Watcher)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = router.map_request(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request
    });
    let io = crate::parse_error::JsonParseErrors::new(io);
    let connection = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(%peer, error = %e, "connection closed");
    }
}
