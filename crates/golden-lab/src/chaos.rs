//! Random faults: the lab failing a share of its requests the way a network, a proxy or a busy
//! server does, drawn from a seeded generator so that a run can be repeated.
//!
//! Each request (control routes aside) draws once: with probability `rate_percent` it gets one
//! of `kinds`, chosen uniformly. The seed fixes the sequence of draws; which request gets which
//! draw follows the order requests arrive in, which concurrent clients may change between runs.
//!
//! - [`FaultKind::Unavailable`], [`FaultKind::RateLimited`] and [`FaultKind::ResetBefore`] answer
//!   before the handler runs: the request has no effect, as when a proxy or an overloaded front
//!   end turns it away.
//! - [`FaultKind::ResetAfter`] drops the connection after the handler ran: the request took
//!   effect and the client cannot know it did. A client that sends such a write again acts twice.
//! - [`FaultKind::Expiry`] ends the session the request carries, then handles it.
//! - [`FaultKind::Slow`] delays the request, then handles it.
//!
//! Cutting a connection needs the connection: [`Listener`] hands each request a [`Conn`] whose
//! stream fails every read and write once the request's fault has cut it, so hyper closes the
//! connection without writing the answer.

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::Shared;
use super::server::{Cut, Product};

/// How long a [`FaultKind::Slow`] request waits before it is handled.
pub const SLOW: Duration = Duration::from_millis(300);

/// The wait a [`FaultKind::RateLimited`] answer asks for, in whole seconds as Horizon gives it.
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// One way a request fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// 503 before the handler runs.
    Unavailable,
    /// 429 before the handler runs, with the wait to respect: Horizon's
    /// `X-Rate-Limit-Retry-After-Seconds`, `Retry-After` on a vCenter.
    RateLimited,
    /// The connection dropped before the handler ran: no answer, no effect.
    ResetBefore,
    /// The connection dropped after the handler ran: no answer, but the request took effect.
    ResetAfter,
    /// The session the request carries ends just before it is handled (a vCenter REST or
    /// SOAP session; a Horizon access token, whose refresh token still works), so it is
    /// answered 401 (SOAP: `NotAuthenticated`). Only that one: sessions expire one by one, each
    /// at its own time. A request without a session (a login) is handled as it is.
    Expiry,
    /// Handled after [`SLOW`].
    Slow,
}

impl FaultKind {
    pub const ALL: [FaultKind; 6] = [
        FaultKind::Unavailable,
        FaultKind::RateLimited,
        FaultKind::ResetBefore,
        FaultKind::ResetAfter,
        FaultKind::Expiry,
        FaultKind::Slow,
    ];
}

/// Random faults for a lab: see the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chaos {
    pub seed: u64,
    /// The share of requests that fail, in percent (100 and more: every one).
    pub rate_percent: u8,
    pub kinds: Vec<FaultKind>,
}

impl Chaos {
    /// Every kind of fault, at `rate_percent`.
    pub fn all(seed: u64, rate_percent: u8) -> Chaos {
        Chaos { seed, rate_percent, kinds: FaultKind::ALL.to_vec() }
    }
}

/// The lab's chaos: the generator of the chaos set (if any) and the faults injected so far.
#[derive(Debug, Default)]
pub(crate) struct Dice {
    running: Option<(Chaos, fastrand::Rng)>,
    injected: BTreeMap<FaultKind, u64>,
}

impl Dice {
    pub(crate) fn new(chaos: Option<Chaos>) -> Dice {
        let mut dice = Dice::default();
        dice.set(chaos);
        dice
    }

    /// Starts `chaos` afresh from its seed, or stops injecting; the counts stay.
    pub(crate) fn set(&mut self, chaos: Option<Chaos>) {
        self.running = chaos.map(|c| {
            let rng = fastrand::Rng::with_seed(c.seed);
            (c, rng)
        });
    }

    /// The faults injected since the lab started, by kind.
    pub(crate) fn injected(&self) -> BTreeMap<FaultKind, u64> {
        self.injected.clone()
    }

    fn draw(&mut self) -> Option<FaultKind> {
        let (chaos, rng) = self.running.as_mut()?;
        if chaos.kinds.is_empty() || rng.u8(0..100) >= chaos.rate_percent {
            return None;
        }
        let kind = chaos.kinds[rng.usize(..chaos.kinds.len())];
        *self.injected.entry(kind).or_default() += 1;
        Some(kind)
    }
}

pub(crate) fn lock(dice: &Mutex<Dice>) -> MutexGuard<'_, Dice> {
    dice.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the chaos middleware of one endpoint needs.
#[derive(Clone)]
pub(crate) struct ChaosLayer {
    pub(crate) dice: Arc<Mutex<Dice>>,
    pub(crate) lab: Shared,
    /// The endpoint's vCenter (a vCenter endpoint) or site (a Horizon endpoint).
    pub(crate) name: String,
    pub(crate) product: Product,
}

/// Drops the request's connection without an answer, `cut` before the handler runs (no
/// effect) or after (the request took effect): the fault rules and chaos alike.
pub(crate) async fn drop_connection(cut: Cut, request: Request, next: Next) -> Response {
    let conn = request.extensions().get::<ConnectInfo<Conn>>().map(|c| c.0.clone());
    let response = match cut {
        Cut::Before => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        Cut::After => next.run(request).await,
    };
    if let Some(conn) = conn {
        conn.cut();
    }
    // Never written: the connection fails first.
    response
}

/// The middleware that injects the faults drawn, between the lab's own checks and the handler.
pub(crate) async fn inject(State(layer): State<ChaosLayer>, request: Request, next: Next) -> Response {
    let Some(kind) = lock(&layer.dice).draw() else { return next.run(request).await };
    match kind {
        FaultKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response(),
        FaultKind::RateLimited => {
            let header = match layer.product {
                Product::Horizon => "x-rate-limit-retry-after-seconds",
                Product::Vcenter => "retry-after",
            };
            (StatusCode::TOO_MANY_REQUESTS, [(header, RETRY_AFTER_SECONDS.to_string())], "Too Many Requests")
                .into_response()
        }
        FaultKind::ResetBefore => drop_connection(Cut::Before, request, next).await,
        FaultKind::ResetAfter => drop_connection(Cut::After, request, next).await,
        FaultKind::Expiry => {
            expire(&layer, request.headers());
            next.run(request).await
        }
        FaultKind::Slow => {
            tokio::time::sleep(SLOW).await;
            next.run(request).await
        }
    }
}

/// Ends the session `headers` carry: whichever of the session header, the cookies' values and
/// the bearer token names a live session of the endpoint.
fn expire(layer: &ChaosLayer, headers: &HeaderMap) {
    let text = |name| headers.get_all(name).into_iter().filter_map(|v| v.to_str().ok());
    let mut carried: Vec<&str> = text("vmware-api-session-id").collect();
    carried.extend(
        text("cookie").flat_map(|c| c.split(';')).filter_map(|kv| Some(kv.split_once('=')?.1.trim())),
    );
    carried.extend(text("authorization").filter_map(|a| a.strip_prefix("Bearer ")));
    let mut lab = layer.lab.lock();
    match layer.product {
        Product::Vcenter => {
            if let Some(vcenter) = lab.vcenters.get_mut(&layer.name) {
                vcenter.sim.sessions.retain(|s| !carried.contains(&s.as_str()));
            }
        }
        Product::Horizon => {
            if let Some(site) = lab.sites.get_mut(&layer.name) {
                site.horizon.access_tokens.retain(|t, _| !carried.contains(&t.as_str()));
            }
        }
    }
}

/// The connection a request came on, as axum's connect info: [`Conn::cut`] makes its stream
/// fail, and hyper then closes it without writing anything more.
#[derive(Clone, Debug, Default)]
pub(crate) struct Conn {
    cut: Arc<AtomicBool>,
}

impl Conn {
    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }
}

impl Connected<IncomingStream<'_, Listener>> for Conn {
    fn connect_info(stream: IncomingStream<'_, Listener>) -> Conn {
        stream.remote_addr().clone()
    }
}

/// The lab's TCP listener: streams without Nagle's delay (as vCenter's and Horizon's front ends
/// have none: an answer written in parts goes out at once), each one cuttable.
pub(crate) struct Listener(pub(crate) TcpListener);

impl axum::serve::Listener for Listener {
    type Io = Stream;
    type Addr = Conn;

    async fn accept(&mut self) -> (Stream, Conn) {
        let (tcp, _) = axum::serve::Listener::accept(&mut self.0).await;
        let _ = tcp.set_nodelay(true);
        let conn = Conn::default();
        (Stream { tcp, cut: conn.cut.clone() }, conn)
    }

    /// Each accepted connection gets a [`Conn`] of its own; the listener has none to give.
    fn local_addr(&self) -> io::Result<Conn> {
        Ok(Conn::default())
    }
}

/// A TCP stream that fails like a reset connection once cut.
pub(crate) struct Stream {
    tcp: TcpStream,
    cut: Arc<AtomicBool>,
}

impl Stream {
    fn check(&self) -> io::Result<()> {
        match self.cut.load(Ordering::SeqCst) {
            true => Err(io::Error::new(io::ErrorKind::ConnectionReset, "the lab's chaos cut the connection")),
            false => Ok(()),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.check()?;
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_faults_and_the_rate_holds() {
        let draws = |seed| {
            let mut dice = Dice::new(Some(Chaos::all(seed, 10)));
            (0..10_000).map(|_| dice.draw()).collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        assert_ne!(draws(7), draws(8));
        let faults = draws(7).iter().filter(|d| d.is_some()).count();
        assert!((800..1200).contains(&faults), "{faults} faults in 10,000 requests at 10%");
        let mut dice = Dice::new(None);
        assert_eq!(dice.draw(), None);
        assert!(dice.injected().is_empty());
    }
}
