//! Accepting connections: hyper's HTTP/1.1 server with the limits
//! `axum::serve` leaves unset.
//!
//! - A connection must finish its request headers within
//!   [`ConnLimits::header_read_timeout`], and an idle keep-alive
//!   connection is closed after the same time (hyper starts the timer
//!   whenever it waits for a request head). Without a timer hyper enforces
//!   neither, so a few hundred clients that never finish their headers
//!   would hold sockets and memory for ever.
//! - At most [`ConnLimits::max_connections`] connections are served at
//!   once; beyond that Herald stops accepting and new ones wait in the
//!   kernel's backlog, instead of running the process out of file
//!   descriptors. Open event streams count, so the cap is set above
//!   `HERALD_MAX_STREAMS`.
//! - At shutdown the listener closes first, then every connection finishes
//!   its request in flight (streams end themselves on the same signal).
//!
//! Each connection is served by a clone of the same service (`Arc`s
//! inside): nothing is rebuilt per connection.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::body::Bytes;
use axum::http::{Request, Response};
use axum::BoxError;
use hyper::body::{Body as HttpBody, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::{Service, ServiceExt};

/// Limits on connections (see the module docs).
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    /// Time allowed for a request's headers, and for an idle keep-alive
    /// connection's next request to start.
    pub header_read_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

/// Serve `service` ([`crate::app`], or a `Router`) on `listener` until
/// `shutdown` is cancelled, then wait for the open connections to finish.
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    limits: ConnLimits,
    shutdown: CancellationToken,
) where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = shutdown.cancelled() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before
                    // it was accepted: wait a little rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        // Small SSE frames go out at once rather than after Nagle's delay.
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(
            service
                .clone()
                .map_request(|req: Request<Incoming>| req.map(Body::new)),
        );
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                // Timeouts and clients that went away: routine.
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
