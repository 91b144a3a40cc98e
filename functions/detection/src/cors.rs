//! CORS for the answers: the origins allowed come from `CORS_ALLOW_ORIGINS`
//! (comma-separated, `*` for any), which the controller sets when the API
//! allows CORS. With the variable unset, no CORS header is sent.

use std::sync::OnceLock;

/// The allowed origins, read once from the environment.
fn allowed() -> &'static [String] {
    static ALLOWED: OnceLock<Vec<String>> = OnceLock::new();
    ALLOWED.get_or_init(|| parse(&std::env::var("CORS_ALLOW_ORIGINS").unwrap_or_default()))
}

fn parse(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|origin| !origin.is_empty())
        .map(str::to_string)
        .collect()
}

/// The `Access-Control-Allow-Origin` value for a request from `origin`:
/// `*` when any origin is allowed, the origin itself when it is listed,
/// nothing otherwise.
pub fn allow_origin_for(allowed: &[String], origin: Option<&str>) -> Option<String> {
    if allowed.iter().any(|allowed| allowed == "*") {
        return Some("*".to_string());
    }
    let origin = origin?;
    allowed
        .iter()
        .any(|allowed| allowed == origin)
        .then(|| origin.to_string())
}

/// The header value for this process's configuration.
pub fn allow_origin(origin: Option<&str>) -> Option<String> {
    allow_origin_for(allowed(), origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_origins_are_echoed() {
        let listed = parse("https://siem.example.com, https://soc.example.com");
        assert_eq!(
            allow_origin_for(&listed, Some("https://soc.example.com")).as_deref(),
            Some("https://soc.example.com")
        );
        assert_eq!(
            allow_origin_for(&listed, Some("https://evil.example.com")),
            None
        );
        assert_eq!(allow_origin_for(&listed, None), None);
        assert_eq!(
            allow_origin_for(&parse("*"), Some("https://any.example.com")).as_deref(),
            Some("*")
        );
        assert_eq!(
            allow_origin_for(&parse(""), Some("https://siem.example.com")),
            None
        );
    }
}
