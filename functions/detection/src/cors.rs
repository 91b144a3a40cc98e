//! CORS for the answers and the preflight.
//!
//! The allowed origins come from `CORS_ALLOW_ORIGINS` (comma-separated, `*`
//! for any), which the controller sets when the API allows CORS. Without the
//! variable no CORS header is ever sent and `OPTIONS` is not a route.
//!
//! `Access-Control-Allow-Origin` holds exactly one origin or `*` (a list is
//! invalid, and browsers refuse it). With several allowed origins the function
//! itself answers the preflight (`OPTIONS`, 204) and echoes the request's
//! `Origin` only when it is listed, with `Vary: Origin` so caches keep the
//! answers apart; an unlisted origin gets no CORS header at all.

/// Methods a preflight may ask for, per route.
const HEALTH_METHODS: &str = "GET, OPTIONS";
const DETECT_METHODS: &str = "POST, OPTIONS";
/// Request headers a browser may send: API Gateway's usual set (the API key
/// header included).
pub const ALLOW_HEADERS: &str =
    "Content-Type, X-Api-Key, Authorization, X-Amz-Date, X-Amz-Security-Token";
/// How long a browser may cache a preflight answer, in seconds.
pub const MAX_AGE: &str = "600";

/// The CORS configuration of the function.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cors {
    origins: Vec<String>,
}

impl Cors {
    /// From a comma-separated list (`*` for any origin; empty for no CORS).
    pub fn from_list(list: &str) -> Cors {
        Cors {
            origins: list
                .split(',')
                .map(str::trim)
                .filter(|origin| !origin.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }

    /// From `CORS_ALLOW_ORIGINS`.
    pub fn from_env() -> Cors {
        Cors::from_list(&std::env::var("CORS_ALLOW_ORIGINS").unwrap_or_default())
    }

    /// Whether CORS is configured at all.
    pub fn enabled(&self) -> bool {
        !self.origins.is_empty()
    }

    fn any_origin(&self) -> bool {
        self.origins.iter().any(|origin| origin == "*")
    }

    /// The `Access-Control-Allow-Origin` value for a request from `origin`:
    /// `*` when any origin is allowed, the origin itself when it is listed,
    /// nothing otherwise.
    pub fn allow_origin(&self, origin: Option<&str>) -> Option<String> {
        if self.any_origin() {
            return Some("*".to_string());
        }
        let origin = origin?;
        self.origins
            .iter()
            .any(|allowed| allowed == origin)
            .then(|| origin.to_string())
    }

    /// The CORS headers of an ordinary answer to a request from `origin`.
    pub fn headers(&self, origin: Option<&str>) -> Vec<(&'static str, String)> {
        let mut headers = Vec::new();
        if let Some(allow) = self.allow_origin(origin) {
            headers.push(("access-control-allow-origin", allow));
        }
        // The answer depends on the Origin whenever specific origins are listed.
        if self.enabled() && !self.any_origin() {
            headers.push(("vary", "Origin".to_string()));
        }
        headers
    }

    /// The headers of a preflight answer for `path` (a known route) from
    /// `origin`: empty of CORS headers (but `Vary`) when the origin is not
    /// allowed, so the browser stops there.
    pub fn preflight_headers(
        &self,
        path: &str,
        origin: Option<&str>,
    ) -> Vec<(&'static str, String)> {
        let mut headers = self.headers(origin);
        if headers
            .iter()
            .any(|(name, _)| *name == "access-control-allow-origin")
        {
            let methods = if path == "/health" {
                HEALTH_METHODS
            } else {
                DETECT_METHODS
            };
            headers.push(("access-control-allow-methods", methods.to_string()));
            headers.push(("access-control-allow-headers", ALLOW_HEADERS.to_string()));
            headers.push(("access-control-max-age", MAX_AGE.to_string()));
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value<'a>(headers: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn only_listed_origins_are_echoed_one_at_a_time() {
        let cors = Cors::from_list("https://siem.example.com, https://soc.example.com");
        assert_eq!(
            cors.allow_origin(Some("https://soc.example.com"))
                .as_deref(),
            Some("https://soc.example.com")
        );
        assert_eq!(cors.allow_origin(Some("https://evil.example.com")), None);
        assert_eq!(cors.allow_origin(None), None);
        let headers = cors.headers(Some("https://siem.example.com"));
        let allow = value(&headers, "access-control-allow-origin").unwrap();
        assert!(!allow.contains(','), "one origin, never a list: {allow}");
        assert_eq!(value(&headers, "vary"), Some("Origin"));
        let headers = cors.headers(Some("https://evil.example.com"));
        assert!(
            headers
                .iter()
                .all(|(n, _)| !n.starts_with("access-control-")),
            "{headers:?}"
        );
    }

    #[test]
    fn any_origin_and_none() {
        let any = Cors::from_list("*");
        assert_eq!(
            any.allow_origin(Some("https://any.example.com")).as_deref(),
            Some("*")
        );
        let none = Cors::from_list("");
        assert!(!none.enabled());
        assert!(none.headers(Some("https://siem.example.com")).is_empty());
    }

    #[test]
    fn preflight_names_the_route_methods_and_headers() {
        let cors = Cors::from_list("https://siem.example.com,https://soc.example.com");
        let headers = cors.preflight_headers("/detect", Some("https://soc.example.com"));
        assert_eq!(
            value(&headers, "access-control-allow-origin"),
            Some("https://soc.example.com")
        );
        assert_eq!(
            value(&headers, "access-control-allow-methods"),
            Some("POST, OPTIONS")
        );
        assert!(
            value(&headers, "access-control-allow-headers")
                .unwrap()
                .contains("Content-Type")
        );
        let headers = cors.preflight_headers("/health", Some("https://siem.example.com"));
        assert_eq!(
            value(&headers, "access-control-allow-methods"),
            Some("GET, OPTIONS")
        );
        let headers = cors.preflight_headers("/detect", Some("https://evil.example.com"));
        assert_eq!(headers, vec![("vary", "Origin".to_string())]);
    }
}
