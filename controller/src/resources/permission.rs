//! A statement of a function's resource policy that lets one AWS service
//! invoke it, scoped to one source (a route of the REST API, the schedule
//! rule). AWS cannot change a statement in place: a change replaces it.
//!
//! Statement ids follow the Lambda API reference, AddPermission
//! (<https://docs.aws.amazon.com/lambda/latest/api/API_AddPermission.html>):
//! `StatementId` is 1 to 100 characters of `[a-zA-Z0-9-_]`. Each id is a
//! readable prefix plus a short SHA-256 of the exact source (method and
//! path, or rule name), so that routes which read alike once sanitised
//! (`/a-b`, `/a_b`, `/a/b`) still get distinct ids.
//!
//! Source ARNs of API Gateway follow the API Gateway developer guide,
//! "Control access for invoking an API" (resource format
//! `arn:aws:execute-api:region:account-id:api-id/stage/METHOD/resource-path`,
//! <https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-control-access-using-iam-policies-to-invoke-api.html>):
//! the path is matched literally, so a path parameter (`{id}`, `{proxy+}`)
//! becomes the wildcard `*`, and `ANY` becomes `*`.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use async_trait::async_trait;

use super::{DeleteOptions, FieldDoc, Inventory, Kind, Resource, ResourceId, ResourceKind};
use crate::desired::{KNOWN_AFTER_APPLY, Refs};
use crate::spec::Spec;

use super::wait::{self, Poll};
use super::{Context, Observed, Result, aws_error, done_or};
use crate::field::{FieldDiff, Fields};
use crate::ownership::Ownership;

/// Every field: a statement is replaced whenever it differs.
pub const REPLACEMENT_FIELDS: &[&str] = &["principal", "action", "source_arn"];

/// The longest statement id AddPermission takes.
pub const MAX_STATEMENT_ID_LENGTH: usize = 100;
/// Every statement id the controller writes starts with this.
pub const STATEMENT_ID_PREFIX: &str = "anomaly-controller-";
/// Hex digits of the SHA-256 that make an id unique.
const HASH_DIGITS: usize = 12;

/// The statement id of the permission for one route of the REST API:
/// `anomaly-controller-api-<METHOD>-<path, sanitised>-<hash of "METHOD path">`.
pub fn route_statement_id(method: &str, path: &str) -> String {
    statement_id(
        "api",
        &format!("{method}{path}"),
        &format!("{method} {path}"),
    )
}

/// The statement id of the permission for the schedule rule `rule`.
pub fn schedule_statement_id(rule: &str) -> String {
    statement_id("schedule", rule, rule)
}

/// The id earlier versions gave a route's statement: method and path with
/// every other character as `-` (so `/a-b` and `/a_b` shared one).
pub fn legacy_route_statement_id(method: &str, path: &str) -> String {
    let sanitized: String = format!("{method}{path}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!(
        "{STATEMENT_ID_PREFIX}api-{}",
        sanitized.trim_end_matches('-')
    )
}

/// The id earlier versions gave the schedule's statement.
pub fn legacy_schedule_statement_id(rule: &str) -> String {
    format!("{STATEMENT_ID_PREFIX}schedule-{rule}")
}

/// `<prefix><kind>-<readable>-<hash>`, at most 100 characters of
/// `[a-zA-Z0-9-_]`; `readable` is sanitised and shortened to fit, while the
/// hash covers the exact `source`.
fn statement_id(kind: &str, readable: &str, source: &str) -> String {
    let hash = hex::encode(Sha256::digest(source.as_bytes()));
    let head = format!("{STATEMENT_ID_PREFIX}{kind}-");
    let room = MAX_STATEMENT_ID_LENGTH - head.len() - 1 - HASH_DIGITS;
    let mut sanitised = String::new();
    for c in readable.chars() {
        let c = if c.is_ascii_alphanumeric() { c } else { '-' };
        if !(c == '-' && (sanitised.is_empty() || sanitised.ends_with('-'))) {
            sanitised.push(c);
        }
    }
    let mut sanitised: String = sanitised.chars().take(room).collect();
    while sanitised.ends_with('-') {
        sanitised.pop();
    }
    if sanitised.is_empty() {
        format!("{head}{}", &hash[..HASH_DIGITS])
    } else {
        format!("{head}{sanitised}-{}", &hash[..HASH_DIGITS])
    }
}

/// The execute-api ARN that may invoke a route: any stage, the route's
/// method (`*` for `ANY`), its path with each `{parameter}` or
/// `{proxy+}` segment as `*`.
pub fn route_source_arn(
    partition: &str,
    region: &str,
    account_id: &str,
    api_id: &str,
    method: &str,
    path: &str,
) -> String {
    let method = if method == "ANY" { "*" } else { method };
    let path: Vec<&str> = path
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') && segment.ends_with('}') {
                "*"
            } else {
                segment
            }
        })
        .collect();
    format!(
        "arn:{partition}:execute-api:{region}:{account_id}:{api_id}/*/{method}{}",
        path.join("/")
    )
}

#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    /// `<function name>[:<alias>]:<statement id>`, the resource's name in plans.
    pub id: String,
    pub function: String,
    /// The alias the statement is on (the function's release alias), if any.
    pub qualifier: Option<String>,
    pub statement_id: String,
    /// `apigateway.amazonaws.com`, `events.amazonaws.com`.
    pub principal: String,
    pub source_arn: String,
    /// The id earlier versions of the controller gave the same grant; once
    /// the statement exists under its new id, a statement left under this
    /// one is removed.
    pub legacy_statement_id: Option<String>,
    /// The resource whose id is in the source ARN (the REST API), if any.
    pub source: Option<ResourceId>,
}

impl Desired {
    pub fn fields(&self) -> Fields {
        Fields::from([
            ("principal".into(), json!(self.principal)),
            ("action".into(), json!("lambda:InvokeFunction")),
            ("source_arn".into(), json!(self.source_arn)),
        ])
    }

    pub async fn observe(&self, ctx: &Context) -> Result<Option<Observed>> {
        let policy = match ctx
            .clients
            .lambda
            .get_policy()
            .function_name(&self.function)
            .set_qualifier(self.qualifier.clone())
            .send()
            .await
        {
            Ok(output) => output.policy.unwrap_or_default(),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                return Ok(None);
            }
            Err(error) => return Err(aws_error("GetPolicy")(error)),
        };
        let policy: Value = serde_json::from_str(&policy).unwrap_or(Value::Null);
        let Some(statement) =
            policy["Statement"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|statement| {
                    statement["Sid"] == self.statement_id.as_str()
                        && is_on(statement, &self.function, self.qualifier.as_deref())
                })
        else {
            return Ok(None);
        };
        let principal = match &statement["Principal"] {
            Value::Object(principal) => principal.get("Service").cloned().unwrap_or(Value::Null),
            other => other.clone(),
        };
        let action = match &statement["Action"] {
            Value::Array(actions) if actions.len() == 1 => actions[0].clone(),
            other => other.clone(),
        };
        let fields = Fields::from([
            ("principal".into(), principal),
            ("action".into(), action),
            (
                "source_arn".into(),
                statement["Condition"]["ArnLike"]["AWS:SourceArn"].clone(),
            ),
        ]);
        // Statement ids are the controller's own namespace on functions it owns.
        Ok(Some(Observed {
            ownership: Ownership::Owned,
            fields,
        }))
    }

    /// Adds the statement. Lambda answers `ResourceConflictException` both
    /// when the statement id is taken (a retried create whose first answer
    /// was lost) and while the function is being updated (Lambda API
    /// reference, AddPermission, "Errors"); which one it was is read back
    /// from the policy: the statement there is done, otherwise the add is
    /// tried again until the function settles.
    pub async fn create(&self, ctx: &Context) -> Result<()> {
        let what = format!("invoke permission {}", self.id);
        wait::until(ctx.waits, &what, || async {
            let result = ctx
                .clients
                .lambda
                .add_permission()
                .function_name(&self.function)
                .set_qualifier(self.qualifier.clone())
                .statement_id(&self.statement_id)
                .action("lambda:InvokeFunction")
                .principal(&self.principal)
                .source_arn(&self.source_arn)
                .send()
                .await;
            match result {
                Ok(_) => Ok(Poll::Ready),
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|e| e.is_resource_conflict_exception()) =>
                {
                    if self.observe(ctx).await?.is_some() {
                        Ok(Poll::Ready)
                    } else {
                        Ok(Poll::Pending("a conflicting update of the function".into()))
                    }
                }
                Err(error) => Err(aws_error("AddPermission")(error)),
            }
        })
        .await?;
        self.remove_legacy(ctx).await
    }

    /// Removes the statement an earlier version of the controller made for
    /// the same grant, if any: the new one is in place by now.
    async fn remove_legacy(&self, ctx: &Context) -> Result<()> {
        let Some(legacy) = self
            .legacy_statement_id
            .as_ref()
            .filter(|legacy| **legacy != self.statement_id)
        else {
            return Ok(());
        };
        let result = ctx
            .clients
            .lambda
            .remove_permission()
            .function_name(&self.function)
            .set_qualifier(self.qualifier.clone())
            .statement_id(legacy)
            .send()
            .await;
        if result.is_ok() {
            tracing::info!(function = %self.function, statement = %legacy, replaced_by = %self.statement_id, "removed the statement of an earlier controller version");
        }
        done_or(result, "RemovePermission", |e| {
            e.is_resource_not_found_exception()
        })
    }

    /// Nothing changes in place; replacement goes through delete and create.
    pub async fn update(&self, ctx: &Context, _diffs: &[FieldDiff]) -> Result<()> {
        self.delete(ctx).await?;
        self.create(ctx).await
    }

    /// Removes the statement; one already gone is done.
    pub async fn delete(&self, ctx: &Context) -> Result<()> {
        remove_statement(
            ctx,
            &self.function,
            self.qualifier.as_deref(),
            &self.statement_id,
        )
        .await
    }
}

/// The invoke permission kind: one statement of a function's resource policy.
pub struct PermissionKind;
pub static KIND: PermissionKind = PermissionKind;

const FIELDS: &[FieldDoc] = &[
    FieldDoc {
        name: "principal",
        doc: "the service that may invoke",
    },
    FieldDoc {
        name: "action",
        doc: "`lambda:InvokeFunction`",
    },
    FieldDoc {
        name: "source_arn",
        doc: "the one route or rule it is for",
    },
];

#[async_trait]
impl ResourceKind for PermissionKind {
    fn kind(&self) -> Kind {
        Kind("permission")
    }

    fn adopt_setting(&self) -> &'static str {
        "nothing (statement ids are the controller's)"
    }

    fn fields(&self) -> &'static [FieldDoc] {
        FIELDS
    }

    fn desired(&self, spec: &Spec, ctx: &Context, refs: &Refs) -> Vec<Box<dyn Resource>> {
        let mut permissions: Vec<Box<dyn Resource>> = Vec::new();
        if let Some(api) = &spec.api {
            let api_id = refs.api_id.as_deref().unwrap_or(KNOWN_AFTER_APPLY);
            // With several CORS origins the function answers each path's
            // preflight itself (see `api`): the first route of the path
            // names it, and its `OPTIONS` call needs an invoke permission of
            // its own.
            let mut invoked: Vec<(&str, &crate::spec::RouteSpec)> = api
                .routes
                .iter()
                .map(|route| (route.method.as_str(), route))
                .collect();
            if api.cors_allow_origins.len() > 1 {
                let mut preflights: Vec<&str> = Vec::new();
                for route in &api.routes {
                    if !preflights.contains(&route.path.as_str()) {
                        preflights.push(&route.path);
                        invoked.push(("OPTIONS", route));
                    }
                }
            }
            for (method, route) in invoked {
                let Some(function) = spec.function(&route.function) else {
                    continue;
                };
                let statement_id = route_statement_id(method, &route.path);
                let target = crate::desired::InvokeTarget::of(ctx, function);
                permissions.push(Box::new(Desired {
                    id: format!("{}:{statement_id}", target.name()),
                    function: function.name.clone(),
                    qualifier: target.qualifier,
                    statement_id,
                    principal: "apigateway.amazonaws.com".into(),
                    source_arn: route_source_arn(
                        &ctx.partition,
                        &ctx.region,
                        &ctx.account_id,
                        api_id,
                        method,
                        &route.path,
                    ),
                    legacy_statement_id: Some(legacy_route_statement_id(method, &route.path)),
                    source: Some(ResourceId::new(super::api::KIND.kind(), &api.name)),
                }));
            }
        }
        if let Some(schedule) = &spec.schedule {
            if let Some(function) = spec.function(&schedule.function) {
                let statement_id = schedule_statement_id(&schedule.name);
                let target = crate::desired::InvokeTarget::of(ctx, function);
                permissions.push(Box::new(Desired {
                    id: format!("{}:{statement_id}", target.name()),
                    function: function.name.clone(),
                    qualifier: target.qualifier,
                    statement_id,
                    principal: "events.amazonaws.com".into(),
                    source_arn: super::rule::rule_arn(ctx, &schedule.name),
                    legacy_statement_id: Some(legacy_schedule_statement_id(&schedule.name)),
                    source: None,
                }));
            }
        }
        permissions
    }

    /// The controller's statements (by their id prefix) on the functions
    /// and release aliases the file names, that no route or schedule of the
    /// file needs. The statements of a function or an alias the file no
    /// longer names go with it.
    async fn orphans(
        &self,
        ctx: &Context,
        _spec: &Spec,
        inventory: &Inventory,
    ) -> Result<Vec<String>> {
        let function_kind = super::function::KIND.kind();
        let alias_kind = super::release::KIND.kind();
        let policies = futures::future::join_all(
            inventory
                .known
                .iter()
                .filter(|id| id.kind == function_kind || id.kind == alias_kind)
                .map(|id| async move {
                    let (function, qualifier) = split_target(&id.name);
                    (&id.name, statement_ids(ctx, function, qualifier).await)
                }),
        )
        .await;
        let mut orphans = Vec::new();
        for (target, ids) in policies {
            for id in ids? {
                let name = format!("{target}:{id}");
                if id.starts_with(STATEMENT_ID_PREFIX) && !inventory.is_known(self.kind(), &name) {
                    orphans.push(name);
                }
            }
        }
        Ok(orphans)
    }

    async fn delete(&self, ctx: &Context, name: &str, _options: DeleteOptions) -> Result<()> {
        let Some((target, statement_id)) = name.rsplit_once(':') else {
            return Err(super::Error::Failed(format!(
                "{name:?} is not <function>[:<alias>]:<statement id>"
            )));
        };
        let (function, qualifier) = split_target(target);
        remove_statement(ctx, function, qualifier, statement_id).await
    }
}

/// Whether a policy statement grants on `function` itself or, with a
/// qualifier, on that alias: its `Resource` is the (qualified) function
/// ARN. Lambda keeps one policy per qualifier ("GetPolicy",
/// <https://docs.aws.amazon.com/lambda/latest/api/API_GetPolicy.html>);
/// reading the `Resource` keeps the statements of the function and of
/// its alias apart even where one policy lists both.
fn is_on(statement: &Value, function: &str, qualifier: Option<&str>) -> bool {
    let target = match qualifier {
        Some(alias) => format!(":function:{function}:{alias}"),
        None => format!(":function:{function}"),
    };
    match &statement["Resource"] {
        Value::String(resource) => resource.ends_with(&target),
        // No resource written: taken as the policy's own.
        Value::Null => true,
        _ => false,
    }
}

/// `function` or `function:alias` as the function and its qualifier.
fn split_target(target: &str) -> (&str, Option<&str>) {
    match target.split_once(':') {
        Some((function, alias)) => (function, Some(alias)),
        None => (target, None),
    }
}

/// The statement ids of a function's (or an alias's) resource policy (none
/// when the function, the alias or its policy does not exist).
async fn statement_ids(
    ctx: &Context,
    function: &str,
    qualifier: Option<&str>,
) -> Result<Vec<String>> {
    let policy = match ctx
        .clients
        .lambda
        .get_policy()
        .function_name(function)
        .set_qualifier(qualifier.map(str::to_string))
        .send()
        .await
    {
        Ok(output) => output.policy.unwrap_or_default(),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            return Ok(Vec::new());
        }
        Err(error) => return Err(aws_error("GetPolicy")(error)),
    };
    let policy: Value = serde_json::from_str(&policy).unwrap_or(Value::Null);
    Ok(policy["Statement"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|statement| is_on(statement, function, qualifier))
        .filter_map(|statement| statement["Sid"].as_str().map(str::to_string))
        .collect())
}

/// Removes one statement; one already gone is done.
async fn remove_statement(
    ctx: &Context,
    function: &str,
    qualifier: Option<&str>,
    statement_id: &str,
) -> Result<()> {
    done_or(
        ctx.clients
            .lambda
            .remove_permission()
            .function_name(function)
            .set_qualifier(qualifier.map(str::to_string))
            .statement_id(statement_id)
            .send()
            .await,
        "RemovePermission",
        |e| e.is_resource_not_found_exception(),
    )
}

delegated_resource!(
    Desired,
    name: |this| this.id.clone(),
    fn replacement_fields(&self) -> &'static [&'static str] {
        REPLACEMENT_FIELDS
    }

    fn dependencies(&self) -> Vec<ResourceId> {
        let mut needs = vec![match &self.qualifier {
            Some(alias) => ResourceId::new(
                super::release::KIND.kind(),
                format!("{}:{alias}", self.function),
            ),
            None => ResourceId::new(super::function::KIND.kind(), &self.function),
        }];
        needs.extend(self.source.clone());
        needs
    }
);

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn well_formed(id: &str) -> bool {
        (1..=MAX_STATEMENT_ID_LENGTH).contains(&id.len())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    }

    #[test]
    fn routes_that_sanitise_alike_get_distinct_ids() {
        let ids: BTreeSet<String> = [
            ("GET", "/a-b"),
            ("GET", "/a_b"),
            ("GET", "/a/b"),
            ("GET", "/a.b"),
            ("GET", "/a/{b}"),
            ("POST", "/a-b"),
            ("ANY", "/a-b"),
            ("GET", "/"),
        ]
        .iter()
        .map(|(method, path)| route_statement_id(method, path))
        .collect();
        assert_eq!(ids.len(), 8, "{ids:?}");
        for id in &ids {
            assert!(well_formed(id), "{id}");
            assert!(id.starts_with("anomaly-controller-api-"), "{id}");
        }
    }

    #[test]
    fn ids_are_readable_stable_and_exact() {
        let id = route_statement_id("POST", "/detect");
        assert!(
            id.starts_with("anomaly-controller-api-POST-detect-"),
            "{id}"
        );
        assert_eq!(id.len(), "anomaly-controller-api-POST-detect-".len() + 12);
        assert_eq!(id, route_statement_id("POST", "/detect"));
        assert_ne!(id, route_statement_id("POST", "/detect/"));
        assert_ne!(id, route_statement_id("post", "/detect"));
        let root = route_statement_id("GET", "/");
        assert!(root.starts_with("anomaly-controller-api-GET-"), "{root}");
    }

    #[test]
    fn long_paths_and_rule_names_stay_within_100_characters() {
        let segment = "abcdefghij_".repeat(30);
        let long_a = format!("/{segment}/x");
        let long_b = format!("/{segment}/y");
        let a = route_statement_id("OPTIONS", &long_a);
        let b = route_statement_id("OPTIONS", &long_b);
        assert_eq!(a.len(), MAX_STATEMENT_ID_LENGTH, "{a}");
        assert!(well_formed(&a) && well_formed(&b), "{a} {b}");
        assert_ne!(a, b, "the hash tells apart what the truncation cuts off");
        // Rule names may hold '.', which statement ids may not.
        let rule = format!("{}.daily", "r".repeat(58));
        let id = schedule_statement_id(&rule);
        assert!(well_formed(&id), "{id}");
        assert!(id.starts_with("anomaly-controller-schedule-"), "{id}");
        assert_ne!(
            schedule_statement_id("nightly.train"),
            schedule_statement_id("nightly-train")
        );
    }

    #[test]
    fn legacy_ids_are_those_earlier_versions_wrote() {
        assert_eq!(
            legacy_route_statement_id("POST", "/detect"),
            "anomaly-controller-api-POST-detect"
        );
        assert_eq!(
            legacy_route_statement_id("GET", "/items/{id}"),
            "anomaly-controller-api-GET-items--id"
        );
        assert_eq!(
            legacy_schedule_statement_id("d-schedule"),
            "anomaly-controller-schedule-d-schedule"
        );
        assert_ne!(
            legacy_route_statement_id("POST", "/detect"),
            route_statement_id("POST", "/detect")
        );
    }

    #[test]
    fn source_arns_put_a_wildcard_for_path_parameters_and_any() {
        let arn = |method: &str, path: &str| {
            route_source_arn("aws", "eu-west-1", "123456789012", "a1b2c3", method, path)
        };
        assert_eq!(
            arn("POST", "/detect"),
            "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3/*/POST/detect"
        );
        assert_eq!(
            arn("GET", "/items/{id}"),
            "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3/*/GET/items/*"
        );
        assert_eq!(
            arn("GET", "/items/{id}/parts/{part}"),
            "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3/*/GET/items/*/parts/*"
        );
        assert_eq!(
            arn("ANY", "/files/{proxy+}"),
            "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3/*/*/files/*"
        );
        assert_eq!(
            arn("GET", "/"),
            "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3/*/GET/"
        );
        assert!(!arn("GET", "/a/{b}/{c+}").contains(['{', '}']));
    }
}
