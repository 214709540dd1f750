//! The statements clients send that are not queries: `SET` and `SHOW` of the harmless session
//! settings, and transactions (every statement only reads, so `BEGIN`, `COMMIT` and `ROLLBACK`
//! have nothing to do but keep the client's bookkeeping right).
//!
//! Owns: which settings may be set and what `SHOW` answers. Must not touch: planning (a `SET`
//! never reaches DataFusion, whose own settings stay out of clients' reach).

use std::sync::Arc;

use datafusion::sql::sqlparser::ast::{Expr, Ident, Set, Statement, Value};
use datafusion_postgres::pgwire;

use crate::sql::postgres::setting_default;
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::{ClientInfo, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};

/// Settings a client may `SET`: what drivers send as they connect. The value is kept for the
/// connection and shown back; the ones that change how values are written (`DateStyle`,
/// `extra_float_digits`, `bytea_output`, `IntervalStyle`) are honoured by the encoder.
const SETTABLE: [&str; 8] = [
    "datestyle",
    "client_encoding",
    "extra_float_digits",
    "application_name",
    "search_path",
    "bytea_output",
    "intervalstyle",
    "statement_timeout",
];

/// The name PostgreSQL reports a setting under in `ParameterStatus`.
fn reported_name(name: &str) -> &str {
    match name {
        "datestyle" => "DateStyle",
        "intervalstyle" => "IntervalStyle",
        "timezone" => "TimeZone",
        other => other,
    }
}

fn error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        code.into(),
        message,
    )))
}

/// The answer to a session statement, or None when `statement` is a query for DataFusion.
/// `Some(Err)` is a refusal with its SQLSTATE.
pub(super) fn answer<C: ClientInfo>(
    client: &mut C,
    statement: &Statement,
) -> Option<PgWireResult<Response>> {
    Some(match statement {
        Statement::StartTransaction { .. } => Ok(Response::TransactionStart(Tag::new("BEGIN"))),
        Statement::Commit { .. } => Ok(Response::TransactionEnd(Tag::new("COMMIT"))),
        Statement::Rollback { .. } => Ok(Response::TransactionEnd(Tag::new("ROLLBACK"))),
        Statement::Discard { .. } => Ok(Response::Execution(Tag::new("DISCARD ALL"))),
        Statement::Deallocate { .. } => Ok(Response::Execution(Tag::new("DEALLOCATE"))),
        Statement::Set(set) => set_statement(client, set),
        Statement::ShowVariable { variable } => show(client, &shown_name(variable)),
        _ => return None,
    })
}

/// The text of a `SET`'s value: `'ISO, MDY'`, `3`, `public, "$user"`.
fn value_text(values: &[Expr]) -> String {
    values
        .iter()
        .map(|v| match v {
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
                other => other.to_string(),
            },
            Expr::Identifier(i) => i.value.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn set_statement<C: ClientInfo>(client: &mut C, set: &Set) -> PgWireResult<Response> {
    match set {
        Set::SingleAssignment {
            variable, values, ..
        } => {
            let name = variable.to_string().to_lowercase();
            let value = value_text(values);
            if name == "timezone" || name == "time zone" {
                return set_time_zone(&value);
            }
            if !SETTABLE.contains(&name.as_str()) {
                return Err(error(
                    "0A000",
                    format!("SET {name} is not supported: gatewatch SQL is read-only and keeps only the settings clients send as they connect ({})", SETTABLE.join(", ")),
                ));
            }
            if name == "client_encoding"
                && !matches!(value.to_uppercase().replace('-', "").as_str(), "UTF8" | "UNICODE")
            {
                return Err(error(
                    "22023",
                    format!("client_encoding {value:?} is not supported: gatewatch speaks UTF8"),
                ));
            }
            client.metadata_mut().insert(name, value);
            Ok(Response::Execution(Tag::new("SET")))
        }
        Set::SetTimeZone { value, .. } => set_time_zone(&value_text(std::slice::from_ref(value))),
        Set::SetTransaction { .. } | Set::SetSessionParam(_) => {
            Ok(Response::Execution(Tag::new("SET")))
        }
        other => Err(error(
            "0A000",
            format!("{other} is not supported: gatewatch SQL is read-only and keeps only the settings clients send as they connect ({})", SETTABLE.join(", ")),
        )),
    }
}

/// Answers are in UTC (timestamps with zone, written as +00); a client may say so, not more.
fn set_time_zone(value: &str) -> PgWireResult<Response> {
    let v = value
        .trim_matches(|c| c == '\'' || c == '"')
        .to_ascii_uppercase();
    if matches!(
        v.as_str(),
        "UTC" | "ETC/UTC" | "GMT" | "Z" | "ZULU" | "0" | "+00" | "+00:00" | "DEFAULT" | "LOCAL"
    ) {
        Ok(Response::Execution(Tag::new("SET")))
    } else {
        Err(error(
            "22023",
            format!("time zone {value:?} is not supported: gatewatch answers in UTC; convert in the query with AT TIME ZONE or in the client"),
        ))
    }
}

fn show<C: ClientInfo>(client: &C, name: &str) -> PgWireResult<Response> {
    let key = match name {
        "time zone" => "timezone",
        "transaction isolation level" => "transaction_isolation",
        other => other,
    };
    let value = match client.metadata().get(key) {
        Some(v) if SETTABLE.contains(&key) => v.clone(),
        _ => setting_default(key)
            .ok_or_else(|| {
                error(
                    "42704",
                    format!("unrecognized configuration parameter \"{name}\""),
                )
            })?
            .to_string(),
    };
    let fields = Arc::new(vec![FieldInfo::new(
        reported_name(key).to_string(),
        None,
        None,
        Type::TEXT,
        FieldFormat::Text,
    )]);
    let mut row = DataRowEncoder::new(fields.clone());
    row.encode_field(&Some(value))?;
    let rows = futures::stream::iter(vec![Ok(row.take_row())]);
    Ok(Response::Query(QueryResponse::new(fields, rows)))
}

/// The setting a `SHOW` names, lower-cased (`SHOW TIME ZONE` is `time zone`).
pub(super) fn shown_name(variable: &[Ident]) -> String {
    variable
        .iter()
        .map(|i| i.value.to_lowercase())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The one-column schema of `SHOW name` (what Describe tells before it runs).
pub(super) fn show_field(name: &str) -> FieldInfo {
    FieldInfo::new(
        reported_name(name).to_string(),
        None,
        None,
        Type::TEXT,
        FieldFormat::Text,
    )
}
