//! Queries in, rows out: pgwire's simple and extended query protocols over the [`QueryRunner`].
//!
//! Owns: what a prepared statement remembers (its rewritten text, columns and parameter
//! types), binding parameters, encoding answers (text or binary, per column, by `arrow-pg`),
//! and each refusal's SQLSTATE. Must not touch: planning rules and limits (`crate::sql`).
//!
//! [`QueryRunner`]: crate::sql::QueryRunner

use std::fmt::Debug;
use std::sync::Arc;

use arrow::datatypes::DataType;
use async_trait::async_trait;
use datafusion::common::metadata::ScalarAndMetadata;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::arrow_pg::datatypes::df::deserialize_parameters;
use datafusion_postgres::arrow_pg::datatypes::{
    arrow_schema_to_pg_fields, encode_recordbatch, into_pg_type,
};
use datafusion_postgres::pgwire;
use futures::{Sink, StreamExt};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, QueryResponse, Response};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::types::format::FormatOptions;

use super::{session, PgService};
use crate::sql::postgres::{position_in_original, Described};
use crate::sql::tables::Table;
use crate::sql::{QueryResult, Request, SqlError};

/// A parsed statement, as the extended protocol keeps it between Parse and Execute.
#[derive(Debug, Clone)]
pub(super) struct Prepared {
    /// What the client sent (error positions point into it).
    original: String,
    /// The statement after the client-SQL rewrites, as DataFusion plans it.
    sql: String,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// A query: its columns and parameter types.
    Query(Described),
    /// `SET`, `SHOW`, a transaction: answered by [`session`].
    Session(Box<Statement>),
}

/// The query handlers of one connection.
pub(super) struct Queries {
    service: Arc<PgService>,
}

impl Queries {
    pub(super) fn new(service: Arc<PgService>) -> Queries {
        Queries { service }
    }

    /// Parses and rewrites `sql`, and prints each statement back as the text DataFusion will
    /// plan, on the query threads (deep statements need their stacks).
    async fn parse(&self, sql: &str) -> PgWireResult<Vec<(Statement, String)>> {
        let flavor = self.service.flavor.clone();
        let text = sql.to_string();
        self.service
            .queries
            .on_query_threads(async move {
                flavor.parse(&text).map(|statements| {
                    statements
                        .into_iter()
                        .map(|s| {
                            let printed = s.to_string();
                            (s, printed)
                        })
                        .collect()
                })
            })
            .await
            .and_then(|parsed| parsed)
            .map_err(|e| sql_error(e, sql, sql))
    }

    /// Runs one rewritten statement through the service's runner, stopping when the client
    /// hangs up.
    async fn run(
        &self,
        peer: std::net::SocketAddr,
        original: &str,
        sql: &str,
        params: Option<ParamValues>,
    ) -> PgWireResult<QueryResult> {
        let lower = sql.to_lowercase();
        // A statement that names none of gatewatch's tables (a catalogue query, `SELECT 1`)
        // needs no snapshot of the engine.
        let snapshot = if Table::ALL.iter().any(|t| lower.contains(t.name())) {
            self.service.snapshot().await
        } else {
            Ok(self.service.flavor.empty_snapshot())
        }
        .map_err(|m| error("XX000", m))?;
        let request = Request {
            sql,
            params,
            postgres: Some(self.service.flavor.clone()),
        };
        let run = self.service.queries.run_request(snapshot, request);
        tokio::select! {
            r = run => r.map_err(|e| sql_error(e, original, sql)),
            _ = self.service.hung_up(peer) => Err(error("08006", "the client hung up; the query was stopped".into())),
        }
    }
}

/// A PostgreSQL error with `code` (SQLSTATE).
fn error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        code.into(),
        message,
    )))
}

/// A refusal or failure of the SQL layer, with its SQLSTATE and, where DataFusion says, the
/// position in what the client sent.
fn sql_error(e: SqlError, original: &str, planned: &str) -> PgWireError {
    let code = match &e {
        SqlError::ReadOnly(_) => "25006",
        SqlError::Timeout(_) => "57014",
        SqlError::TooManyRows(_) | SqlError::TooLarge(_) => "54000",
        SqlError::OutOfMemory(_) => "53200",
        SqlError::TooDeep(_) => "54001",
        SqlError::Busy(_) => "53000",
        SqlError::Query(m, _) => query_code(m),
    };
    let position = match &e {
        SqlError::Query(_, Some(at)) => position_in_original(original, planned, *at),
        _ => None,
    };
    let message = match e {
        SqlError::Query(m, _) => m,
        other => other.to_string(),
    };
    let mut info = ErrorInfo::new("ERROR".into(), code.into(), message);
    info.position = position.map(|p| p.to_string());
    PgWireError::UserError(Box::new(info))
}

/// SQLSTATE of a DataFusion error, from its wording.
fn query_code(message: &str) -> &'static str {
    let m = message.to_ascii_lowercase();
    if m.contains("not found") && m.contains("table") {
        "42P01"
    } else if m.contains("no field named") || m.contains("column") && m.contains("not found") {
        "42703"
    } else if m.contains("invalid function") || m.contains("function") && m.contains("not found") {
        "42883"
    } else if m.starts_with("expected") || m.contains("parser error") || m.contains("syntax") {
        "42601"
    } else if m.contains("divide by zero") {
        "22012"
    } else if m.contains("cast") {
        "22P02"
    } else {
        "42000"
    }
}

/// The answer's rows, encoded per column in `format` (text or binary) as the client asked.
fn respond(
    result: QueryResult,
    format: &Format,
    client: &(impl ClientInfo + ?Sized),
) -> PgWireResult<Response> {
    let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
    let fields = Arc::new(arrow_schema_to_pg_fields(
        &result.schema,
        format,
        Some(options),
    )?);
    let encode_with = fields.clone();
    let rows = futures::stream::iter(result.batches)
        .flat_map(move |b| futures::stream::iter(encode_recordbatch(encode_with.clone(), b)));
    Ok(Response::Query(QueryResponse::new(fields, rows)))
}

#[async_trait]
impl SimpleQueryHandler for Queries {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statements = self.parse(query).await?;
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let single = statements.len() == 1;
        let mut responses = Vec::with_capacity(statements.len());
        for (statement, sql) in statements {
            if let Some(answer) = session::answer(client, &statement) {
                responses.push(answer?);
                continue;
            }
            // Positions are only meaningful against the one statement the client wrote.
            let original = if single { query } else { sql.as_str() };
            let result = self.run(client.socket_addr(), original, &sql, None).await?;
            responses.push(respond(result, &Format::UnifiedText, client)?);
        }
        Ok(responses)
    }
}

#[async_trait]
impl QueryParser for Queries {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let mut statements = self.parse(sql).await?;
        if statements.len() > 1 {
            return Err(error(
                "42601",
                "cannot insert multiple commands into a prepared statement".into(),
            ));
        }
        let Some((statement, planned)) = statements.pop() else {
            return Ok(None);
        };
        let kind = if is_session(&statement) {
            Kind::Session(Box::new(statement))
        } else {
            let flavor = self.service.flavor.clone();
            let text = planned.clone();
            Kind::Query(
                self.service
                    .queries
                    .on_query_threads(async move { flavor.describe(&text).await })
                    .await
                    .and_then(|described| described)
                    .map_err(|e| sql_error(e, sql, &planned))?,
            )
        };
        Ok(Some(Prepared {
            original: sql.to_string(),
            sql: planned,
            kind,
        }))
    }

    fn get_parameter_types(&self, stmt: &Prepared) -> PgWireResult<Vec<Type>> {
        match &stmt.kind {
            Kind::Query(d) => d
                .params
                .iter()
                .map(|t| t.as_ref().map_or(Ok(Type::UNKNOWN), into_pg_type))
                .collect(),
            Kind::Session(_) => Ok(vec![]),
        }
    }

    fn get_result_schema(
        &self,
        stmt: &Prepared,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        let format = column_format.unwrap_or(&Format::UnifiedText);
        match &stmt.kind {
            Kind::Query(d) => arrow_schema_to_pg_fields(&d.schema, format, None),
            Kind::Session(s) => Ok(match s.as_ref() {
                Statement::ShowVariable { variable } => {
                    vec![session::show_field(&session::shown_name(variable))]
                }
                _ => vec![],
            }),
        }
    }
}

fn is_session(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Discard { .. }
            | Statement::Deallocate { .. }
            | Statement::Set(_)
            | Statement::ShowVariable { .. }
    )
}

/// The values bound to a portal, decoded by arrow-pg from the types the client named, else the
/// planned ones. A NULL that neither names is decoded as a text NULL: arrow-pg would leave it
/// out of the list (and every later value would shift by one).
fn bound_values(
    portal: &Portal<Prepared>,
    planned: &[Option<DataType>],
) -> PgWireResult<ParamValues> {
    let statement = &portal.statement;
    let mut hints = statement.parameter_types.clone();
    hints.resize(portal.parameters.len(), None);
    for (i, value) in portal.parameters.iter().enumerate() {
        let unnamed = hints[i].as_ref().is_none_or(|t| *t == Type::UNKNOWN);
        let unplanned = planned.get(i).is_none_or(Option::is_none);
        if value.is_none() && unnamed && unplanned {
            hints[i] = Some(Type::TEXT);
        }
    }
    let mut copy = Portal::<()>::default();
    copy.statement = Arc::new(StoredStatement::new(statement.id.clone(), (), hints));
    copy.parameter_format = portal.parameter_format.clone();
    copy.parameters = portal.parameters.clone();
    let types: Vec<Option<&DataType>> = planned.iter().map(Option::as_ref).collect();
    deserialize_parameters(&copy, &types)
}

/// A text array parameter (`{"gw-01","gw-06"}`, as node-postgres sends a JS array) arrives from
/// arrow-pg split at the commas with each element's quotes still on; PostgreSQL's array syntax
/// quotes an element with `"` and escapes `"` and `\` inside with `\`.
fn unquote_elements(value: ScalarValue) -> ScalarValue {
    let ScalarValue::List(list) = &value else {
        return value;
    };
    let Some(items) = list
        .values()
        .as_any()
        .downcast_ref::<arrow::array::StringArray>()
    else {
        return value;
    };
    let unquoted: Vec<ScalarValue> = items
        .iter()
        .map(|item| {
            ScalarValue::Utf8(item.map(|s| {
                match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                    Some(inner) => {
                        let mut out = String::with_capacity(inner.len());
                        let mut chars = inner.chars();
                        while let Some(c) = chars.next() {
                            out.push(if c == '\\' {
                                chars.next().unwrap_or(c)
                            } else {
                                c
                            });
                        }
                        out
                    }
                    None => s.to_string(),
                }
            }))
        })
        .collect();
    ScalarValue::List(ScalarValue::new_list_nullable(&unquoted, &DataType::Utf8))
}

/// Bound values as the types DataFusion planned for them: a client may send a `timestamptz`
/// for a millisecond column, or an `int4` for a `bigint` one.
fn coerce(params: ParamValues, planned: &[Option<DataType>]) -> PgWireResult<ParamValues> {
    let ParamValues::List(values) = params else {
        return Ok(params);
    };
    let values = values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let (value, metadata) = v.into_inner();
            let value = unquote_elements(value);
            let value = match planned.get(i).and_then(Option::as_ref) {
                Some(t) if value.data_type() != *t && !value.is_null() => {
                    value.cast_to(t).map_err(|e| {
                        error(
                            "22P02",
                            format!("parameter ${} cannot be read as {t}: {e}", i + 1),
                        )
                    })?
                }
                Some(t) if value.is_null() => ScalarValue::try_from(t)
                    .map_err(|e| error("22P02", format!("parameter ${}: {e}", i + 1)))?,
                _ => value,
            };
            Ok(ScalarAndMetadata::new(value, metadata))
        })
        .collect::<PgWireResult<Vec<_>>>()?;
    Ok(ParamValues::List(values))
}

#[async_trait]
impl ExtendedQueryHandler for Queries {
    type Statement = Prepared;
    type QueryParser = Queries;

    fn query_parser(&self) -> Arc<Queries> {
        Arc::new(Queries::new(self.service.clone()))
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = &portal.statement.statement;
        match &prepared.kind {
            Kind::Session(statement) => session::answer(client, statement)
                .unwrap_or_else(|| Err(error("XX000", "not a session statement".into()))),
            Kind::Query(described) => {
                let params = (!portal.parameters.is_empty())
                    .then(|| coerce(bound_values(portal, &described.params)?, &described.params))
                    .transpose()?;
                let result = self
                    .run(
                        client.socket_addr(),
                        &prepared.original,
                        &prepared.sql,
                        params,
                    )
                    .await?;
                respond(result, &portal.result_column_format, client)
            }
        }
    }
}
