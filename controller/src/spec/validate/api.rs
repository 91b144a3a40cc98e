//! `[api]`: the REST API's name, stage, throttling, CORS and routes.

use std::collections::BTreeMap;

use super::{Checker, check_function_reference};
use crate::spec::raw::RawApi;
use crate::spec::{ApiSpec, RouteSpec};

const HTTP_METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "ANY",
];

pub(super) fn build_api(
    deployment: &str,
    raw: &RawApi,
    functions: &[&str],
    checker: &mut Checker,
) -> ApiSpec {
    let name = raw
        .name
        .clone()
        .unwrap_or_else(|| format!("{deployment}-api"));
    if name.is_empty() || name.len() > 1024 {
        checker.problem(&["api", "name"], "an API name is 1 to 1024 characters");
    }
    let stage = raw.stage.clone().unwrap_or_else(|| "prod".to_string());
    if stage.is_empty()
        || stage.len() > 128
        || !stage
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        checker.problem(
            &["api", "stage"],
            format!("{stage:?} is not a stage name (1-128 letters, digits, '-' and '_')"),
        );
    }
    let throttle_rate_limit = raw.throttle_rate_limit.unwrap_or(100.0);
    if !(throttle_rate_limit > 0.0 && throttle_rate_limit <= 10000.0) {
        checker.problem(
            &["api", "throttle_rate_limit"],
            format!("{throttle_rate_limit} is out of range: it must be above 0 and at most 10000 requests per second"),
        );
    }
    let throttle_burst_limit = checker.ranged(
        &["api", "throttle_burst_limit"],
        raw.throttle_burst_limit,
        200,
        0,
        5000,
        " requests",
    );
    let cors_allow_origins = raw.cors_allow_origins.clone().unwrap_or_default();
    for (index, origin) in cors_allow_origins.iter().enumerate() {
        let ok = origin == "*" || origin.starts_with("https://") || origin.starts_with("http://");
        if !ok || origin.contains(char::is_whitespace) || origin.contains(',') {
            checker.problem(
                &["api", "cors_allow_origins", &index.to_string()],
                format!("{origin:?} is not an origin (\"*\" or a http(s):// URL)"),
            );
        }
    }
    if raw.routes.is_empty() {
        checker.problem(
            &["api", "routes"],
            "an API needs at least one route ([[api.routes]] with method, path, function)",
        );
    }
    let mut routes = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut parameters = BTreeMap::new();
    for (index, route) in raw.routes.iter().enumerate() {
        let index_text = index.to_string();
        let path_of = |field: &str| {
            vec![
                "api".to_string(),
                "routes".to_string(),
                index_text.clone(),
                field.to_string(),
            ]
        };
        let method = route.method.to_ascii_uppercase();
        if !HTTP_METHODS.contains(&method.as_str()) {
            let path = path_of("method");
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            checker.problem(
                &path,
                format!(
                    "{:?} is not an HTTP method ({})",
                    route.method,
                    HTTP_METHODS.join(", ")
                ),
            );
        }
        if let Err(reason) = check_route_path(&route.path) {
            let path = path_of("path");
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            checker.problem(
                &path,
                format!("{:?} is not a route path: {reason}", route.path),
            );
        }
        if let Some((parent, known)) = sibling_parameter_conflict(&mut parameters, &route.path) {
            let path = path_of("path");
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            checker.problem(
                &path,
                format!(
                    "{:?}: API Gateway allows one parameter under {parent}, and another route has {known} there",
                    route.path
                ),
            );
        }
        if !seen.insert((method.clone(), route.path.clone())) {
            let path = path_of("path");
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            checker.problem(
                &path,
                format!("the route {method} {} is defined twice", route.path),
            );
        }
        let path = path_of("function");
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        check_function_reference(checker, &path, &route.function, functions);
        routes.push(RouteSpec {
            method,
            path: route.path.clone(),
            function: route.function.clone(),
        });
    }
    ApiSpec {
        name,
        description: raw.description.clone().unwrap_or_default(),
        stage,
        throttle_rate_limit,
        throttle_burst_limit,
        cors_allow_origins,
        api_key_required: raw.api_key_required.unwrap_or(false),
        access_logging: raw.access_logging.unwrap_or(false),
        adopt: raw.adopt.unwrap_or(false),
        routes,
    }
}

/// `/`, `/health`, `/items/{id}`, `/files/{proxy+}`. A greedy parameter
/// (`{name+}`) must be the last segment (API Gateway developer guide, "Set
/// up a proxy integration with a proxy resource": the greedy path variable
/// must be at the end of the resource path).
fn check_route_path(path: &str) -> Result<(), &'static str> {
    let rest = path.strip_prefix('/').ok_or("it must start with '/'")?;
    if rest.is_empty() {
        return Ok(());
    }
    let segments: Vec<&str> = rest.split('/').collect();
    for (index, segment) in segments.iter().enumerate() {
        let plain = !segment.is_empty()
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
        let inner = segment
            .strip_prefix('{')
            .and_then(|rest| rest.strip_suffix('}'));
        let (name, greedy) = match inner {
            Some(inner) => match inner.strip_suffix('+') {
                Some(name) => (Some(name), true),
                None => (Some(inner), false),
            },
            None => (None, false),
        };
        let parameter = name.is_some_and(|name| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        if !plain && !parameter {
            return Err(
                "segments are letters, digits, '-', '.', '_' or a {parameter}, with no empty segment",
            );
        }
        if greedy && index + 1 != segments.len() {
            return Err("a greedy {parameter+} must be the last segment");
        }
    }
    Ok(())
}

/// API Gateway allows one variable path part among the children of a
/// resource (CreateResource answers "A sibling ({id}) of this resource
/// already has a variable path part -- only one is allowed"): under one
/// parent, every route must name its parameter alike. `None` when `path`
/// agrees with `seen`, else the parent and the parameter already there.
fn sibling_parameter_conflict(
    seen: &mut BTreeMap<String, String>,
    path: &str,
) -> Option<(String, String)> {
    let mut parent = String::new();
    for segment in path.trim_start_matches('/').split('/') {
        if segment.starts_with('{') {
            let known = seen
                .entry(parent.clone())
                .or_insert_with(|| segment.to_string());
            if known != segment {
                let parent = if parent.is_empty() {
                    "/".to_string()
                } else {
                    parent
                };
                return Some((parent, known.clone()));
            }
        }
        parent.push('/');
        parent.push_str(segment);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_paths_and_sibling_parameters() {
        for good in ["/", "/a", "/a/{b}", "/a/{b}/c", "/{proxy+}", "/a/{b_1+}"] {
            assert_eq!(check_route_path(good), Ok(()), "{good}");
        }
        for bad in [
            "", "a", "/a/", "//a", "/{}", "/{+}", "/{a++}", "/{a+}/b", "/{a-b}",
        ] {
            assert!(check_route_path(bad).is_err(), "{bad}");
        }
        let mut seen = BTreeMap::new();
        assert_eq!(sibling_parameter_conflict(&mut seen, "/items/{id}"), None);
        assert_eq!(
            sibling_parameter_conflict(&mut seen, "/items/{id}/x/{y}"),
            None
        );
        assert_eq!(sibling_parameter_conflict(&mut seen, "/items/all"), None);
        assert_eq!(
            sibling_parameter_conflict(&mut seen, "/items/{name}"),
            Some(("/items".to_string(), "{id}".to_string()))
        );
        assert_eq!(
            sibling_parameter_conflict(&mut seen, "/{proxy+}"),
            None,
            "the first parameter under /"
        );
        assert_eq!(
            sibling_parameter_conflict(&mut seen, "/{other}"),
            Some(("/".to_string(), "{proxy+}".to_string()))
        );
    }
}
