//! A client of Panther's GraphQL data-lake API.
//!
//! The protocol: `executeDataLakeQuery` submits SQL and returns a query id; then
//! `dataLakeQuery(id)` is polled, with exponential backoff, until its `status` is
//! `succeeded` (or `failed` / `cancelled`); the rows come as `results.edges[].node`, a
//! page at a time, and `pageInfo { endCursor hasNextPage }` pages through them. Every
//! request carries the `X-API-Key` header. The whole exchange has a deadline.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value as Json, json};
use std::time::{Duration, Instant};

const SUBMIT: &str = "mutation ExecuteDataLakeQuery($input: ExecuteDataLakeQueryInput!) { executeDataLakeQuery(input: $input) { id } }";
const POLL: &str = "query DataLakeQuery($id: ID!, $cursor: String) { dataLakeQuery(id: $id) { status message results(input: { cursor: $cursor }) { edges { node } pageInfo { endCursor hasNextPage } } } }";

/// Errors talking to Panther.
#[derive(Debug, thiserror::Error)]
pub enum PantherError {
    /// Transport failure.
    #[error("request to Panther failed: {0}")]
    Http(String),
    /// A non-200 answer.
    #[error("Panther answered HTTP {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Start of the body.
        body: String,
    },
    /// GraphQL errors or an unexpected answer.
    #[error("Panther GraphQL error: {0}")]
    GraphQl(String),
    /// The query ended as `failed` or `cancelled`.
    #[error("Panther query {id} {status}: {message}")]
    QueryFailed {
        /// Query id.
        id: String,
        /// `failed` or `cancelled`.
        status: String,
        /// Panther's message.
        message: String,
    },
    /// The deadline passed.
    #[error("Panther query did not finish within {0:?}")]
    Timeout(Duration),
}

/// Connection and timing settings. `Debug` never shows the token.
#[derive(Clone)]
pub struct PantherConfig {
    /// The GraphQL endpoint, e.g. `https://api.<tenant>.runpanther.net/public/graphql`.
    pub url: String,
    /// The API token (sent as `X-API-Key`).
    pub token: String,
    /// First wait between polls.
    pub initial_backoff: Duration,
    /// Longest wait between polls.
    pub max_backoff: Duration,
    /// Bound on the whole exchange (submit, polls and pages).
    pub deadline: Duration,
}

impl std::fmt::Debug for PantherConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PantherConfig")
            .field("url", &self.url)
            .field("token", &"<redacted>")
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// The old system's training query: Config events of the last `days` days.
pub fn default_sql(days: u32) -> String {
    format!(
        "SELECT * FROM panther_logs.public.aws_cloudtrail WHERE eventSource = 'config.amazonaws.com' AND p_occurs_since('{days} days')"
    )
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The client.
pub struct Panther {
    config: PantherConfig,
    client: HttpsClient,
}

impl Panther {
    /// A client for `config` (HTTPS with the system's roots, or plain HTTP).
    pub fn new(config: PantherConfig) -> Result<Panther, PantherError> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| PantherError::Http(format!("loading TLS roots: {e}")))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Panther {
            config,
            client: Client::builder(TokioExecutor::new()).build(https),
        })
    }

    async fn call(
        &self,
        query: &str,
        variables: Json,
        deadline: Instant,
    ) -> Result<Json, PantherError> {
        let body =
            serde_json::to_vec(&json!({"query": query, "variables": variables})).expect("JSON");
        let req = hyper::Request::post(&self.config.url)
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .header("x-api-key", &self.config.token)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| PantherError::Http(e.to_string()))?;
        let left = deadline.saturating_duration_since(Instant::now());
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| PantherError::Http(anomaly::store::error_chain(&e)))?;
            let status = resp.status().as_u16();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| PantherError::Http(e.to_string()))?
                .to_bytes();
            Ok::<_, PantherError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(left, exchange)
            .await
            .map_err(|_| PantherError::Timeout(self.config.deadline))??;
        if status != 200 {
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
            return Err(PantherError::Status { status, body: text });
        }
        let v: Json = serde_json::from_slice(&bytes)
            .map_err(|e| PantherError::GraphQl(format!("answer is not JSON: {e}")))?;
        if let Some(errors) = v
            .get("errors")
            .and_then(Json::as_array)
            .filter(|e| !e.is_empty())
        {
            let msgs: Vec<String> = errors
                .iter()
                .map(|e| {
                    e.get("message")
                        .and_then(Json::as_str)
                        .unwrap_or("unknown error")
                        .to_string()
                })
                .collect();
            return Err(PantherError::GraphQl(msgs.join("; ")));
        }
        v.get("data")
            .cloned()
            .ok_or_else(|| PantherError::GraphQl("answer has no data".into()))
    }

    /// Runs `sql` and returns every row, paging through the results.
    pub async fn query(&self, sql: &str) -> Result<Vec<Json>, PantherError> {
        let deadline = Instant::now() + self.config.deadline;
        let data = self
            .call(SUBMIT, json!({"input": {"sql": sql}}), deadline)
            .await?;
        let id = data
            .pointer("/executeDataLakeQuery/id")
            .and_then(Json::as_str)
            .ok_or_else(|| PantherError::GraphQl("executeDataLakeQuery returned no id".into()))?
            .to_string();
        tracing::info!(%id, "Panther query submitted");
        let mut backoff = self.config.initial_backoff;
        let mut rows = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0usize;
        loop {
            let data = self
                .call(POLL, json!({"id": id, "cursor": cursor}), deadline)
                .await?;
            let q = data
                .get("dataLakeQuery")
                .filter(|q| q.is_object())
                .ok_or_else(|| PantherError::GraphQl(format!("no dataLakeQuery for id {id}")))?;
            let status = q
                .get("status")
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_ascii_lowercase();
            match status.as_str() {
                "succeeded" => {
                    let results = q.get("results").ok_or_else(|| {
                        PantherError::GraphQl("a succeeded query has no results".into())
                    })?;
                    if let Some(edges) = results.get("edges").and_then(Json::as_array) {
                        for edge in edges {
                            match edge.get("node") {
                                Some(Json::String(s)) => {
                                    rows.push(serde_json::from_str(s).unwrap_or(Json::Null))
                                }
                                Some(node) => rows.push(node.clone()),
                                None => {}
                            }
                        }
                    }
                    pages += 1;
                    let info = results.get("pageInfo");
                    let more = info
                        .and_then(|i| i.get("hasNextPage"))
                        .and_then(Json::as_bool)
                        .unwrap_or(false);
                    if !more {
                        tracing::info!(%id, pages, rows = rows.len(), "Panther query read");
                        return Ok(rows);
                    }
                    let next = info
                        .and_then(|i| i.get("endCursor"))
                        .and_then(Json::as_str)
                        .map(str::to_string);
                    if next.is_none() || next == cursor {
                        return Err(PantherError::GraphQl(
                            "hasNextPage is true but endCursor is missing or unchanged".into(),
                        ));
                    }
                    cursor = next;
                }
                "failed" | "cancelled" => {
                    let message = q
                        .get("message")
                        .and_then(Json::as_str)
                        .unwrap_or("")
                        .to_string();
                    return Err(PantherError::QueryFailed {
                        id,
                        status,
                        message,
                    });
                }
                _ => {
                    if Instant::now() + backoff > deadline {
                        return Err(PantherError::Timeout(self.config.deadline));
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.config.max_backoff);
                }
            }
        }
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let config = PantherConfig {
            url: "https://api.example.runpanther.net/public/graphql".into(),
            token: "pnthr-secret-token-0123".into(),
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
            deadline: Duration::from_secs(1),
        };
        let shown = format!("{config:?} {config:#?}");
        assert!(!shown.contains("pnthr-secret-token-0123"), "{shown}");
        assert!(shown.contains("<redacted>"));
        let settings = crate::PantherSettings {
            url: None,
            secret_arn: None,
            token: Some("pnthr-secret-token-0123".into()),
            sql: "SELECT 1".into(),
            deadline: Duration::from_secs(1),
            initial_backoff: Duration::from_millis(1),
        };
        let shown = format!("{settings:?} {settings:#?}");
        assert!(!shown.contains("pnthr-secret-token-0123"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }
}
