//! A statement of a function's resource policy that lets one AWS service
//! invoke it, scoped to one source (a route of the REST API, the schedule
//! rule). AWS cannot change a statement in place: a change replaces it.

use serde_json::{Value, json};

use super::{Context, Observed, Result, aws_error, done_or};
use crate::field::{FieldDiff, Fields};
use crate::ownership::Ownership;

/// Every field: a statement is replaced whenever it differs.
pub const REPLACEMENT_FIELDS: &[&str] = &["principal", "action", "source_arn"];

#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    /// `<function name>:<statement id>`, the resource's name in plans.
    pub id: String,
    pub function: String,
    pub statement_id: String,
    /// `apigateway.amazonaws.com`, `events.amazonaws.com`.
    pub principal: String,
    pub source_arn: String,
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
        let Some(statement) = policy["Statement"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|statement| statement["Sid"] == self.statement_id.as_str())
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

    pub async fn create(&self, ctx: &Context) -> Result<()> {
        let result = ctx
            .clients
            .lambda
            .add_permission()
            .function_name(&self.function)
            .statement_id(&self.statement_id)
            .action("lambda:InvokeFunction")
            .principal(&self.principal)
            .source_arn(&self.source_arn)
            .send()
            .await;
        // A retried create whose first answer was lost: the statement exists.
        done_or(result, "AddPermission", |e| {
            e.is_resource_conflict_exception()
        })
    }

    /// Nothing changes in place; replacement goes through delete and create.
    pub async fn update(&self, ctx: &Context, _diffs: &[FieldDiff]) -> Result<()> {
        self.delete(ctx).await?;
        self.create(ctx).await
    }

    pub async fn delete(&self, ctx: &Context) -> Result<()> {
        done_or(
            ctx.clients
                .lambda
                .remove_permission()
                .function_name(&self.function)
                .statement_id(&self.statement_id)
                .send()
                .await,
            "RemovePermission",
            |e| e.is_resource_not_found_exception(),
        )
    }
}
