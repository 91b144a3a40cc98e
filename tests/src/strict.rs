//! The strict-AWS layer of the fault proxy: where moto is more lenient than
//! AWS, it answers as AWS does.
//!
//! moto accepts much that a real account refuses, and every test run against
//! it alone would miss those failures. [`StrictAws`] sits in the proxy
//! between the code under test and moto: before a request is forwarded it
//! may refuse it as AWS would ([`StrictAws::check`]); after moto answers it
//! may rewrite the answer as AWS would give it and record what AWS would
//! remember ([`StrictAws::observe`]). Each rule is a [`Rule`]; its doc
//! comment cites the AWS page it reproduces, and [`StrictAws::refusals`]
//! counts how often each one fired.
//!
//! Identity: requests signed with credentials bound to an IAM role
//! ([`StrictAws::bind_credentials`]) are evaluated against that role's inline
//! policies, read from moto at the time of the request (S3 and Secrets
//! Manager calls); every other caller is the account's administrator.
//!
//! What is still only moto (no rule here): attached managed policies of a
//! bound role, resource policies, IAM propagation for services other than
//! Lambda and API Gateway, tag visibility for kinds other than functions,
//! throttling (the fault proxy's random faults stand in for it), and images
//! in registries not registered with [`StrictAws::register_registry`] or ECR
//! hosts this machine cannot reach.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use crate::fault_proxy::{
    ProxyBody, credential_scope, form_field, full, percent_decode, xml_escape,
};

/// How long AWS takes to settle where moto settles at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StrictSettings {
    /// How long a new IAM role cannot be assumed by Lambda or API Gateway.
    pub role_propagation: Duration,
    /// How long a new function stays `Pending`.
    pub function_pending: Duration,
    /// How long an updated function stays `InProgress`.
    pub function_update: Duration,
    /// How long a new function's tags are invisible.
    pub tag_visibility: Duration,
    /// How long GetResources keeps listing a resource after it was deleted
    /// or lost its tags.
    pub tagging_lag: Duration,
}

impl Default for StrictSettings {
    /// Shorter than AWS's (seconds, for roles), long enough that code which
    /// does not wait, poll or retry fails every time.
    fn default() -> Self {
        StrictSettings {
            role_propagation: Duration::from_millis(1500),
            function_pending: Duration::from_millis(300),
            function_update: Duration::from_millis(300),
            tag_visibility: Duration::from_millis(500),
            tagging_lag: Duration::from_secs(60),
        }
    }
}

/// One way AWS differs from moto, reproduced by the strict layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// A bound role's S3 request that its policy does not allow is 403
    /// AccessDenied (S3 API reference, "Permissions" of each operation; IAM
    /// user guide, "Policy evaluation logic": no allow is an implicit deny).
    S3AccessDenied,
    /// GetObject / HeadObject of a missing key is 403 AccessDenied, not 404,
    /// unless the caller may `s3:ListBucket` the bucket; a grant conditioned
    /// on `s3:prefix` does not count, a GetObject request carries no prefix
    /// (S3 API reference, GetObject, "Permissions").
    S3MissingKeyForbidden,
    /// A bound role's GetSecretValue its policy does not allow is
    /// AccessDeniedException (Secrets Manager API reference, GetSecretValue,
    /// "Required permissions").
    SecretAccessDenied,
    /// PutMethod on a method that exists is 409 ConflictException "Method
    /// already exists for this resource" (API Gateway API reference,
    /// PutMethod, "Errors"; aws-cli issue 3992); moto overwrites it and
    /// drops its integration.
    PutMethodExists,
    /// PutMethodResponse for a status code the method already answers is
    /// 409 ConflictException (API Gateway API reference, PutMethodResponse,
    /// "Errors"); moto overwrites it.
    PutMethodResponseExists,
    /// CreateResource with a path part its parent already has is 409
    /// ConflictException "Another resource with the same parent already has
    /// this name" (API Gateway API reference, CreateResource, "Errors");
    /// moto makes a second resource of the same path.
    ResourceExists,
    /// UpdateStage setting access-log settings while the account has no
    /// `cloudwatchRoleArn` is 400 BadRequestException; the whole patch is
    /// refused (API Gateway developer guide, "Set up CloudWatch logging for
    /// REST APIs in API Gateway").
    AccessLogsNeedAccountRole,
    /// UpdateAccount with a `cloudwatchRoleArn` API Gateway cannot assume
    /// (missing, not trusting `apigateway.amazonaws.com`, or created seconds
    /// ago) is 400 BadRequestException "The role ARN does not have required
    /// permissions set to API Gateway" (same page).
    AccountRoleNotAssumable,
    /// CreateFunction / UpdateFunctionConfiguration with a role created
    /// seconds ago is InvalidParameterValueException "The role defined for
    /// the function cannot be assumed by Lambda" (IAM user guide,
    /// "Troubleshoot IAM": changes are eventually consistent; Lambda API
    /// reference, CreateFunction, "Errors").
    RoleNotAssumable,
    /// A function is `Pending` after CreateFunction and `InProgress` after an
    /// update; meanwhile UpdateFunctionCode, UpdateFunctionConfiguration,
    /// PublishVersion, AddPermission, RemovePermission and
    /// PutFunctionConcurrency are 409 ResourceConflictException (Lambda
    /// developer guide, "Lambda function states": "any invocations or other
    /// API actions that operate on the function will fail").
    FunctionBusy,
    /// The JSON of a function's whole `Variables` map may not exceed 4 KB:
    /// InvalidParameterValueException (Lambda developer guide, "Lambda
    /// quotas": "Environment variables: 4 KB, for all environment variables
    /// associated with the function, in aggregate").
    EnvironmentTooLarge,
    /// A new function's tags are not visible at once (Lambda developer
    /// guide, "Tagging Lambda functions": tag changes are eventually
    /// consistent); ListTags answers with none and GetFunction without
    /// `Tags` for a short while.
    TagsNotYetVisible,
    /// An image pinned to a manifest list / OCI index, or with a media type
    /// Lambda does not take, is InvalidParameterValueException (Lambda
    /// developer guide, "Create a Lambda function using a container image":
    /// Lambda does not support multi-architecture manifest lists).
    ImageNotSupported,
    /// An image whose config `architecture` differs from the function's
    /// architecture is refused (same page: "the function's architecture
    /// must match the image's").
    ImageArchitecture,
    /// An image that is not in the registry is refused: "Source image ...
    /// does not exist" (Lambda API reference, CreateFunction, `ImageUri`).
    ImageNotFound,
    /// An ECR image of another Region is refused: Lambda pulls only from
    /// ECR in the function's own Region (Lambda developer guide, "Create a
    /// Lambda function using a container image", "Requirements").
    ImageWrongRegion,
    /// Not a refusal: UpdateMethod, which AWS has and moto 5.2.1 lacks (it
    /// answers 500), carried out on moto's model (API Gateway API
    /// reference, UpdateMethod).
    UpdateMethodEmulated,
    /// AddPermission's `StatementId` is 1-100 characters of `[a-zA-Z0-9-_.]`
    /// (Lambda API reference, AddPermission, "StatementId"), and an id the
    /// policy already holds is 409 ResourceConflictException; moto takes
    /// both.
    StatementId,
    /// GetResources of the Resource Groups Tagging API lists every resource
    /// type but IAM users and roles ("Services that support the Resource
    /// Groups Tagging API": "The GetResources, GetTagKeys, and GetTagValues
    /// operations support all resource types",
    /// <https://docs.aws.amazon.com/resourcegroupstagging/latest/APIReference/supported-services.html>);
    /// moto 5.2.1 leaves out ECR repositories, EventBridge rules and API
    /// Gateway REST APIs, usage plans and API keys. The layer adds those
    /// that match the request's tag filters, read from moto's own lists, to
    /// the last page.
    TaggingListsEveryType,
    /// GetResources "returns all the tagged or previously tagged resources"
    /// (Resource Groups Tagging API reference, GetResources): a resource
    /// deleted (or untagged) moments ago is still listed, with its old
    /// tags, for a while; moto drops it at once. The layer keeps listing
    /// what it listed before for `tagging_lag`.
    TaggingListsDeleted,
    /// GetRestApis, GetUsagePlans and GetApiKeys answer one page: at most
    /// `limit` items ("The maximum number of returned results per page. The
    /// default value is 25 and the maximum value is 500.", API Gateway API
    /// reference, GetRestApis / GetUsagePlans / GetApiKeys) and a `position`
    /// for the next; moto answers every item at once. The layer pages
    /// moto's full answer.
    ApiGatewayPages,
    /// CreateAlias / UpdateAlias: the name is 1-128 of `[a-zA-Z0-9-_]`, not
    /// only digits; the description at most 256 characters; the routing
    /// configuration names at most one additional version, a published one
    /// (`[0-9]+`, not `$LATEST`) other than the alias's own, with a weight
    /// from 0 to 1, and an alias with routing points at a published version
    /// (Lambda API reference, CreateAlias / UpdateAlias and
    /// AliasRoutingConfiguration,
    /// <https://docs.aws.amazon.com/lambda/latest/api/API_AliasRoutingConfiguration.html>;
    /// developer guide, "Implement Lambda canary deployments using a
    /// weighted alias": "an alias can point to a maximum of two Lambda
    /// function versions", "both versions must be published");
    /// InvalidParameterValueException. moto takes all of it.
    AliasRouting,
    /// DeleteFunction with a `Qualifier` naming a version an alias routes
    /// traffic to is 409 ResourceConflictException ("You can't delete a
    /// version that an alias references", Lambda API reference,
    /// DeleteFunction); moto deletes it and leaves the alias dangling.
    DeleteRoutedVersion,
}

/// The strict-AWS state of one proxy: what AWS would remember that moto
/// does not (when each role and function was created or changed), the
/// credentials bound to roles, and the registries that stand in for ECR.
pub struct StrictAws {
    upstream: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    settings: StrictSettings,
    roles_created: HashMap<String, Instant>,
    functions: HashMap<String, Busy>,
    functions_created: HashMap<String, Instant>,
    credentials: HashMap<String, String>,
    registries: HashSet<String>,
    refusals: BTreeMap<Rule, u64>,
    /// Every ARN a GetResources answer listed: its tags and when it was
    /// last there.
    tagged_seen: HashMap<String, (Value, Instant)>,
}

#[derive(Clone, Copy, Debug)]
struct Busy {
    pending: bool,
    until: Instant,
}

impl StrictAws {
    pub(crate) fn new(upstream: SocketAddr, settings: StrictSettings) -> StrictAws {
        StrictAws {
            upstream,
            client: Client::builder(TokioExecutor::new()).build_http(),
            state: Mutex::new(State {
                settings,
                ..State::default()
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The delays in force.
    pub fn settings(&self) -> StrictSettings {
        self.state().settings
    }

    /// Replaces the delays; takes effect for the next request.
    pub fn set_settings(&self, settings: StrictSettings) {
        self.state().settings = settings;
    }

    /// Requests signed with `access_key_id` are made by `role_name`: their
    /// S3 and Secrets Manager calls are allowed only as far as the role's
    /// inline policies allow them.
    pub fn bind_credentials(&self, access_key_id: &str, role_name: &str) {
        self.state()
            .credentials
            .insert(access_key_id.to_string(), role_name.to_string());
    }

    /// Images in the registry at `host_port` (`127.0.0.1:5000`) are checked
    /// as Lambda checks ECR images: present, one manifest, right
    /// architecture.
    pub fn register_registry(&self, host_port: &str) {
        self.state().registries.insert(host_port.to_string());
    }

    /// How often `rule` changed an answer so far.
    pub fn refusals(&self, rule: Rule) -> u64 {
        self.state().refusals.get(&rule).copied().unwrap_or(0)
    }

    /// Forgets what AWS would remember (after moto's reset).
    pub fn reset(&self) {
        let mut state = self.state();
        state.roles_created.clear();
        state.functions.clear();
        state.functions_created.clear();
        state.refusals.clear();
    }

    fn count(&self, rule: Rule) {
        *self.state().refusals.entry(rule).or_default() += 1;
    }

    /// AWS's refusal of `request`, when AWS would refuse what moto takes.
    pub(crate) async fn check(&self, request: &StrictRequest) -> Option<Response<ProxyBody>> {
        let refusal = match request.service.as_deref() {
            Some("lambda") => self.check_lambda(request).await,
            Some("apigateway") => self.check_api_gateway(request).await,
            Some("s3") => self.check_s3(request).await,
            Some("secretsmanager") => self.check_secret(request).await,
            _ => None,
        };
        refusal.map(|(rule, response)| {
            self.count(rule);
            response
        })
    }

    /// moto's answer to `request` as AWS would give it; records what AWS
    /// would remember of it.
    pub(crate) async fn observe(
        &self,
        request: &StrictRequest,
        response: &mut hyper::http::response::Parts,
        body: Bytes,
    ) -> Bytes {
        let changed = match request.service.as_deref() {
            Some("iam") => {
                self.observe_iam(request, response.status);
                None
            }
            Some("lambda") => self.observe_lambda(request, response.status, &body),
            Some("s3") => self.observe_s3(request, response).await,
            Some("tagging") => self.observe_tagging(request, response.status, &body).await,
            Some("apigateway") => self.observe_api_gateway_page(request, response.status, &body),
            _ => None,
        };
        match changed {
            Some(body) => {
                response.headers.remove(CONTENT_LENGTH);
                body
            }
            None => body,
        }
    }

    // ---- IAM -------------------------------------------------------------

    fn observe_iam(&self, request: &StrictRequest, status: StatusCode) {
        if status.is_success()
            && request.action.as_deref() == Some("CreateRole")
            && let Some(name) = form_field(&request.body, "RoleName")
        {
            self.state().roles_created.insert(name, Instant::now());
        }
    }

    /// Whether the role named in `role_arn` was created too recently to be
    /// assumed.
    fn role_too_new(&self, role_arn: &str) -> bool {
        let name = role_arn.rsplit('/').next().unwrap_or(role_arn);
        let state = self.state();
        state
            .roles_created
            .get(name)
            .is_some_and(|created| created.elapsed() < state.settings.role_propagation)
    }

    // ---- Lambda ----------------------------------------------------------

    async fn check_lambda(&self, request: &StrictRequest) -> Option<(Rule, Response<ProxyBody>)> {
        let operation = LambdaOperation::of(request)?;
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        if let Some(name) = operation.function()
            && operation.modifies()
            && let Some(busy) = self.busy(name)
        {
            let message = if busy.pending {
                "The operation cannot be performed at this time. The function is currently in the following state: Pending".to_string()
            } else {
                format!(
                    "The operation cannot be performed at this time. An update is in progress for resource: {}",
                    request.function_arn(name)
                )
            };
            return Some((
                Rule::FunctionBusy,
                lambda_error(409, "ResourceConflictException", &message),
            ));
        }
        match &operation {
            LambdaOperation::Create | LambdaOperation::UpdateConfiguration(_) => {
                if let Some(refusal) = environment_too_large(&body) {
                    return Some(refusal);
                }
                if let Some(role) = body.get("Role").and_then(Value::as_str)
                    && self.role_too_new(role)
                {
                    return Some((
                        Rule::RoleNotAssumable,
                        lambda_error(
                            400,
                            "InvalidParameterValueException",
                            "The role defined for the function cannot be assumed by Lambda.",
                        ),
                    ));
                }
            }
            LambdaOperation::AddPermission(name) => {
                return self.check_statement_id(request, name, &body).await;
            }
            LambdaOperation::CreateAlias(_) | LambdaOperation::UpdateAlias(_) => {
                let name = match &operation {
                    LambdaOperation::UpdateAlias(_) => request.segments().last().cloned(),
                    _ => body.get("Name").and_then(Value::as_str).map(str::to_string),
                };
                return alias_refusal(name.as_deref(), &body).map(|message| {
                    (
                        Rule::AliasRouting,
                        lambda_error(400, "InvalidParameterValueException", &message),
                    )
                });
            }
            LambdaOperation::Delete(name) => {
                let version = request
                    .query_value("Qualifier")
                    .filter(|qualifier| qualifier.bytes().all(|b| b.is_ascii_digit()))?;
                let aliases = self
                    .upstream_json(
                        "lambda",
                        Method::GET,
                        &format!("/2015-03-31/functions/{name}/aliases"),
                    )
                    .await?;
                let routing: Vec<&str> = aliases
                    .get("Aliases")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|alias| {
                        alias.get("FunctionVersion").and_then(Value::as_str) == Some(&version)
                            || alias
                                .pointer("/RoutingConfig/AdditionalVersionWeights")
                                .and_then(Value::as_object)
                                .is_some_and(|weights| weights.contains_key(&version))
                    })
                    .filter_map(|alias| alias.get("Name").and_then(Value::as_str))
                    .collect();
                if routing.is_empty() {
                    return None;
                }
                return Some((
                    Rule::DeleteRoutedVersion,
                    lambda_error(
                        409,
                        "ResourceConflictException",
                        &format!(
                            "Unable to delete version because the following aliases reference it: {routing:?}"
                        ),
                    ),
                ));
            }
            _ => {}
        }
        let image = match &operation {
            LambdaOperation::Create => body.pointer("/Code/ImageUri").and_then(Value::as_str),
            LambdaOperation::UpdateCode(_) => body.get("ImageUri").and_then(Value::as_str),
            _ => None,
        }?;
        let architecture = match body.pointer("/Architectures/0").and_then(Value::as_str) {
            Some(architecture) => architecture.to_string(),
            None => match &operation {
                LambdaOperation::UpdateCode(name) => self
                    .upstream_json(
                        "lambda",
                        Method::GET,
                        &format!("/2015-03-31/functions/{name}/configuration"),
                    )
                    .await
                    .and_then(|config| {
                        config
                            .pointer("/Architectures/0")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .unwrap_or_else(|| "x86_64".to_string()),
                _ => "x86_64".to_string(),
            },
        };
        self.check_image(request, image, &architecture).await
    }

    async fn check_statement_id(
        &self,
        request: &StrictRequest,
        function: &str,
        body: &Value,
    ) -> Option<(Rule, Response<ProxyBody>)> {
        let id = body.get("StatementId").and_then(Value::as_str)?;
        let valid = !id.is_empty()
            && id.len() <= 100
            && id
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'));
        if !valid {
            return Some((
                Rule::StatementId,
                lambda_error(
                    400,
                    "ValidationException",
                    &format!(
                        "1 validation error detected: Value '{id}' at 'statementId' failed to satisfy constraint: \
                         Member must have length less than or equal to 100, \
                         Member must satisfy regular expression pattern: ([a-zA-Z0-9-_.]+)"
                    ),
                ),
            ));
        }
        let qualifier = request.query_value("Qualifier");
        let path = match &qualifier {
            Some(qualifier) => {
                format!("/2015-03-31/functions/{function}/policy?Qualifier={qualifier}")
            }
            None => format!("/2015-03-31/functions/{function}/policy"),
        };
        let policy = self.upstream_json("lambda", Method::GET, &path).await?;
        let document: Value = serde_json::from_str(policy.get("Policy")?.as_str()?).ok()?;
        let exists = document
            .get("Statement")
            .and_then(Value::as_array)
            .is_some_and(|statements| {
                statements
                    .iter()
                    .any(|statement| statement.get("Sid").and_then(Value::as_str) == Some(id))
            });
        exists.then(|| {
            (
                Rule::StatementId,
                lambda_error(
                    409,
                    "ResourceConflictException",
                    &format!(
                        "The statement id ({id}) provided already exists. Please provide a new statement id, or remove the existing statement."
                    ),
                ),
            )
        })
    }

    async fn check_image(
        &self,
        request: &StrictRequest,
        image: &str,
        architecture: &str,
    ) -> Option<(Rule, Response<ProxyBody>)> {
        let (host, rest) = image.split_once('/')?;
        let refuse = |rule: Rule, message: String| {
            Some((
                rule,
                lambda_error(400, "InvalidParameterValueException", &message),
            ))
        };
        if let Some(region) = ecr_host_region(host) {
            if Some(region) != request.region.as_deref() {
                return refuse(
                    Rule::ImageWrongRegion,
                    format!(
                        "Source image {image} is not in the function's Region: Lambda pulls only from Amazon ECR in {}.",
                        request.region.as_deref().unwrap_or("the function's Region")
                    ),
                );
            }
            return None;
        }
        if !self.state().registries.contains(host) {
            return None;
        }
        let (repository, reference) = match rest.split_once('@') {
            Some((repository, digest)) => (repository, digest),
            None => rest.rsplit_once(':').unwrap_or((rest, "latest")),
        };
        let Some((media_type, manifest)) = self.manifest(host, repository, reference).await else {
            return refuse(
                Rule::ImageNotFound,
                format!("Source image {image} does not exist. Provide a valid source image."),
            );
        };
        let single = matches!(
            media_type.as_str(),
            "application/vnd.docker.distribution.manifest.v2+json"
                | "application/vnd.oci.image.manifest.v1+json"
        );
        if !single {
            return refuse(
                Rule::ImageNotSupported,
                format!(
                    "The image manifest, config or layer media type for the source image {image} is not supported ({media_type})."
                ),
            );
        }
        let config_digest = manifest.pointer("/config/digest").and_then(Value::as_str)?;
        let config = self.blob(host, repository, config_digest).await?;
        let image_architecture = config
            .get("architecture")
            .and_then(Value::as_str)
            .unwrap_or("(none)");
        let expected = match architecture {
            "arm64" => "arm64",
            _ => "amd64",
        };
        (image_architecture != expected).then(|| {
            (
                Rule::ImageArchitecture,
                lambda_error(
                    400,
                    "InvalidParameterValueException",
                    &format!(
                        "The image {image} is for architecture {image_architecture}; the function's architecture {architecture} needs {expected}."
                    ),
                ),
            )
        })
    }

    fn busy(&self, function: &str) -> Option<Busy> {
        let mut state = self.state();
        let busy = *state.functions.get(function)?;
        if busy.until <= Instant::now() {
            state.functions.remove(function);
            return None;
        }
        Some(busy)
    }

    fn observe_lambda(
        &self,
        request: &StrictRequest,
        status: StatusCode,
        body: &[u8],
    ) -> Option<Bytes> {
        let operation = LambdaOperation::of(request)?;
        if !status.is_success() {
            return None;
        }
        let now = Instant::now();
        let mut answer: Value = serde_json::from_slice(body).ok()?;
        match operation {
            LambdaOperation::Create => {
                let name = function_name(answer.get("FunctionName")?.as_str()?).to_string();
                let mut state = self.state();
                let until = now + state.settings.function_pending;
                state.functions.insert(
                    name.clone(),
                    Busy {
                        pending: true,
                        until,
                    },
                );
                state.functions_created.insert(name, now);
                drop(state);
                set_state(&mut answer, true);
            }
            LambdaOperation::UpdateConfiguration(name) | LambdaOperation::UpdateCode(name) => {
                let mut state = self.state();
                let until = now + state.settings.function_update;
                state.functions.insert(
                    name.to_string(),
                    Busy {
                        pending: false,
                        until,
                    },
                );
                drop(state);
                set_state(&mut answer, false);
            }
            LambdaOperation::Get(name) => {
                if let Some(busy) = self.busy(name) {
                    set_state(answer.get_mut("Configuration")?, busy.pending);
                }
                if self.tags_hidden(name)
                    && let Some(object) = answer.as_object_mut()
                {
                    object.remove("Tags");
                    self.count(Rule::TagsNotYetVisible);
                }
            }
            LambdaOperation::GetConfiguration(name) => {
                let busy = self.busy(name)?;
                set_state(&mut answer, busy.pending);
            }
            LambdaOperation::ListTags(name) => {
                if !self.tags_hidden(name) {
                    return None;
                }
                self.count(Rule::TagsNotYetVisible);
                answer = json!({"Tags": {}});
            }
            _ => return None,
        }
        Some(Bytes::from(answer.to_string()))
    }

    fn tags_hidden(&self, function: &str) -> bool {
        let state = self.state();
        state
            .functions_created
            .get(function)
            .is_some_and(|created| created.elapsed() < state.settings.tag_visibility)
    }

    // ---- API Gateway -----------------------------------------------------

    async fn check_api_gateway(
        &self,
        request: &StrictRequest,
    ) -> Option<(Rule, Response<ProxyBody>)> {
        let segments = request.segments();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        match (&request.method, segments.as_slice()) {
            (&Method::PUT, ["restapis", _, "resources", _, "methods", _]) => {
                self.refuse_existing(
                    request,
                    Rule::PutMethodExists,
                    "Method already exists for this resource",
                )
                .await
            }
            (&Method::PUT, ["restapis", _, "resources", _, "methods", _, "responses", _]) => {
                self.refuse_existing(
                    request,
                    Rule::PutMethodResponseExists,
                    "Response already exists for this resource",
                )
                .await
            }
            (&Method::POST, ["restapis", api, "resources", parent]) => {
                let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
                let part = body.get("pathPart").and_then(Value::as_str)?;
                let resources = self
                    .upstream_json(
                        "apigateway",
                        Method::GET,
                        &format!("/restapis/{api}/resources?limit=500"),
                    )
                    .await?;
                let taken = resources
                    .get("item")
                    .and_then(Value::as_array)
                    .is_some_and(|items| {
                        items.iter().any(|item| {
                            item.get("parentId").and_then(Value::as_str) == Some(*parent)
                                && item.get("pathPart").and_then(Value::as_str) == Some(part)
                        })
                    });
                taken.then(|| {
                    (
                        Rule::ResourceExists,
                        api_gateway_error(
                            409,
                            "ConflictException",
                            &format!(
                                "Another resource with the same parent already has this name: {part}"
                            ),
                        ),
                    )
                })
            }
            (&Method::PATCH, ["restapis", _, "resources", _, "methods", _]) => self
                .update_method(request)
                .await
                .map(|response| (Rule::UpdateMethodEmulated, response)),
            (&Method::PATCH, ["restapis", _, "stages", _]) => {
                let sets_access_logs = patch_operations(&request.body).iter().any(|operation| {
                    operation.path.starts_with("/accessLogSettings") && operation.op != "remove"
                });
                if !sets_access_logs {
                    return None;
                }
                let account = self
                    .upstream_json("apigateway", Method::GET, "/account")
                    .await
                    .unwrap_or(Value::Null);
                let role = account
                    .get("cloudwatchRoleArn")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                role.is_empty().then(|| {
                    (
                        Rule::AccessLogsNeedAccountRole,
                        api_gateway_error(
                            400,
                            "BadRequestException",
                            "CloudWatch Logs role ARN must be set in account settings to enable logging",
                        ),
                    )
                })
            }
            (&Method::PATCH, ["account"]) => {
                let operations = patch_operations(&request.body);
                let role_arn = operations
                    .iter()
                    .find(|operation| {
                        operation.path == "/cloudwatchRoleArn" && operation.op != "remove"
                    })?
                    .value
                    .clone()?;
                if role_arn.is_empty() {
                    return None;
                }
                let assumable = !self.role_too_new(&role_arn)
                    && self
                        .role_trusts(&role_arn, "apigateway.amazonaws.com")
                        .await;
                (!assumable).then(|| {
                    (
                        Rule::AccountRoleNotAssumable,
                        api_gateway_error(
                            400,
                            "BadRequestException",
                            "The role ARN does not have required permissions set to API Gateway",
                        ),
                    )
                })
            }
            _ => None,
        }
    }

    /// A 409 ConflictException when what the PUT at this path would create
    /// already exists (a GET of the same path answers 200).
    async fn refuse_existing(
        &self,
        request: &StrictRequest,
        rule: Rule,
        message: &str,
    ) -> Option<(Rule, Response<ProxyBody>)> {
        let exists = self
            .upstream("apigateway", Method::GET, &request.raw_path, Bytes::new())
            .await
            .is_some_and(|(status, _)| status.is_success());
        exists.then(|| (rule, api_gateway_error(409, "ConflictException", message)))
    }

    /// UpdateMethod, which moto 5.2.1 does not implement (it answers 500):
    /// the method is put again with the patched flag and its integration,
    /// integration responses and method responses restored, as AWS's
    /// in-place update leaves them (API Gateway API reference,
    /// UpdateMethod). Only `/apiKeyRequired` and `/authorizationType` are
    /// taken; other paths are left to moto.
    async fn update_method(&self, request: &StrictRequest) -> Option<Response<ProxyBody>> {
        let operations = patch_operations(&request.body);
        let supported = !operations.is_empty()
            && operations.iter().all(|operation| {
                operation.op == "replace"
                    && matches!(
                        operation.path.as_str(),
                        "/apiKeyRequired" | "/authorizationType"
                    )
            });
        if !supported {
            return None;
        }
        let path = request.raw_path.as_str();
        let Some(mut method) = self.upstream_json("apigateway", Method::GET, path).await else {
            return Some(api_gateway_error(
                404,
                "NotFoundException",
                "Invalid Method identifier specified",
            ));
        };
        for operation in &operations {
            let value = operation.value.clone().unwrap_or_default();
            match operation.path.as_str() {
                "/apiKeyRequired" => method["apiKeyRequired"] = json!(value == "true"),
                _ => method["authorizationType"] = json!(value),
            }
        }
        let put = json!({
            "authorizationType": method["authorizationType"],
            "apiKeyRequired": method["apiKeyRequired"],
            "requestParameters": method.get("requestParameters").cloned().unwrap_or(json!({})),
        });
        self.upstream_with(
            "apigateway",
            Method::PUT,
            path,
            Bytes::from(put.to_string()),
            Some("application/json"),
        )
        .await?;
        if let Some(responses) = method.get("methodResponses").and_then(Value::as_object) {
            for (status, response) in responses {
                self.upstream_with(
                    "apigateway",
                    Method::PUT,
                    &format!("{path}/responses/{status}"),
                    Bytes::from(response.to_string()),
                    Some("application/json"),
                )
                .await?;
            }
        }
        if let Some(integration) = method
            .get("methodIntegration")
            .filter(|value| value.is_object())
        {
            let mut put = integration.clone();
            if let Some(object) = put.as_object_mut() {
                object.remove("integrationResponses");
            }
            self.upstream_with(
                "apigateway",
                Method::PUT,
                &format!("{path}/integration"),
                Bytes::from(put.to_string()),
                Some("application/json"),
            )
            .await?;
            if let Some(responses) = integration
                .get("integrationResponses")
                .and_then(Value::as_object)
            {
                for (status, response) in responses {
                    self.upstream_with(
                        "apigateway",
                        Method::PUT,
                        &format!("{path}/integration/responses/{status}"),
                        Bytes::from(response.to_string()),
                        Some("application/json"),
                    )
                    .await?;
                }
            }
        }
        let (status, body) = self
            .upstream("apigateway", Method::GET, path, Bytes::new())
            .await?;
        let mut response = Response::new(full(body));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Some(response)
    }

    /// Whether the role named in `role_arn` exists and its trust policy lets
    /// `service` assume it.
    async fn role_trusts(&self, role_arn: &str, service: &str) -> bool {
        let name = role_arn.rsplit('/').next().unwrap_or(role_arn);
        let Some(answer) = self
            .iam_query(&[("Action", "GetRole"), ("RoleName", name)])
            .await
        else {
            return false;
        };
        let Some(document) = xml_texts(&answer, "AssumeRolePolicyDocument")
            .into_iter()
            .next()
        else {
            return false;
        };
        let document = percent_decode(xml_unescape(&document).as_bytes(), false);
        let Ok(document) = serde_json::from_str::<Value>(&document) else {
            return false;
        };
        statements(&document).any(|statement| {
            statement.get("Effect").and_then(Value::as_str) == Some("Allow")
                && one_or_many(statement.pointer("/Principal/Service"))
                    .any(|trusted| trusted == service)
                && one_or_many(statement.get("Action"))
                    .any(|action| wildcard_match(action, "sts:AssumeRole", true))
        })
    }

    // ---- S3 --------------------------------------------------------------

    async fn check_s3(&self, request: &StrictRequest) -> Option<(Rule, Response<ProxyBody>)> {
        let role = self.bound_role(request)?;
        let access = S3Access::of(request);
        let allowed = match &access {
            Some(access) => {
                let policies = self.role_policies(&role).await;
                allowed(&policies, access.action, &access.resource, &access.context)
            }
            None => false,
        };
        (!allowed).then(|| {
            let what = access.map_or_else(
                || format!("{} {}", request.method, request.raw_path),
                |access| format!("{} on resource: \"{}\"", access.action, access.resource),
            );
            (
                Rule::S3AccessDenied,
                s3_access_denied(
                    &request.method,
                    &format!(
                        "User: {} is not authorized to perform: {what}",
                        assumed_role_arn(&role)
                    ),
                ),
            )
        })
    }

    async fn observe_s3(
        &self,
        request: &StrictRequest,
        response: &mut hyper::http::response::Parts,
    ) -> Option<Bytes> {
        if response.status != StatusCode::NOT_FOUND {
            return None;
        }
        let role = self.bound_role(request)?;
        let access = S3Access::of(request)?;
        if access.action != "s3:GetObject" {
            return None;
        }
        let bucket_arn = access.resource.split('/').next()?.to_string();
        let policies = self.role_policies(&role).await;
        if allowed(&policies, "s3:ListBucket", &bucket_arn, &HashMap::new()) {
            return None;
        }
        self.count(Rule::S3MissingKeyForbidden);
        let denied = s3_access_denied(&request.method, "Access Denied");
        response.status = StatusCode::FORBIDDEN;
        response.headers = denied.headers().clone();
        let body = denied.into_body().collect().await.ok()?.to_bytes();
        Some(body)
    }

    // ---- Secrets Manager ---------------------------------------------------

    async fn check_secret(&self, request: &StrictRequest) -> Option<(Rule, Response<ProxyBody>)> {
        let role = self.bound_role(request)?;
        let operation = request
            .amz_target
            .as_deref()?
            .rsplit('.')
            .next()?
            .to_string();
        let body: Value = serde_json::from_slice(&request.body).ok()?;
        let secret = body.get("SecretId").and_then(Value::as_str)?;
        // A name cannot be matched against ARN patterns without the
        // secret's random suffix: only ARNs are evaluated.
        if !secret.starts_with("arn:") {
            return None;
        }
        let action = format!("secretsmanager:{operation}");
        let policies = self.role_policies(&role).await;
        if allowed(&policies, &action, secret, &HashMap::new()) {
            return None;
        }
        let message = format!(
            "User: {} is not authorized to perform: {action} on resource: {secret} because no identity-based policy allows the {action} action",
            assumed_role_arn(&role)
        );
        let body = json!({"__type": "AccessDeniedException", "Message": message}).to_string();
        let mut response = Response::new(full(body));
        *response.status_mut() = StatusCode::BAD_REQUEST;
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-amz-json-1.1"),
        );
        headers.insert(
            "x-amzn-errortype",
            HeaderValue::from_static("AccessDeniedException"),
        );
        headers.insert("x-amzn-requestid", HeaderValue::from_static("strict-aws"));
        Some((Rule::SecretAccessDenied, response))
    }

    // ---- identity ----------------------------------------------------------

    fn bound_role(&self, request: &StrictRequest) -> Option<String> {
        let key = request.access_key.as_deref()?;
        self.state().credentials.get(key).cloned()
    }

    /// The inline policy documents of `role`, read from moto now.
    async fn role_policies(&self, role: &str) -> Vec<Value> {
        let Some(list) = self
            .iam_query(&[("Action", "ListRolePolicies"), ("RoleName", role)])
            .await
        else {
            return Vec::new();
        };
        let mut documents = Vec::new();
        for name in xml_texts(&list, "member") {
            let name = xml_unescape(&name);
            let Some(answer) = self
                .iam_query(&[
                    ("Action", "GetRolePolicy"),
                    ("RoleName", role),
                    ("PolicyName", &name),
                ])
                .await
            else {
                continue;
            };
            for document in xml_texts(&answer, "PolicyDocument") {
                let text = percent_decode(xml_unescape(&document).as_bytes(), false);
                if let Ok(document) = serde_json::from_str(&text) {
                    documents.push(document);
                }
            }
        }
        documents
    }

    // ---- API Gateway pages ---------------------------------------------------

    /// One page of a GetRestApis / GetUsagePlans / GetApiKeys answer, as
    /// API Gateway pages it (the position is the index of the next item).
    fn observe_api_gateway_page(
        &self,
        request: &StrictRequest,
        status: StatusCode,
        body: &Bytes,
    ) -> Option<Bytes> {
        let paged = ["restapis", "usageplans", "apikeys"];
        if request.method != Method::GET
            || !status.is_success()
            || !matches!(request.segments().as_slice(), [collection] if paged.contains(&collection.as_str()))
        {
            return None;
        }
        let mut answer: Value = serde_json::from_slice(body).ok()?;
        let items = answer["item"].as_array()?.clone();
        let limit = request
            .query_value("limit")
            .and_then(|limit| limit.parse::<usize>().ok())
            .unwrap_or(25)
            .clamp(1, 500);
        let start = request
            .query_value("position")
            .and_then(|position| position.parse::<usize>().ok())
            .unwrap_or(0);
        let end = (start + limit).min(items.len());
        let page: Vec<Value> = items.get(start..end).unwrap_or_default().to_vec();
        answer["item"] = Value::Array(page);
        match answer.as_object_mut() {
            Some(object) if end < items.len() => {
                object.insert("position".into(), json!(end.to_string()));
                self.count(Rule::ApiGatewayPages);
            }
            Some(object) => {
                object.remove("position");
            }
            None => return None,
        }
        serde_json::to_vec(&answer).ok().map(Bytes::from)
    }

    // ---- Resource Groups Tagging API ---------------------------------------

    /// The last page of a GetResources answer, with the resources of the
    /// types moto's tagging API leaves out that match the tag filters.
    async fn observe_tagging(
        &self,
        request: &StrictRequest,
        status: StatusCode,
        body: &Bytes,
    ) -> Option<Bytes> {
        if !status.is_success()
            || !request
                .amz_target
                .as_deref()
                .is_some_and(|target| target.ends_with(".GetResources"))
        {
            return None;
        }
        let mut answer: Value = serde_json::from_slice(body).ok()?;
        if answer["PaginationToken"]
            .as_str()
            .is_some_and(|token| !token.is_empty())
        {
            return None;
        }
        let filters: Vec<(String, Vec<String>)> = serde_json::from_slice::<Value>(&request.body)
            .ok()?["TagFilters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|filter| {
                (
                    filter["Key"].as_str().unwrap_or_default().to_string(),
                    filter["Values"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|value| value.as_str().map(str::to_string))
                        .collect(),
                )
            })
            .collect();
        let matches = |tags: &BTreeMap<String, String>| {
            filters.iter().all(|(key, values)| {
                tags.get(key)
                    .is_some_and(|value| values.is_empty() || values.contains(value))
            })
        };
        let region = request.region.clone().unwrap_or_else(|| "us-east-1".into());
        let mut extra: Vec<(String, BTreeMap<String, String>)> = Vec::new();
        // ECR repositories.
        if let Some(repositories) = self
            .upstream_target(
                "ecr",
                "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories",
                json!({}),
            )
            .await
        {
            for repository in repositories["repositories"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let Some(arn) = repository["repositoryArn"].as_str() else {
                    continue;
                };
                let tags = self
                    .upstream_target(
                        "ecr",
                        "AmazonEC2ContainerRegistry_V20150921.ListTagsForResource",
                        json!({"resourceArn": arn}),
                    )
                    .await
                    .map(|answer| key_value_tags(&answer["tags"], "Key", "Value"))
                    .unwrap_or_default();
                extra.push((arn.to_string(), tags));
            }
        }
        // EventBridge rules of the default bus.
        if let Some(rules) = self
            .upstream_target("events", "AWSEvents.ListRules", json!({}))
            .await
        {
            for rule in rules["Rules"].as_array().into_iter().flatten() {
                let Some(arn) = rule["Arn"].as_str() else {
                    continue;
                };
                let tags = self
                    .upstream_target(
                        "events",
                        "AWSEvents.ListTagsForResource",
                        json!({"ResourceARN": arn}),
                    )
                    .await
                    .map(|answer| key_value_tags(&answer["Tags"], "Key", "Value"))
                    .unwrap_or_default();
                extra.push((arn.to_string(), tags));
            }
        }
        // API Gateway REST APIs, usage plans and API keys carry their tags.
        for collection in ["restapis", "usageplans", "apikeys"] {
            let Some(listed) = self
                .upstream_json(
                    "apigateway",
                    Method::GET,
                    &format!("/{collection}?limit=500"),
                )
                .await
            else {
                continue;
            };
            for item in listed["item"].as_array().into_iter().flatten() {
                let Some(id) = item["id"].as_str() else {
                    continue;
                };
                let tags: BTreeMap<String, String> = item["tags"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_string())))
                    .collect();
                extra.push((
                    format!("arn:aws:apigateway:{region}::/{collection}/{id}"),
                    tags,
                ));
            }
        }
        let list = answer["ResourceTagMappingList"].as_array_mut()?;
        let mut added = 0;
        let mut lingering = Vec::new();
        {
            let mut state = self.state();
            let lag = state.settings.tagging_lag;
            let now = Instant::now();
            for (arn, tags) in extra {
                if !matches(&tags)
                    || list
                        .iter()
                        .any(|mapping| mapping["ResourceARN"] == arn.as_str())
                {
                    continue;
                }
                list.push(json!({
                "ResourceARN": arn,
                "Tags": tags.iter().map(|(key, value)| json!({"Key": key, "Value": value})).collect::<Vec<_>>(),
            }));
                added += 1;
            }
            for mapping in list.iter() {
                if let Some(arn) = mapping["ResourceARN"].as_str() {
                    state
                        .tagged_seen
                        .insert(arn.to_string(), (mapping["Tags"].clone(), now));
                }
            }
            for (arn, (tags, seen)) in &state.tagged_seen {
                if now.duration_since(*seen) < lag
                    && matches(&key_value_tags(tags, "Key", "Value"))
                    && !list
                        .iter()
                        .any(|mapping| mapping["ResourceARN"] == arn.as_str())
                {
                    lingering.push(json!({"ResourceARN": arn, "Tags": tags}));
                }
            }
        }
        let lingered = !lingering.is_empty();
        list.extend(lingering);
        if added > 0 {
            self.count(Rule::TaggingListsEveryType);
        }
        if lingered {
            self.count(Rule::TaggingListsDeleted);
        }
        serde_json::to_vec(&answer).ok().map(Bytes::from)
    }

    /// A JSON 1.1 call to moto (`X-Amz-Target` protocols: ECR, EventBridge).
    async fn upstream_target(&self, service: &str, target: &str, body: Value) -> Option<Value> {
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("http://{}/", self.upstream))
            .header(HOST, self.upstream.to_string())
            .header(
                AUTHORIZATION,
                format!(
                    "AWS4-HMAC-SHA256 Credential=strict-aws/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"
                ),
            )
            .header(CONTENT_TYPE, "application/x-amz-json-1.1")
            .header("x-amz-target", target)
            .body(Full::new(Bytes::from(body.to_string())))
            .ok()?;
        let response = self.client.request(request).await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body = response.into_body().collect().await.ok()?.to_bytes();
        serde_json::from_slice(&body).ok()
    }

    // ---- calls to moto and registries --------------------------------------

    async fn iam_query(&self, parameters: &[(&str, &str)]) -> Option<String> {
        let mut form = String::from("Version=2010-05-08");
        for (key, value) in parameters {
            form.push('&');
            form.push_str(&form_encode(key));
            form.push('=');
            form.push_str(&form_encode(value));
        }
        let (status, body) = self
            .upstream_with(
                "iam",
                Method::POST,
                "/",
                Bytes::from(form),
                Some("application/x-www-form-urlencoded"),
            )
            .await?;
        status
            .is_success()
            .then(|| String::from_utf8_lossy(&body).into_owned())
    }

    async fn upstream_json(&self, service: &str, method: Method, path: &str) -> Option<Value> {
        let (status, body) = self.upstream(service, method, path, Bytes::new()).await?;
        if !status.is_success() {
            return None;
        }
        serde_json::from_slice(&body).ok()
    }

    async fn upstream(
        &self,
        service: &str,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Option<(StatusCode, Bytes)> {
        self.upstream_with(service, method, path, body, None).await
    }

    /// One request to moto, signed in form only: moto routes by the
    /// service named in the credential scope and checks no signature.
    async fn upstream_with(
        &self,
        service: &str,
        method: Method,
        path: &str,
        body: Bytes,
        content_type: Option<&str>,
    ) -> Option<(StatusCode, Bytes)> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.upstream))
            .header(HOST, self.upstream.to_string())
            .header(
                AUTHORIZATION,
                format!(
                    "AWS4-HMAC-SHA256 Credential=strict-aws/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"
                ),
            );
        if let Some(content_type) = content_type {
            builder = builder.header(CONTENT_TYPE, content_type);
        }
        let request = builder.body(Full::new(body)).ok()?;
        let response = self.client.request(request).await.ok()?;
        let status = response.status();
        let body = response.into_body().collect().await.ok()?.to_bytes();
        Some((status, body))
    }

    /// The media type and body of a manifest, asked for as Lambda's image
    /// pull would: any type, so that an index shows as one.
    async fn manifest(
        &self,
        host: &str,
        repository: &str,
        reference: &str,
    ) -> Option<(String, Value)> {
        let request = Request::builder()
            .uri(format!(
                "http://{host}/v2/{repository}/manifests/{reference}"
            ))
            .header(
                "Accept",
                "application/vnd.docker.distribution.manifest.v2+json, \
                 application/vnd.oci.image.manifest.v1+json, \
                 application/vnd.docker.distribution.manifest.list.v2+json, \
                 application/vnd.oci.image.index.v1+json",
            )
            .body(Full::new(Bytes::new()))
            .ok()?;
        let response = self.client.request(request).await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let header_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        let body = response.into_body().collect().await.ok()?.to_bytes();
        let manifest: Value = serde_json::from_slice(&body).ok()?;
        let media_type = manifest
            .get("mediaType")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or(header_type)
            .unwrap_or_default();
        Some((media_type, manifest))
    }

    async fn blob(&self, host: &str, repository: &str, digest: &str) -> Option<Value> {
        let request = Request::builder()
            .uri(format!("http://{host}/v2/{repository}/blobs/{digest}"))
            .body(Full::new(Bytes::new()))
            .ok()?;
        let response = self.client.request(request).await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body = response.into_body().collect().await.ok()?.to_bytes();
        serde_json::from_slice(&body).ok()
    }
}

impl std::fmt::Debug for StrictAws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StrictAws")
            .field("upstream", &self.upstream)
            .field("settings", &self.settings())
            .finish_non_exhaustive()
    }
}

/// What the strict rules look at in a request, taken before it is forwarded.
pub(crate) struct StrictRequest {
    method: Method,
    raw_path: String,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
    service: Option<String>,
    region: Option<String>,
    access_key: Option<String>,
    action: Option<String>,
    amz_target: Option<String>,
}

impl StrictRequest {
    pub(crate) fn new(parts: &hyper::http::request::Parts, body: &Bytes) -> StrictRequest {
        let scope = credential_scope(&parts.headers);
        let raw_path = parts.uri.path().to_string();
        let form = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
        StrictRequest {
            method: parts.method.clone(),
            path: percent_decode(raw_path.as_bytes(), false),
            raw_path,
            query: parts.uri.query().map(str::to_string),
            headers: parts.headers.clone(),
            body: body.clone(),
            access_key: scope.first().cloned(),
            region: scope.get(2).cloned(),
            service: scope.get(3).map(|service| service.to_ascii_lowercase()),
            action: form.then(|| form_field(body, "Action")).flatten(),
            amz_target: parts
                .headers
                .get("x-amz-target")
                .and_then(|value| value.to_str().ok())
                .map(str::to_string),
        }
    }

    /// The decoded path's segments, without empty ones.
    fn segments(&self) -> Vec<String> {
        self.path
            .split('/')
            .filter(|segment| !segment.is_empty())
            .map(str::to_string)
            .collect()
    }

    fn query_value(&self, name: &str) -> Option<String> {
        form_field(self.query.as_deref()?.as_bytes(), name)
    }

    fn query_has(&self, name: &str) -> bool {
        self.query.as_deref().is_some_and(|query| {
            query
                .split('&')
                .any(|pair| pair.split('=').next() == Some(name))
        })
    }

    fn function_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{name}",
            self.region.as_deref().unwrap_or("us-east-1"),
            crate::TEST_ACCOUNT
        )
    }
}

/// The Lambda operations the rules care about, by method and path.
enum LambdaOperation<'a> {
    Create,
    Get(&'a str),
    GetConfiguration(&'a str),
    UpdateConfiguration(&'a str),
    UpdateCode(&'a str),
    AddPermission(&'a str),
    RemovePermission(&'a str),
    PublishVersion(&'a str),
    PutConcurrency(&'a str),
    ListTags(&'a str),
    CreateAlias(&'a str),
    UpdateAlias(&'a str),
    Delete(&'a str),
}

impl<'a> LambdaOperation<'a> {
    fn of(request: &'a StrictRequest) -> Option<LambdaOperation<'a>> {
        let segments: Vec<&str> = request.path.split('/').filter(|s| !s.is_empty()).collect();
        let method = &request.method;
        Some(match segments.as_slice() {
            ["2015-03-31", "functions"] if method == Method::POST => LambdaOperation::Create,
            ["2015-03-31", "functions", name] if method == Method::GET => {
                LambdaOperation::Get(function_name(name))
            }
            ["2015-03-31", "functions", name, "configuration"] if method == Method::GET => {
                LambdaOperation::GetConfiguration(function_name(name))
            }
            ["2015-03-31", "functions", name, "configuration"] if method == Method::PUT => {
                LambdaOperation::UpdateConfiguration(function_name(name))
            }
            ["2015-03-31", "functions", name, "code"] if method == Method::PUT => {
                LambdaOperation::UpdateCode(function_name(name))
            }
            ["2015-03-31", "functions", name, "policy"] if method == Method::POST => {
                LambdaOperation::AddPermission(function_name(name))
            }
            ["2015-03-31", "functions", name, "policy", _] if method == Method::DELETE => {
                LambdaOperation::RemovePermission(function_name(name))
            }
            ["2015-03-31", "functions", name, "versions"] if method == Method::POST => {
                LambdaOperation::PublishVersion(function_name(name))
            }
            ["2015-03-31", "functions", name, "aliases"] if method == Method::POST => {
                LambdaOperation::CreateAlias(function_name(name))
            }
            ["2015-03-31", "functions", name, "aliases", _] if method == Method::PUT => {
                LambdaOperation::UpdateAlias(function_name(name))
            }
            ["2015-03-31", "functions", name] if method == Method::DELETE => {
                LambdaOperation::Delete(function_name(name))
            }
            ["2017-10-31", "functions", name, "concurrency"] if method == Method::PUT => {
                LambdaOperation::PutConcurrency(function_name(name))
            }
            ["2017-03-31", "tags", arn @ ..] if method == Method::GET => {
                // The ARN's own slashes (none in a function ARN) stay split.
                let arn = arn.first()?;
                LambdaOperation::ListTags(function_name(arn))
            }
            _ => return None,
        })
    }

    fn function(&self) -> Option<&'a str> {
        match self {
            LambdaOperation::Create => None,
            LambdaOperation::Get(name)
            | LambdaOperation::GetConfiguration(name)
            | LambdaOperation::UpdateConfiguration(name)
            | LambdaOperation::UpdateCode(name)
            | LambdaOperation::AddPermission(name)
            | LambdaOperation::RemovePermission(name)
            | LambdaOperation::PublishVersion(name)
            | LambdaOperation::PutConcurrency(name)
            | LambdaOperation::ListTags(name)
            | LambdaOperation::CreateAlias(name)
            | LambdaOperation::UpdateAlias(name)
            | LambdaOperation::Delete(name) => Some(name),
        }
    }

    /// Whether the operation changes the function (refused while busy).
    fn modifies(&self) -> bool {
        matches!(
            self,
            LambdaOperation::UpdateConfiguration(_)
                | LambdaOperation::UpdateCode(_)
                | LambdaOperation::AddPermission(_)
                | LambdaOperation::RemovePermission(_)
                | LambdaOperation::PublishVersion(_)
                | LambdaOperation::PutConcurrency(_)
        )
    }
}

/// Why Lambda refuses an alias as CreateAlias / UpdateAlias give it
/// (`name` for a new alias, or the one updated), if it does (see
/// [`Rule::AliasRouting`]).
fn alias_refusal(name: Option<&str>, body: &Value) -> Option<String> {
    if let Some(name) = name {
        let valid = (1..=128).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !name.bytes().all(|b| b.is_ascii_digit());
        if !valid {
            return Some(format!(
                "1 validation error detected: Value '{name}' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)"
            ));
        }
    }
    if let Some(description) = body.get("Description").and_then(Value::as_str)
        && description.chars().count() > 256
    {
        return Some(
            "1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 256".into(),
        );
    }
    let weights = body
        .pointer("/RoutingConfig/AdditionalVersionWeights")
        .and_then(Value::as_object)?;
    if weights.len() > 1 {
        return Some("Number of items in AdditionalVersionWeights cannot be greater than 1".into());
    }
    let target = body.get("FunctionVersion").and_then(Value::as_str);
    for (version, weight) in weights {
        if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
            return Some(format!(
                "Invalid function version {version}. Function version {version} is not a published version."
            ));
        }
        if target == Some(version.as_str()) {
            return Some(format!(
                "Invalid function version {version}: the alias's own version cannot be an additional version."
            ));
        }
        if !weight
            .as_f64()
            .is_some_and(|weight| (0.0..=1.0).contains(&weight))
        {
            return Some(format!(
                "1 validation error detected: Value '{weight}' at 'routingConfig.additionalVersionWeights' failed to satisfy constraint: Member must have value between 0.0 and 1.0"
            ));
        }
    }
    if !weights.is_empty() && target == Some("$LATEST") {
        return Some(
            "$LATEST is not supported for an alias pointing to more than 1 version".into(),
        );
    }
    None
}

/// The function name in a name, a `name:qualifier` or a (partial) ARN.
fn function_name(identifier: &str) -> &str {
    let tail = match identifier.split_once(":function:") {
        Some((_, tail)) => tail,
        None => identifier,
    };
    tail.split(':').next().unwrap_or(tail)
}

/// Sets the state fields of a function configuration as AWS reports them
/// while it is being created (`pending`) or updated.
fn set_state(configuration: &mut Value, pending: bool) {
    let Some(object) = configuration.as_object_mut() else {
        return;
    };
    if pending {
        object.insert("State".into(), json!("Pending"));
        object.insert(
            "StateReason".into(),
            json!("The function is being created."),
        );
        object.insert("StateReasonCode".into(), json!("Creating"));
    } else {
        object.insert("LastUpdateStatus".into(), json!("InProgress"));
        object.insert(
            "LastUpdateStatusReason".into(),
            json!("The function is being updated."),
        );
        object.insert("LastUpdateStatusReasonCode".into(), json!("Updating"));
    }
}

fn environment_too_large(body: &Value) -> Option<(Rule, Response<ProxyBody>)> {
    let variables = body.pointer("/Environment/Variables")?;
    let measured = variables.to_string();
    (measured.len() > 4096).then(|| {
        (
            Rule::EnvironmentTooLarge,
            lambda_error(
                400,
                "InvalidParameterValueException",
                &format!(
                    "Lambda was unable to configure your environment variables because the environment variables you have provided exceeded the 4KB limit. String measured: {} bytes",
                    measured.len()
                ),
            ),
        )
    })
}

/// The Region of an ECR registry host, `ACCOUNT.dkr.ecr.REGION.amazonaws.com`.
fn ecr_host_region(host: &str) -> Option<&str> {
    let rest = host.strip_suffix(".amazonaws.com")?;
    let mut parts = rest.splitn(4, '.');
    let account = parts.next()?;
    let (dkr, ecr, region) = (parts.next()?, parts.next()?, parts.next()?);
    (account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && dkr == "dkr"
        && ecr == "ecr")
        .then_some(region)
}

/// A Lambda REST-JSON error.
fn lambda_error(status: u16, error_type: &str, message: &str) -> Response<ProxyBody> {
    rest_json_error(
        status,
        error_type,
        json!({"Type": "User", "message": message}),
    )
}

/// An API Gateway REST-JSON error.
fn api_gateway_error(status: u16, error_type: &str, message: &str) -> Response<ProxyBody> {
    rest_json_error(status, error_type, json!({"message": message}))
}

fn rest_json_error(status: u16, error_type: &str, body: Value) -> Response<ProxyBody> {
    let mut response = Response::new(full(body.to_string()));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(value) = HeaderValue::from_str(error_type) {
        headers.insert("x-amzn-errortype", value);
    }
    headers.insert("x-amzn-requestid", HeaderValue::from_static("strict-aws"));
    response
}

/// S3's 403 AccessDenied; a HEAD answer has no body.
fn s3_access_denied(method: &Method, message: &str) -> Response<ProxyBody> {
    let body = if method == Method::HEAD {
        String::new()
    } else {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>{}</Message><RequestId>strict-aws</RequestId></Error>",
            xml_escape(message)
        )
    };
    let mut response = Response::new(full(body));
    *response.status_mut() = StatusCode::FORBIDDEN;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    headers.insert("x-amz-request-id", HeaderValue::from_static("strict-aws"));
    response
}

fn assumed_role_arn(role: &str) -> String {
    format!(
        "arn:aws:sts::{}:assumed-role/{role}/function",
        crate::TEST_ACCOUNT
    )
}

/// Tags given as a list of `{key_name: ..., value_name: ...}` objects.
fn key_value_tags(list: &Value, key_name: &str, value_name: &str) -> BTreeMap<String, String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|tag| {
            Some((
                tag[key_name].as_str()?.to_string(),
                tag[value_name].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// One S3 request as IAM sees it: the action, the resource and the
/// condition keys the request carries.
struct S3Access {
    action: &'static str,
    resource: String,
    context: HashMap<String, String>,
}

impl S3Access {
    /// The access `request` needs; `None` for requests the layer does not
    /// map (they are refused to bound roles).
    fn of(request: &StrictRequest) -> Option<S3Access> {
        let (bucket, key) = s3_bucket_and_key(request)?;
        let bucket_arn = format!("arn:aws:s3:::{bucket}");
        let subresources = [
            "tagging",
            "acl",
            "versioning",
            "policy",
            "lifecycle",
            "uploads",
            "retention",
            "legal-hold",
            "attributes",
        ];
        if subresources.iter().any(|name| request.query_has(name)) {
            return None;
        }
        let mut context = HashMap::new();
        let (action, resource) = match (&request.method, key) {
            (&Method::GET | &Method::HEAD, Some(key)) => {
                ("s3:GetObject", format!("{bucket_arn}/{key}"))
            }
            (&Method::PUT, Some(key)) => ("s3:PutObject", format!("{bucket_arn}/{key}")),
            (&Method::DELETE, Some(key)) => ("s3:DeleteObject", format!("{bucket_arn}/{key}")),
            (&Method::GET, None) if request.query_has("versions") => {
                ("s3:ListBucketVersions", bucket_arn)
            }
            (&Method::GET, None) => {
                if let Some(prefix) = request.query_value("prefix") {
                    context.insert("s3:prefix".to_string(), prefix);
                }
                if let Some(delimiter) = request.query_value("delimiter") {
                    context.insert("s3:delimiter".to_string(), delimiter);
                }
                ("s3:ListBucket", bucket_arn)
            }
            _ => return None,
        };
        Some(S3Access {
            action,
            resource,
            context,
        })
    }
}

/// The bucket and key of an S3 request, path-style or virtual-hosted.
fn s3_bucket_and_key(request: &StrictRequest) -> Option<(String, Option<String>)> {
    let host = request
        .headers
        .get(HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let host_name = host.split(':').next().unwrap_or_default();
    let virtual_bucket = host_name
        .split_once('.')
        .filter(|(first, _)| !first.bytes().all(|b| b.is_ascii_digit()))
        .map(|(first, _)| first.to_string());
    let path = request.path.trim_start_matches('/');
    match virtual_bucket {
        Some(bucket) => Some((bucket, (!path.is_empty()).then(|| path.to_string()))),
        None => {
            let (bucket, key) = match path.split_once('/') {
                Some((bucket, key)) => (bucket, (!key.is_empty()).then(|| key.to_string())),
                None => (path, None),
            };
            (!bucket.is_empty()).then(|| (bucket.to_string(), key))
        }
    }
}

// ---- IAM policy evaluation ---------------------------------------------------

/// Whether the identity policies `documents` allow `action` on `resource`
/// for a request carrying the condition keys `context`: an explicit deny
/// wins, then an allow, else the implicit deny (IAM user guide, "Policy
/// evaluation logic").
fn allowed(
    documents: &[Value],
    action: &str,
    resource: &str,
    context: &HashMap<String, String>,
) -> bool {
    let mut allow = false;
    for statement in documents.iter().flat_map(statements) {
        if !statement_applies(statement, action, resource, context) {
            continue;
        }
        match statement.get("Effect").and_then(Value::as_str) {
            Some("Deny") => return false,
            Some("Allow") => allow = true,
            _ => {}
        }
    }
    allow
}

fn statements(document: &Value) -> impl Iterator<Item = &Value> {
    let statement = document.get("Statement");
    let many = statement
        .and_then(Value::as_array)
        .map(|array| array.iter());
    let one = statement.filter(|value| value.is_object());
    many.into_iter().flatten().chain(one)
}

fn one_or_many(value: Option<&Value>) -> impl Iterator<Item = &str> {
    let many = value
        .and_then(Value::as_array)
        .map(|array| array.iter().filter_map(Value::as_str));
    let one = value.and_then(Value::as_str);
    many.into_iter().flatten().chain(one)
}

fn statement_applies(
    statement: &Value,
    action: &str,
    resource: &str,
    context: &HashMap<String, String>,
) -> bool {
    let action_matches = match (statement.get("Action"), statement.get("NotAction")) {
        (Some(actions), _) => {
            one_or_many(Some(actions)).any(|pattern| wildcard_match(pattern, action, true))
        }
        (None, Some(actions)) => {
            !one_or_many(Some(actions)).any(|pattern| wildcard_match(pattern, action, true))
        }
        (None, None) => false,
    };
    let resource_matches = match (statement.get("Resource"), statement.get("NotResource")) {
        (Some(resources), _) => {
            one_or_many(Some(resources)).any(|pattern| wildcard_match(pattern, resource, false))
        }
        (None, Some(resources)) => {
            !one_or_many(Some(resources)).any(|pattern| wildcard_match(pattern, resource, false))
        }
        (None, None) => false,
    };
    action_matches && resource_matches && conditions_hold(statement.get("Condition"), context)
}

/// Evaluates a `Condition` block for the string operators; a key the
/// request does not carry fails a positive operator and passes a negated
/// one or an `...IfExists` one (IAM user guide, "Condition operators"). An
/// operator this evaluator does not know fails: a grant it cannot read does
/// not count.
fn conditions_hold(condition: Option<&Value>, context: &HashMap<String, String>) -> bool {
    let Some(operators) = condition.and_then(Value::as_object) else {
        return true;
    };
    operators.iter().all(|(operator, keys)| {
        let (base, if_exists) = match operator.strip_suffix("IfExists") {
            Some(base) => (base, true),
            None => (operator.as_str(), false),
        };
        let Some(keys) = keys.as_object() else {
            return false;
        };
        keys.iter().all(|(key, expected)| {
            let value = context
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(key))
                .map(|(_, value)| value.as_str());
            let expected: Vec<&str> = one_or_many(Some(expected)).collect();
            let negated = base.starts_with("StringNot");
            let Some(value) = value else {
                return if_exists || negated;
            };
            let matched = match base {
                "StringEquals" | "StringNotEquals" => expected.contains(&value),
                "StringLike" | "StringNotLike" => expected
                    .iter()
                    .any(|pattern| wildcard_match(pattern, value, false)),
                _ => return false,
            };
            matched != negated
        })
    })
}

/// IAM's wildcard match: `*` any run of characters, `?` one character.
fn wildcard_match(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let (pattern, text): (Vec<char>, Vec<char>) = if ignore_case {
        (
            pattern.to_lowercase().chars().collect(),
            text.to_lowercase().chars().collect(),
        )
    } else {
        (pattern.chars().collect(), text.chars().collect())
    };
    let (mut p, mut t) = (0, 0);
    let (mut star, mut star_text) = (None, 0);
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some(p);
            star_text = t;
            p += 1;
        } else if let Some(star_at) = star {
            p = star_at + 1;
            star_text += 1;
            t = star_text;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

// ---- small parsers -------------------------------------------------------------

struct PatchOperation {
    op: String,
    path: String,
    value: Option<String>,
}

fn patch_operations(body: &[u8]) -> Vec<PatchOperation> {
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    body.get("patchOperations")
        .and_then(Value::as_array)
        .map(|operations| {
            operations
                .iter()
                .map(|operation| PatchOperation {
                    op: operation
                        .get("op")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    path: operation
                        .get("path")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    value: operation
                        .get("value")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The text of every `<tag>...</tag>` element, in order, still escaped.
fn xml_texts(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut texts = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else {
            break;
        };
        texts.push(after[..end].to_string());
        rest = &after[end + close.len()..];
    }
    texts
}

fn xml_unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// `application/x-www-form-urlencoded` encoding of one key or value.
fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(statement: Value) -> Vec<Value> {
        vec![json!({"Version": "2012-10-17", "Statement": [statement]})]
    }

    #[test]
    fn wildcards_match_as_iam_does() {
        assert!(wildcard_match("s3:Get*", "s3:GetObject", true));
        assert!(wildcard_match("S3:getobject", "s3:GetObject", true));
        assert!(!wildcard_match(
            "arn:aws:s3:::b/models/*",
            "arn:aws:s3:::b/other",
            false
        ));
        assert!(wildcard_match(
            "arn:aws:secretsmanager:*:secret:tok-??????",
            "arn:aws:secretsmanager:r:secret:tok-AbC123",
            false
        ));
        assert!(!wildcard_match(
            "arn:aws:secretsmanager:*:secret:tok-??????",
            "arn:aws:secretsmanager:r:secret:tok-AbC1234",
            false
        ));
    }

    #[test]
    fn a_prefix_condition_never_grants_a_request_without_a_prefix() {
        let documents = policy(json!({
            "Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b",
            "Condition": {"StringLike": {"s3:prefix": ["models/*"]}}
        }));
        let none = HashMap::new();
        assert!(!allowed(
            &documents,
            "s3:ListBucket",
            "arn:aws:s3:::b",
            &none
        ));
        let models = HashMap::from([("s3:prefix".to_string(), "models/a".to_string())]);
        assert!(allowed(
            &documents,
            "s3:ListBucket",
            "arn:aws:s3:::b",
            &models
        ));
        let other = HashMap::from([("s3:prefix".to_string(), "secret/".to_string())]);
        assert!(!allowed(
            &documents,
            "s3:ListBucket",
            "arn:aws:s3:::b",
            &other
        ));
    }

    #[test]
    fn an_explicit_deny_wins() {
        let documents = vec![json!({"Statement": [
            {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::b/*"}
        ]})];
        let none = HashMap::new();
        assert!(allowed(
            &documents,
            "s3:GetObject",
            "arn:aws:s3:::b/k",
            &none
        ));
        assert!(!allowed(
            &documents,
            "s3:PutObject",
            "arn:aws:s3:::b/k",
            &none
        ));
    }

    #[test]
    fn function_names_come_out_of_arns_and_qualifiers() {
        assert_eq!(function_name("f"), "f");
        assert_eq!(function_name("f:live"), "f");
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:123456789012:function:f:3"),
            "f"
        );
    }

    #[test]
    fn ecr_hosts_name_their_region() {
        assert_eq!(
            ecr_host_region("123456789012.dkr.ecr.eu-west-1.amazonaws.com"),
            Some("eu-west-1")
        );
        assert_eq!(ecr_host_region("127.0.0.1:5000"), None);
        assert_eq!(ecr_host_region("ghcr.io"), None);
    }
}
