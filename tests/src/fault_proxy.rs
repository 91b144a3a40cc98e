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
//! Scripted answers imitate real AWS behaviour moto lacks (an IAM role not yet
//! assumable, a function still `Pending`, an update already in progress):
//! [`FaultProxy::script`] answers the next few requests matching a
//! [`RequestMatch`] with a canned [`ScriptedResponse`], optionally after
//! forwarding the request so its effect happens anyway, and
//! [`FaultProxy::script_json_override`] relays moto's own JSON answer with some
//! top-level fields replaced. Scripts are checked before the random faults, in
//! the order they were added; a request a script answers draws no fault.
//!
//! Requests to moto's control API (paths under `/moto-api`) are never faulted
//! nor scripted. [`FaultProxy::stats`] and [`FaultProxy::scripted_count`] count
//! what happened; dropping the proxy stops its accept loop and closes every
//! client connection.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{
    AUTHORIZATION, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, EXPECT, HeaderMap, HeaderName,
    HeaderValue,
};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::strict::{StrictAws, StrictRequest, StrictSettings};

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

/// Which requests a script applies to: every field that is set must match.
///
/// Paths are compared without the query string, both as sent and
/// percent-decoded (so a function ARN matches in either spelling).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestMatch {
    /// The HTTP method, compared case-insensitively.
    pub method: Option<String>,
    /// The start of the path.
    pub path_prefix: Option<String>,
    /// The end of the path.
    pub path_suffix: Option<String>,
    /// The operation: equal to the `X-Amz-Target` header or to its part after
    /// the last `.` (awsJson), or to the `Action` parameter of the form body or
    /// the query string (AWS query protocol).
    pub target: Option<String>,
    /// A header the request must carry (any value), e.g. `If-None-Match`.
    pub header: Option<String>,
    /// Text the request body must contain, e.g. `RoleName=my-role`.
    pub body_contains: Option<String>,
}

impl RequestMatch {
    /// A Lambda REST call: `method` on paths starting with `path_prefix`, e.g.
    /// `lambda("GET", "/2015-03-31/functions/f/configuration")`.
    pub fn lambda(method: &str, path_prefix: &str) -> RequestMatch {
        RequestMatch {
            method: Some(method.to_string()),
            path_prefix: Some(path_prefix.to_string()),
            ..RequestMatch::default()
        }
    }

    /// An AWS query (`Action=CreateRole`) or awsJson
    /// (`X-Amz-Target: Logs_20140328.CreateLogGroup`) operation by name.
    pub fn action(action: &str) -> RequestMatch {
        RequestMatch {
            target: Some(action.to_string()),
            ..RequestMatch::default()
        }
    }

    /// The same match, further restricted to requests carrying `header`.
    pub fn with_header(mut self, header: &str) -> RequestMatch {
        self.header = Some(header.to_string());
        self
    }

    /// The same match, further restricted to bodies containing `text`.
    pub fn with_body(mut self, text: &str) -> RequestMatch {
        self.body_contains = Some(text.to_string());
        self
    }

    /// The same match, further restricted to paths ending with `suffix`.
    pub fn with_path_suffix(mut self, suffix: &str) -> RequestMatch {
        self.path_suffix = Some(suffix.to_string());
        self
    }

    fn matches(&self, request: &RequestView<'_>) -> bool {
        if let Some(method) = &self.method
            && !method.eq_ignore_ascii_case(request.method)
        {
            return false;
        }
        if let Some(prefix) = &self.path_prefix
            && !request
                .paths()
                .any(|path| path.starts_with(prefix.as_str()))
        {
            return false;
        }
        if let Some(suffix) = &self.path_suffix
            && !request.paths().any(|path| path.ends_with(suffix.as_str()))
        {
            return false;
        }
        if let Some(header) = &self.header
            && !request.headers.contains_key(header.as_str())
        {
            return false;
        }
        if let Some(text) = &self.body_contains
            && !String::from_utf8_lossy(request.body).contains(text.as_str())
        {
            return false;
        }
        if let Some(target) = &self.target {
            let by_header = request.amz_target.is_some_and(|header| {
                header == target
                    || header
                        .rsplit_once('.')
                        .is_some_and(|(_, operation)| operation == target)
            });
            if !by_header && request.action.as_deref() != Some(target.as_str()) {
                return false;
            }
        }
        true
    }
}

/// A canned answer sent instead of moto's.
///
/// Without `forward_first` the request never reaches moto; with it, the
/// request is forwarded, moto's answer awaited and discarded, and this one sent
/// instead: the change happened, but the client sees this answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptedResponse {
    /// The HTTP status code.
    pub status: u16,
    /// Response headers, in order; `x-amzn-RequestId` is added when missing.
    pub headers: Vec<(String, String)>,
    /// The response body.
    pub body: String,
    /// Forward the request first and discard moto's answer.
    pub forward_first: bool,
}

impl ScriptedResponse {
    /// An answer with the given status, headers and body, not forwarded.
    pub fn new(status: u16, headers: Vec<(String, String)>, body: impl Into<String>) -> Self {
        ScriptedResponse {
            status,
            headers,
            body: body.into(),
            forward_first: false,
        }
    }

    /// A Lambda REST-JSON error, as Lambda spells it:
    /// `lambda_error(409, "ResourceConflictException", "The operation cannot be performed at this time. ...")`.
    pub fn lambda_error(status: u16, error_type: &str, message: &str) -> Self {
        let body = serde_json::json!({ "Type": "User", "message": message }).to_string();
        ScriptedResponse::new(
            status,
            vec![
                ("x-amzn-ErrorType".to_string(), error_type.to_string()),
                ("Content-Type".to_string(), "application/json".to_string()),
            ],
            body,
        )
    }

    /// An awsJson 1.1 error (CloudWatch Logs, ECR, ...): `__type` and `message`.
    pub fn json_error(status: u16, error_type: &str, message: &str) -> Self {
        let body = serde_json::json!({ "__type": error_type, "message": message }).to_string();
        ScriptedResponse::new(
            status,
            vec![
                ("x-amzn-ErrorType".to_string(), error_type.to_string()),
                (
                    "Content-Type".to_string(),
                    "application/x-amz-json-1.1".to_string(),
                ),
            ],
            body,
        )
    }

    /// An AWS query protocol error (IAM, STS) with a `Sender` fault type.
    pub fn query_error(status: u16, code: &str, message: &str) -> Self {
        let body = format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>{}</Code>\
             <Message>{}</Message></Error>\
             <RequestId>fault-proxy</RequestId></ErrorResponse>",
            xml_escape(code),
            xml_escape(message)
        );
        ScriptedResponse::new(
            status,
            vec![("Content-Type".to_string(), "text/xml".to_string())],
            body,
        )
    }

    /// The same answer, sent after forwarding the request to moto.
    pub fn after_forwarding(mut self) -> Self {
        self.forward_first = true;
        self
    }

    /// Panics (in the test that scripts it) unless the status and headers
    /// are valid HTTP.
    fn validate(&self) {
        assert!(
            StatusCode::from_u16(self.status).is_ok(),
            "scripted status {} is not an HTTP status code",
            self.status
        );
        for (name, value) in &self.headers {
            assert!(
                HeaderName::from_bytes(name.as_bytes()).is_ok()
                    && HeaderValue::from_str(value).is_ok(),
                "scripted header {name}: {value} is not a valid HTTP header"
            );
        }
    }

    fn to_response(&self) -> Response<ProxyBody> {
        let mut response = Response::new(full(self.body.clone()));
        *response.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        for (name, value) in &self.headers {
            // Checked by `validate` when the script was added.
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.append(name, value);
            }
        }
        let request_id = HeaderName::from_static("x-amzn-requestid");
        if !headers.contains_key(&request_id) {
            headers.insert(request_id, HeaderValue::from_static("fault-proxy"));
        }
        response
    }
}

/// A running fault-injecting proxy on a loopback port.
///
/// The proxy runs on a thread and runtime of its own, so a test may block
/// its own thread (waiting for the controller binary, say) while the code
/// under test talks through the proxy. Dropping it stops that runtime, which
/// closes every client connection.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl FaultProxy {
    /// Starts a proxy on a free `127.0.0.1` port forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr, rates: FaultRates) -> FaultProxy {
        FaultProxy::launch(upstream, rates, None)
    }

    /// Starts a proxy that also answers as real AWS does where moto does not
    /// (see [`StrictAws`]); faults, when set, are drawn before the strict
    /// rules, as a network between the client and AWS would fail.
    pub async fn start_strict(upstream: SocketAddr, rates: FaultRates) -> FaultProxy {
        let strict = Arc::new(StrictAws::new(upstream, StrictSettings::default()));
        FaultProxy::launch(upstream, rates, Some(strict))
    }

    fn launch(
        upstream: SocketAddr,
        rates: FaultRates,
        strict: Option<Arc<StrictAws>>,
    ) -> FaultProxy {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
            .expect("cannot bind the fault proxy to a loopback port");
        listener
            .set_nonblocking(true)
            .expect("the proxy's listener can be made non-blocking");
        let addr = listener
            .local_addr()
            .expect("bound listener has an address");
        let shared = Arc::new(Shared {
            upstream,
            client: Client::builder(TokioExecutor::new()).build_http(),
            control: Mutex::new(Control::new(rates)),
            strict,
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = Arc::clone(&shared);
        std::thread::Builder::new()
            .name(format!("fault-proxy-{}", addr.port()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("the proxy's runtime starts");
                runtime.block_on(async move {
                    let listener =
                        TcpListener::from_std(listener).expect("the proxy's listener registers");
                    tokio::select! {
                        () = accept_loop(listener, serving) => {}
                        _ = stopped => {}
                    }
                });
            })
            .expect("the proxy's thread starts");
        FaultProxy {
            addr,
            shared,
            stop: Some(stop),
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

    /// The next `times` requests matching `matcher` get `response` instead of
    /// moto's answer.
    pub fn script(&self, matcher: RequestMatch, response: ScriptedResponse, times: usize) {
        response.validate();
        self.add_script(matcher, Answer::Fixed(response), times);
    }

    /// Like [`FaultProxy::script`], but the answer is moto's own: the request
    /// is forwarded and, when moto answers 2xx with a JSON object, the
    /// top-level fields of `overrides` (a JSON object, e.g.
    /// `{"State":"Pending","LastUpdateStatus":"InProgress"}`) replace or add
    /// to its fields; the status and headers are relayed unchanged. Any other
    /// answer (an error, a non-JSON body) is relayed as is, not counted as
    /// scripted, and still uses up one of the `times`.
    pub fn script_json_override(
        &self,
        matcher: RequestMatch,
        overrides: serde_json::Value,
        times: usize,
    ) {
        let serde_json::Value::Object(overrides) = overrides else {
            panic!("script_json_override needs a JSON object, got {overrides}");
        };
        self.add_script(matcher, Answer::JsonOverride(overrides), times);
    }

    /// The matchers of the scripts not yet used up, for a test's failure
    /// message.
    pub fn pending_scripts(&self) -> Vec<RequestMatch> {
        self.shared
            .control()
            .scripts
            .iter()
            .map(|script| script.matcher.clone())
            .collect()
    }

    /// How many scripted answers were sent so far.
    pub fn scripted_count(&self) -> u64 {
        self.shared.control().scripted
    }

    /// The next `times` requests matching `matcher` are forwarded and take
    /// effect, but their answer is lost: the proxy closes the connection
    /// instead, so the client retries a request that already happened.
    pub fn script_drop_after_forwarding(&self, matcher: RequestMatch, times: usize) {
        self.add_script(matcher, Answer::DropAfterForwarding, times);
    }

    /// The strict-AWS layer of this proxy, when it was started with one.
    pub fn strict(&self) -> Option<&StrictAws> {
        self.shared.strict.as_deref()
    }

    fn add_script(&self, matcher: RequestMatch, answer: Answer, times: usize) {
        if times == 0 {
            return;
        }
        self.shared.control().scripts.push(Script {
            matcher,
            answer,
            remaining: times,
        });
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Ending the proxy's runtime ends the accept loop and every connection.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
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

/// What a script answers with.
#[derive(Clone, Debug)]
enum Answer {
    Fixed(ScriptedResponse),
    /// Forward, let the upstream answer, then close the connection unanswered.
    DropAfterForwarding,
    JsonOverride(serde_json::Map<String, serde_json::Value>),
}

struct Script {
    matcher: RequestMatch,
    answer: Answer,
    remaining: usize,
}

/// What a script matcher looks at in a request.
struct RequestView<'a> {
    body: &'a [u8],
    method: &'a str,
    headers: &'a HeaderMap,
    path: &'a str,
    decoded_path: String,
    amz_target: Option<&'a str>,
    action: Option<String>,
}

impl<'a> RequestView<'a> {
    fn new(parts: &'a hyper::http::request::Parts, body: &'a [u8]) -> RequestView<'a> {
        let path = parts.uri.path();
        let form = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| {
                value
                    .to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
        let action = form
            .then(|| form_field(body, "Action"))
            .flatten()
            .or_else(|| form_field(parts.uri.query()?.as_bytes(), "Action"));
        RequestView {
            body,
            method: parts.method.as_str(),
            headers: &parts.headers,
            path,
            decoded_path: percent_decode(path.as_bytes(), false),
            amz_target: parts
                .headers
                .get("x-amz-target")
                .and_then(|value| value.to_str().ok()),
            action,
        }
    }

    fn paths(&self) -> impl Iterator<Item = &str> {
        [self.path, self.decoded_path.as_str()].into_iter()
    }
}

struct Control {
    rates: FaultRates,
    rng: StdRng,
    stats: FaultStats,
    scripts: Vec<Script>,
    scripted: u64,
}

impl Control {
    fn new(rates: FaultRates) -> Control {
        Control {
            rates,
            rng: StdRng::seed_from_u64(rates.seed),
            stats: FaultStats::default(),
            scripts: Vec::new(),
            scripted: 0,
        }
    }

    /// The answer of the first live script matching `request`, using it up.
    fn take_script(&mut self, request: &RequestView<'_>) -> Option<Answer> {
        let index = self
            .scripts
            .iter()
            .position(|script| script.remaining > 0 && script.matcher.matches(request))?;
        let script = &mut self.scripts[index];
        script.remaining -= 1;
        let answer = script.answer.clone();
        if script.remaining == 0 {
            self.scripts.remove(index);
        }
        Some(answer)
    }
}

struct Shared {
    upstream: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    control: Mutex<Control>,
    strict: Option<Arc<StrictAws>>,
}

pub(crate) type ProxyBody = BoxBody<Bytes, hyper::Error>;

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
        let control_api = request.uri().path().starts_with("/moto-api");
        let protocol = Protocol::of(&request);
        let (mut parts, body) = request.into_parts();
        // Read the whole request first, so a dropped connection always means
        // "request sent, no answer" rather than a failed upload.
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return Err(CloseConnection),
        };

        let (script, fault) = if control_api {
            (None, None)
        } else {
            let view = RequestView::new(&parts, &body);
            let mut control = self.control();
            match control.take_script(&view) {
                Some(answer) => (Some(answer), None),
                None => {
                    let Control { rates, rng, .. } = &mut *control;
                    (None, rates.draw(rng))
                }
            }
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
        if let Some(Answer::Fixed(response)) = &script
            && !response.forward_first
        {
            self.control().scripted += 1;
            return Ok(response.to_response());
        }
        let drop_after =
            fault == Some(Fault::DropAfter) || matches!(script, Some(Answer::DropAfterForwarding));

        // The strict layer answers for AWS where moto would be lenient; a
        // refusal is AWS's answer, so a dropped connection still drops it.
        let strict_request = self
            .strict
            .as_ref()
            .map(|_| StrictRequest::new(&parts, &body));
        if let (Some(strict), Some(request)) = (&self.strict, &strict_request)
            && let Some(refusal) = strict.check(request).await
        {
            if drop_after {
                self.control().stats.dropped_after += 1;
                return Err(CloseConnection);
            }
            return Ok(refusal);
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
                if drop_after {
                    self.control().stats.dropped_after += 1;
                    return Err(CloseConnection);
                }
                return Ok(bad_gateway(&error));
            }
        };
        let (mut response_parts, response_body) = response.into_parts();
        // moto answers every request with `Connection: close`; relaying it
        // would close every client connection. Keep-alive is per hop.
        remove_hop_by_hop(&mut response_parts.headers);
        let response_body = match (&self.strict, &strict_request) {
            (Some(strict), Some(request)) => {
                let Ok(collected) = response_body.collect().await else {
                    return Err(CloseConnection);
                };
                let observed = strict
                    .observe(request, &mut response_parts, collected.to_bytes())
                    .await;
                full(observed)
            }
            _ => response_body.boxed(),
        };
        let response = Response::from_parts(response_parts, response_body);

        if drop_after {
            // Let the upstream finish its answer, then hang up on the client.
            let _ = response.into_body().collect().await;
            self.control().stats.dropped_after += 1;
            if fault != Some(Fault::DropAfter) {
                self.control().scripted += 1;
            }
            return Err(CloseConnection);
        }
        match script {
            Some(Answer::Fixed(scripted)) => {
                // Let the change happen upstream, then answer as scripted.
                let _ = response.into_body().collect().await;
                self.control().scripted += 1;
                return Ok(scripted.to_response());
            }
            Some(Answer::JsonOverride(overrides)) => {
                return Ok(self.override_json(response, &overrides).await);
            }
            Some(Answer::DropAfterForwarding) | None => {}
        }
        self.control().stats.forwarded += 1;
        Ok(response)
    }
}

impl Shared {
    /// Relays moto's `response` with the top-level fields of `overrides`
    /// merged in, when it is a 2xx JSON object; unchanged otherwise.
    async fn override_json(
        &self,
        response: Response<ProxyBody>,
        overrides: &serde_json::Map<String, serde_json::Value>,
    ) -> Response<ProxyBody> {
        let (mut parts, body) = response.into_parts();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) => {
                let mut response = Response::new(full(format!(
                    "fault proxy: upstream answer failed: {error}"
                )));
                *response.status_mut() = StatusCode::BAD_GATEWAY;
                return response;
            }
        };
        let parsed = if parts.status.is_success() {
            serde_json::from_slice::<serde_json::Value>(&body).ok()
        } else {
            None
        };
        let body = match parsed {
            Some(serde_json::Value::Object(mut object)) => {
                for (key, value) in overrides {
                    object.insert(key.clone(), value.clone());
                }
                self.control().scripted += 1;
                // The body changes length; hyper sets the new one.
                parts.headers.remove(CONTENT_LENGTH);
                Bytes::from(serde_json::Value::Object(object).to_string())
            }
            _ => {
                self.control().stats.forwarded += 1;
                body
            }
        };
        Response::from_parts(parts, full(body))
    }
}

/// The value of the first `name=value` pair named `name` in a
/// `application/x-www-form-urlencoded` string, decoded.
pub(crate) fn form_field(form: &[u8], name: &str) -> Option<String> {
    form.split(|&byte| byte == b'&').find_map(|pair| {
        let (key, value) = match pair.iter().position(|&byte| byte == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &[][..]),
        };
        (percent_decode(key, true) == name).then(|| percent_decode(value, true))
    })
}

/// Decodes `%XX` escapes (and `+` as a space in forms); invalid escapes and
/// bytes stay as they are.
pub(crate) fn percent_decode(input: &[u8], plus_is_space: bool) -> String {
    let hex = |byte: u8| (byte as char).to_digit(16);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let byte = input[i];
        if byte == b'%'
            && let (Some(high), Some(low)) = (
                input.get(i + 1).copied().and_then(hex),
                input.get(i + 2).copied().and_then(hex),
            )
        {
            // Two hex digits make at most 0xff.
            out.push((high * 16 + low) as u8);
            i += 3;
            continue;
        }
        out.push(if plus_is_space && byte == b'+' {
            b' '
        } else {
            byte
        });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
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
    /// API Gateway's REST-JSON (error type in `x-amzn-ErrorType`).
    ApiGatewayRestJson,
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
        let service = signing_service(request);
        if service.as_deref() == Some("apigateway") {
            return Protocol::ApiGatewayRestJson;
        }
        let lambda = match service {
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
            Protocol::ApiGatewayRestJson => error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "application/json",
                Some("TooManyRequestsException"),
                r#"{"message":"Too Many Requests"}"#,
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
            Protocol::ApiGatewayRestJson => error_response(
                status,
                "application/json",
                Some("InternalFailure"),
                r#"{"message":"Internal server error"}"#,
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
    credential_scope(request.headers())
        .get(3)
        .map(|service| service.to_ascii_lowercase())
}

/// The parts of a SigV4 `Authorization` header's credential,
/// `[access key, date, region, service, "aws4_request"]`; empty when unsigned.
pub(crate) fn credential_scope(headers: &HeaderMap) -> Vec<String> {
    headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once("Credential="))
        .and_then(|(_, credential)| credential.split([',', ' ']).next())
        .map(|scope| scope.split('/').map(str::to_string).collect())
        .unwrap_or_default()
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

pub(crate) fn full(body: impl Into<Bytes>) -> ProxyBody {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed()
}
