//! A fault-injecting HTTP/1.1 proxy that sits between an AWS SDK client and
//! the local moto server.
//!
//! Point the SDK's `endpoint_url` at [`FaultProxy::endpoint_url`]: every request
//! is forwarded to the upstream server and its response relayed back, both
//! unchanged but for the per-connection headers (`Connection` and the like),
//! which a proxy must not pass on. At the rates given in [`FaultRates`], drawn
//! from a seeded random number generator, the proxy instead
//!
//! * answers with a throttling error in the protocol the request speaks
//!   (awsJson, AWS query, Lambda REST-JSON or S3 REST-XML), without forwarding;
//! * answers with an HTTP 500 internal error in that protocol, without forwarding;
//! * closes the client connection without forwarding and without answering;
//! * forwards the request, waits for the upstream response, then closes the
//!   client connection without answering, so that the client retries a request
//!   whose effect already happened.
//!
//! Requests to moto's control API (paths under `/moto-api`) are never faulted.
//! [`FaultProxy::stats`] counts what happened; dropping the proxy stops its
//! accept loop and closes every client connection.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{
    AUTHORIZATION, CONNECTION, CONTENT_TYPE, EXPECT, HeaderMap, HeaderName, HeaderValue,
};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// The probability of each kind of fault per request, and the RNG seed.
///
/// Each rate is a probability in `[0, 1]`; their sum should not exceed 1.
/// For every request the proxy draws one number and picks at most one fault,
/// in the order throttle, server error, drop before, drop after.
#[derive(Clone, Copy, Debug, Default)]
pub struct FaultRates {
    /// Answer with a throttling error without forwarding.
    pub throttle: f64,
    /// Answer with an HTTP 500 internal error without forwarding.
    pub server_error: f64,
    /// Close the connection without forwarding and without answering.
    pub drop_before: f64,
    /// Forward, then close the connection without answering.
    pub drop_after: f64,
    /// Seed of the random number generator that picks the faults.
    pub seed: u64,
}

impl FaultRates {
    /// Spreads `rate` evenly over the four kinds of fault.
    pub fn uniform(rate: f64, seed: u64) -> FaultRates {
        let each = rate / 4.0;
        FaultRates {
            throttle: each,
            server_error: each,
            drop_before: each,
            drop_after: each,
            seed,
        }
    }

    fn draw(&self, rng: &mut StdRng) -> Option<Fault> {
        let x: f64 = rng.r#gen();
        let mut edge = 0.0;
        for (rate, fault) in [
            (self.throttle, Fault::Throttle),
            (self.server_error, Fault::ServerError),
            (self.drop_before, Fault::DropBefore),
            (self.drop_after, Fault::DropAfter),
        ] {
            edge += rate.max(0.0);
            if x < edge {
                return Some(fault);
            }
        }
        None
    }
}

/// What the proxy did so far, one counter per outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Requests forwarded upstream whose response was relayed to the client.
    pub forwarded: u64,
    /// Requests answered with a throttling error.
    pub throttled: u64,
    /// Requests answered with an internal server error.
    pub server_errors: u64,
    /// Requests whose connection was closed before forwarding.
    pub dropped_before: u64,
    /// Requests forwarded whose connection was closed instead of answering.
    pub dropped_after: u64,
}

/// A running fault-injecting proxy on a loopback port.
///
/// Dropping it stops the accept loop and closes all client connections.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_loop: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy on a free `127.0.0.1` port forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr, rates: FaultRates) -> FaultProxy {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("cannot bind the fault proxy to a loopback port");
        let addr = listener
            .local_addr()
            .expect("bound listener has an address");
        let shared = Arc::new(Shared {
            upstream,
            client: Client::builder(TokioExecutor::new()).build_http(),
            control: Mutex::new(Control::new(rates)),
        });
        let accept_loop = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        FaultProxy {
            addr,
            shared,
            accept_loop,
        }
    }

    /// The `http://127.0.0.1:PORT` endpoint to give the SDK.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address the proxy listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The counters so far.
    pub fn stats(&self) -> FaultStats {
        self.shared.control().stats
    }

    /// Replaces the rates and reseeds the generator with `rates.seed`; takes
    /// effect for the next request.
    pub fn set_rates(&self, rates: FaultRates) {
        let mut control = self.shared.control();
        control.rates = rates;
        control.rng = StdRng::seed_from_u64(rates.seed);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // The accept loop owns the connection tasks: aborting it aborts them.
        self.accept_loop.abort();
    }
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Throttle,
    ServerError,
    DropBefore,
    DropAfter,
}

struct Control {
    rates: FaultRates,
    rng: StdRng,
    stats: FaultStats,
}

impl Control {
    fn new(rates: FaultRates) -> Control {
        Control {
            rates,
            rng: StdRng::seed_from_u64(rates.seed),
            stats: FaultStats::default(),
        }
    }
}

struct Shared {
    upstream: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    control: Mutex<Control>,
}

type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// Returned by the service to make hyper close the client connection without
/// writing a response.
#[derive(Debug)]
struct CloseConnection;

impl fmt::Display for CloseConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("fault proxy closes the connection without answering")
    }
}

impl std::error::Error for CloseConnection {}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else {
                    // Out of descriptors or similar: back off instead of spinning.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                connections.spawn(serve_connection(stream, Arc::clone(&shared)));
            }
            Some(_finished) = connections.join_next() => {}
        }
    }
}

async fn serve_connection(stream: tokio::net::TcpStream, shared: Arc<Shared>) {
    let service = service_fn(move |request| {
        let shared = Arc::clone(&shared);
        async move { shared.handle(request).await }
    });
    // An error here is a closed or faulted connection: nothing to report.
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

impl Shared {
    fn control(&self) -> MutexGuard<'_, Control> {
        self.control
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    async fn handle(
        &self,
        request: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, CloseConnection> {
        let fault = if request.uri().path().starts_with("/moto-api") {
            None
        } else {
            let mut control = self.control();
            let Control { rates, rng, .. } = &mut *control;
            rates.draw(rng)
        };
        let protocol = Protocol::of(&request);
        let (mut parts, body) = request.into_parts();
        // Read the whole request first, so a dropped connection always means
        // "request sent, no answer" rather than a failed upload.
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return Err(CloseConnection),
        };

        match fault {
            Some(Fault::Throttle) => {
                self.control().stats.throttled += 1;
                return Ok(protocol.throttle());
            }
            Some(Fault::ServerError) => {
                self.control().stats.server_errors += 1;
                return Ok(protocol.server_error());
            }
            Some(Fault::DropBefore) => {
                self.control().stats.dropped_before += 1;
                return Err(CloseConnection);
            }
            Some(Fault::DropAfter) | None => {}
        }

        let path_and_query = parts
            .uri
            .path_and_query()
            .map_or("/", |path_and_query| path_and_query.as_str());
        parts.uri = Uri::try_from(format!("http://{}{path_and_query}", self.upstream))
            .map_err(|_| CloseConnection)?;
        // The body is already complete: the client's 100-continue handshake
        // with the proxy is over and must not be replayed upstream.
        parts.headers.remove(EXPECT);
        remove_hop_by_hop(&mut parts.headers);
        let upstream_request = Request::from_parts(parts, Full::new(body));

        let response = match self.client.request(upstream_request).await {
            Ok(response) => response,
            Err(error) => {
                if fault == Some(Fault::DropAfter) {
                    self.control().stats.dropped_after += 1;
                    return Err(CloseConnection);
                }
                return Ok(bad_gateway(&error));
            }
        };

        if fault == Some(Fault::DropAfter) {
            // Let the upstream finish its answer, then hang up on the client.
            let _ = response.into_body().collect().await;
            self.control().stats.dropped_after += 1;
            return Err(CloseConnection);
        }
        self.control().stats.forwarded += 1;
        let (mut parts, body) = response.into_parts();
        // moto answers every request with `Connection: close`; relaying it
        // would close every client connection. Keep-alive is per hop.
        remove_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(parts, body.boxed()))
    }
}

/// The wire protocol of a request, which decides how a fault is spelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    /// awsJson 1.0/1.1 (CloudWatch Logs, ECR, ...).
    AwsJson,
    /// The AWS query protocol (IAM, STS).
    Query,
    /// Lambda's REST-JSON.
    LambdaRestJson,
    /// S3's REST-XML.
    S3RestXml,
}

impl Protocol {
    fn of<B>(request: &Request<B>) -> Protocol {
        let headers = request.headers();
        let content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if content_type.starts_with("application/x-amz-json")
            || headers.contains_key("x-amz-target")
        {
            return Protocol::AwsJson;
        }
        if content_type.starts_with("application/x-www-form-urlencoded") {
            return Protocol::Query;
        }
        // The signing scope names the service; fall back on Lambda's
        // date-versioned paths (`/2015-03-31/functions`) for unsigned requests.
        let lambda = match signing_service(request) {
            Some(service) => service == "lambda",
            None => request.uri().path().starts_with("/20"),
        };
        if lambda {
            Protocol::LambdaRestJson
        } else {
            Protocol::S3RestXml
        }
    }

    fn throttle(self) -> Response<ProxyBody> {
        match self {
            Protocol::AwsJson => error_response(
                StatusCode::BAD_REQUEST,
                "application/x-amz-json-1.1",
                Some("ThrottlingException"),
                r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
            ),
            Protocol::Query => error_response(
                StatusCode::BAD_REQUEST,
                "text/xml",
                None,
                "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>\
                 <Message>Rate exceeded</Message></Error>\
                 <RequestId>fault-proxy</RequestId></ErrorResponse>",
            ),
            Protocol::LambdaRestJson => error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "application/json",
                Some("TooManyRequestsException"),
                r#"{"message":"Rate exceeded","Type":"User"}"#,
            ),
            Protocol::S3RestXml => error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "application/xml",
                None,
                "<Error><Code>SlowDown</Code>\
                 <Message>Please reduce your request rate.</Message></Error>",
            ),
        }
    }

    fn server_error(self) -> Response<ProxyBody> {
        let status = StatusCode::INTERNAL_SERVER_ERROR;
        match self {
            Protocol::AwsJson => error_response(
                status,
                "application/x-amz-json-1.1",
                Some("InternalFailure"),
                r#"{"__type":"InternalFailure","message":"Internal failure"}"#,
            ),
            Protocol::Query => error_response(
                status,
                "text/xml",
                None,
                "<ErrorResponse><Error><Type>Receiver</Type><Code>InternalFailure</Code>\
                 <Message>Internal failure</Message></Error>\
                 <RequestId>fault-proxy</RequestId></ErrorResponse>",
            ),
            Protocol::LambdaRestJson => error_response(
                status,
                "application/json",
                Some("ServiceException"),
                r#"{"message":"Internal failure","Type":"Service"}"#,
            ),
            Protocol::S3RestXml => error_response(
                status,
                "application/xml",
                None,
                "<Error><Code>InternalError</Code>\
                 <Message>We encountered an internal error. Please try again.</Message></Error>",
            ),
        }
    }
}

/// Removes the headers that describe one connection rather than the message
/// (RFC 9110 section 7.6.1): they must not cross a proxy.
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(name);
    }
}

/// The service name in a SigV4 `Authorization` header's credential scope
/// (`Credential=AKID/DATE/REGION/SERVICE/aws4_request`).
fn signing_service<B>(request: &Request<B>) -> Option<String> {
    let authorization = request.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (_, credential) = authorization.split_once("Credential=")?;
    let scope = credential.split([',', ' ']).next()?;
    scope.split('/').nth(3).map(str::to_ascii_lowercase)
}

fn error_response(
    status: StatusCode,
    content_type: &'static str,
    error_type: Option<&'static str>,
    body: &'static str,
) -> Response<ProxyBody> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        HeaderName::from_static("x-amzn-requestid"),
        HeaderValue::from_static("fault-proxy"),
    );
    if let Some(error_type) = error_type {
        headers.insert(
            HeaderName::from_static("x-amzn-errortype"),
            HeaderValue::from_static(error_type),
        );
    }
    response
}

fn bad_gateway(error: &hyper_util::client::legacy::Error) -> Response<ProxyBody> {
    let mut response = Response::new(full(format!("fault proxy: upstream failed: {error}")));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

fn full(body: impl Into<Bytes>) -> ProxyBody {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed()
}
