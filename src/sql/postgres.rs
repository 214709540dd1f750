//! The PostgreSQL flavour of gatewatch's SQL, for the front door that psql, Grafana, DBeaver and
//! psycopg connect to (`crate::pg`).
//!
//! Owns: PostgreSQL's dialect; the `pg_catalog` schema and functions that clients browse
//! (`datafusion-pg-catalog`, over gatewatch's six tables); the rewrites of client SQL that
//! DataFusion would not plan (`OPERATOR(pg_catalog.~)`, `::regclass`, `COLLATE`, `ANY(array)`,
//! from the same crate); describing a statement (columns, parameter types) without running it.
//! Must not touch: the wire protocol, sessions and authentication (that is `pg`), engine state.
//!
//! One `pg_catalog` lives as long as the front door: object ids are handed out as tables are
//! first listed and clients keep them between queries (psql's `\d` asks for the id, then for the
//! columns of that id), so every query's context shares the one schema provider of a template
//! context whose tables have the live tables' names and columns, and no rows.

use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
    MemorySchemaProvider, SchemaProvider,
};
use datafusion::execution::context::{SessionConfig, SessionContext, SessionState};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::setup_pg_catalog;
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;

use super::{plan, register_functions, register_tables, session_config, Location, SqlError};
use crate::config::EngineConfig;
use crate::state::{Engine, Snapshot};

/// The version clients are told (`server_version`, `SELECT version()`): PostgreSQL's protocol
/// and catalogue of version 16, served by gatewatch.
pub const SERVER_VERSION: &str = concat!("16.6 (gatewatch ", env!("CARGO_PKG_VERSION"), ")");

/// The catalogue and schema names clients see (`current_database()`, `current_schema()`).
pub const DATABASE: &str = "gatewatch";
/// The schema of gatewatch's six tables.
pub const SCHEMA: &str = "public";

/// What a client learns of a statement before it runs (the extended protocol's Describe).
#[derive(Debug, Clone)]
pub struct Described {
    /// The columns it answers with.
    pub schema: SchemaRef,
    /// The types of `$1`, `$2`, ... as DataFusion infers them from where they are used (None:
    /// nothing tells, the client's text is taken as text).
    pub params: Vec<Option<DataType>>,
}

/// PostgreSQL's flavour of gatewatch's SQL: the template context and the client-SQL rewriter.
pub struct PgFlavor {
    template: SessionState,
    parser: PostgresCompatibilityParser,
    /// The template's `pg_catalog`, shared by every query's context.
    pg_catalog: Arc<dyn SchemaProvider>,
    /// `information_schema`, fixed at start.
    information_schema: Arc<dyn SchemaProvider>,
    /// No rows: what a query that reads none of gatewatch's tables runs over.
    empty: Arc<Snapshot>,
}

impl std::fmt::Debug for PgFlavor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgFlavor").finish_non_exhaustive()
    }
}

/// What `SHOW` and `current_setting()` answer for a setting no client has changed: PostgreSQL's
/// values where they apply, gatewatch's facts where they differ (read-only, UTC).
pub fn setting_default(name: &str) -> Option<&'static str> {
    Some(match name {
        "datestyle" => "ISO, MDY",
        "client_encoding" | "server_encoding" => "UTF8",
        "extra_float_digits" => "1",
        "application_name" => "",
        "search_path" => "public",
        "bytea_output" => "hex",
        "intervalstyle" => "postgres",
        "statement_timeout" | "lock_timeout" | "idle_in_transaction_session_timeout" => "0",
        "timezone" => "UTC",
        "server_version" => SERVER_VERSION,
        "server_version_num" => "160006",
        "standard_conforming_strings" => "on",
        "integer_datetimes" => "on",
        "transaction_isolation" | "default_transaction_isolation" => "read committed",
        "transaction_read_only" | "default_transaction_read_only" => "on",
        "is_superuser" => "off",
        "max_identifier_length" => "63",
        "lc_collate" | "lc_ctype" | "lc_messages" | "lc_monetary" | "lc_numeric" | "lc_time" => "C",
        "max_connections" => "64",
        _ => return None,
    })
}

/// PostgreSQL's SQL-standard name of a column type, as `information_schema.columns.data_type`
/// gives it (`timestamp with time zone`, `bigint`, ...).
fn standard_type_name(t: &DataType) -> String {
    use datafusion_postgres::pgwire::api::Type;
    let Ok(pg) = datafusion_postgres::arrow_pg::datatypes::into_pg_type(t) else {
        return "text".into();
    };
    match pg {
        Type::TIMESTAMPTZ => "timestamp with time zone",
        Type::TIMESTAMP => "timestamp without time zone",
        Type::INT8 => "bigint",
        Type::INT4 => "integer",
        Type::INT2 => "smallint",
        Type::FLOAT8 => "double precision",
        Type::FLOAT4 => "real",
        Type::BOOL => "boolean",
        Type::BYTEA => "bytea",
        Type::TEXT | Type::VARCHAR => "text",
        Type::NUMERIC => "numeric",
        Type::DATE => "date",
        Type::TIME => "time without time zone",
        Type::INTERVAL => "interval",
        ref other if other.name().starts_with('_') => "ARRAY",
        ref other => return other.name().to_string(),
    }
    .into()
}

fn pg_config(partitions: usize) -> SessionConfig {
    let mut config = session_config(partitions)
        .with_default_catalog_and_schema(DATABASE, SCHEMA)
        // The catalogue's own information_schema (PostgreSQL's type names) stands in for
        // DataFusion's; see `information_schema`.
        .with_information_schema(false);
    config
        .options_mut()
        .set("datafusion.sql_parser.dialect", "postgresql")
        .expect("postgresql is one of DataFusion's dialects");
    // Where in the text a planning error is: PostgreSQL clients show it under the query.
    config
        .options_mut()
        .set("datafusion.sql_parser.collect_spans", "true")
        .expect("a known option");
    config
}

impl PgFlavor {
    /// The template: gatewatch's tables over an empty snapshot, the hdr functions, and
    /// `pg_catalog`. The template's tables are plain ones even when the queries' span an
    /// archive (a union of two scans, which the catalogue would list as a view): the columns
    /// are the same, and `\dt` lists tables.
    pub async fn new() -> Result<PgFlavor, SqlError> {
        let ctx = SessionContext::new_with_config(pg_config(1).with_information_schema(true));
        let empty = Arc::new(Engine::new(EngineConfig::default()).snapshot());
        register_tables(&ctx, empty.clone(), None);
        register_functions(&ctx);
        setup_pg_catalog(&ctx, DATABASE, EmptyContextProvider).map_err(|e| SqlError::from(*e))?;
        // What PostgreSQL answers, which clients parse ("PostgreSQL 16.6 ..."), in place of
        // DataFusion's own version().
        ctx.register_udf(datafusion::logical_expr::create_udf(
            "version",
            vec![],
            DataType::Utf8,
            datafusion::logical_expr::Volatility::Immutable,
            Arc::new(|_| {
                Ok(datafusion::logical_expr::ColumnarValue::Scalar(
                    datafusion::common::ScalarValue::Utf8(Some(format!(
                        "PostgreSQL {SERVER_VERSION}, read-only, on Apache DataFusion"
                    ))),
                ))
            }),
        ));
        let catalog = ctx.catalog(DATABASE).expect("the default catalogue exists");
        let inner = catalog
            .schema("pg_catalog")
            .expect("setup_pg_catalog registers pg_catalog");
        let functions = own_functions();
        let pg_proc = with_own_functions(&ctx, &functions).await?;
        let pg_catalog: Arc<dyn SchemaProvider> = Arc::new(WithOwnFunctions { inner, pg_proc });
        catalog
            .register_schema("pg_catalog", pg_catalog.clone())
            .map_err(SqlError::from)?;
        register_function_info(&ctx, functions);
        ctx.register_udf(current_setting());
        let information_schema = information_schema(&ctx).await?;
        catalog
            .register_schema("information_schema", information_schema)
            .map_err(SqlError::from)?;
        let template = SessionStateBuilder::new_from_existing(ctx.state())
            .with_config(pg_config(1).with_create_default_catalog_and_schema(false))
            .build();
        Ok(PgFlavor {
            template,
            parser: PostgresCompatibilityParser::new(),
            pg_catalog,
            information_schema: template_schema(&ctx, "information_schema"),
            empty,
        })
    }

    /// A snapshot with no rows.
    pub fn empty_snapshot(&self) -> Arc<Snapshot> {
        self.empty.clone()
    }

    /// Parses `sql` as PostgreSQL and rewrites what clients send that DataFusion would not plan.
    /// Errors carry where the text stops making sense.
    pub fn parse(&self, sql: &str) -> Result<Vec<Statement>, SqlError> {
        // Before anything builds a tree of it (the rewriter and printing walk it recursively),
        // as `plan` does for HTTP's SQL.
        if let Some(depth) =
            super::nesting::estimated_depth(sql).filter(|d| *d > super::nesting::MAX_DEPTH)
        {
            return Err(SqlError::TooDeep(depth));
        }
        self.parser.parse(sql).map_err(|e| {
            // The rewriter parses tokens without their places; sqlparser on the text says where.
            use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
            use datafusion::sql::sqlparser::parser::Parser;
            let placed = Parser::new(&PostgreSqlDialect {})
                .try_with_sql(sql)
                .and_then(|mut p| p.parse_statements())
                .err()
                .map(|e| e.to_string());
            let msg = placed.unwrap_or_else(|| e.to_string());
            let at = super::parser_location(&msg);
            let text = msg.trim_start_matches("sql parser error: ");
            let text = text.rfind(" at Line: ").map_or(text, |i| &text[..i]);
            SqlError::Query(super::tidy(text), at)
        })
    }

    /// A context for one query: the template's functions and `pg_catalog`, gatewatch's tables
    /// over `snapshot`, and `runtime`'s memory pool.
    pub(super) fn context(
        &self,
        snapshot: Arc<Snapshot>,
        runtime: Arc<RuntimeEnv>,
        partitions: usize,
        archive: Option<&Path>,
    ) -> SessionContext {
        let ctx = SessionContext::new_with_state(self.state(runtime, partitions).build());
        register_tables(&ctx, snapshot, archive);
        ctx
    }

    /// A session of PostgreSQL's flavour with its catalogue and no gatewatch tables yet (a
    /// cluster member registers the whole cluster's).
    pub fn state(&self, runtime: Arc<RuntimeEnv>, partitions: usize) -> SessionStateBuilder {
        let catalogs = Arc::new(MemoryCatalogProviderList::new());
        let catalog = Arc::new(MemoryCatalogProvider::new());
        catalog
            .register_schema(SCHEMA, Arc::new(MemorySchemaProvider::new()))
            .expect("a new catalog takes a schema");
        catalog
            .register_schema("pg_catalog", self.pg_catalog.clone())
            .expect("a new catalog takes a schema");
        catalog
            .register_schema("information_schema", self.information_schema.clone())
            .expect("a new catalog takes a schema");
        catalogs.register_catalog(DATABASE.into(), catalog);
        // The catalogue list is made here: a default one from the config would replace it.
        SessionStateBuilder::new_from_existing(self.template.clone())
            .with_config(pg_config(partitions).with_create_default_catalog_and_schema(false))
            .with_catalog_list(catalogs)
            .with_runtime_env(runtime)
    }

    /// Plans `sql` (one statement, already rewritten) over the template without running it:
    /// its columns, its parameters' types, or why it cannot run.
    pub async fn describe(&self, sql: &str) -> Result<Described, SqlError> {
        let ctx = SessionContext::new_with_state(self.template.clone());
        let df = plan(&ctx, sql).await?;
        let types = df.logical_plan().get_parameter_types()?;
        let mut params: Vec<(usize, Option<DataType>)> = types
            .into_iter()
            .filter_map(|(name, t)| Some((name.trim_start_matches('$').parse().ok()?, t)))
            .collect();
        params.sort_by_key(|(n, _)| *n);
        // `$3` alone still means three parameters; the gaps are untyped.
        let count = params.last().map_or(0, |(n, _)| *n);
        let mut ordered = vec![None; count];
        for (n, t) in params {
            if n >= 1 {
                ordered[n - 1] = t;
            }
        }
        Ok(Described {
            schema: Arc::new(df.schema().as_arrow().clone()),
            params: ordered,
        })
    }
}

fn template_schema(ctx: &SessionContext, name: &str) -> Arc<dyn SchemaProvider> {
    ctx.catalog(DATABASE)
        .and_then(|c| c.schema(name))
        .expect("registered in new()")
}

/// DataFusion's `information_schema` read once (gatewatch's tables do not change while it
/// runs), with `columns.data_type` in PostgreSQL's words: Grafana's column list and type
/// checks read it.
async fn information_schema(ctx: &SessionContext) -> Result<Arc<dyn SchemaProvider>, SqlError> {
    use arrow::array::{Array, ArrayRef, StringArray};
    use datafusion::catalog::information_schema::INFORMATION_SCHEMA_TABLES;
    let schema = Arc::new(MemorySchemaProvider::new());
    for name in INFORMATION_SCHEMA_TABLES {
        let df = ctx
            .sql(&format!("SELECT * FROM information_schema.{name}"))
            .await?;
        let table_schema = Arc::new(df.schema().as_arrow().clone());
        let mut batches = df.collect().await?;
        if *name == "columns" {
            let at = table_schema
                .index_of("data_type")
                .map_err(SqlError::from_arrow)?;
            for b in &mut batches {
                let types = arrow::array::cast::as_string_array(b.column(at));
                let renamed: StringArray = (0..types.len())
                    .map(|i| {
                        (!types.is_null(i)).then(|| {
                            types.value(i).parse::<DataType>().map_or_else(
                                |_| types.value(i).to_string(),
                                |t| standard_type_name(&t),
                            )
                        })
                    })
                    .collect();
                let mut columns: Vec<ArrayRef> = b.columns().to_vec();
                columns[at] = Arc::new(renamed);
                *b = arrow::array::RecordBatch::try_new(table_schema.clone(), columns)
                    .map_err(SqlError::from_arrow)?;
            }
        }
        let table = datafusion::datasource::MemTable::try_new(table_schema, vec![batches])?;
        schema.register_table(name.to_string(), Arc::new(table))?;
    }
    Ok(schema)
}

/// `current_setting(name)`: Grafana and JDBC read `server_version_num` and `search_path` with
/// it. The defaults, not a connection's own `SET`s (a function does not see the connection).
fn current_setting() -> datafusion::logical_expr::ScalarUDF {
    use arrow::array::{Array, StringArray};
    use datafusion::logical_expr::{create_udf, ColumnarValue, Volatility};
    create_udf(
        "current_setting",
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(|args: &[ColumnarValue]| {
            let names = ColumnarValue::values_to_arrays(args)?;
            let names = arrow::array::cast::as_string_array(&names[0]);
            let values: StringArray = (0..names.len())
                .map(|i| {
                    (!names.is_null(i))
                        .then(|| setting_default(&names.value(i).to_lowercase()))
                        .flatten()
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(values)))
        }),
    )
}

/// One of gatewatch's functions as `pg_proc` lists it.
struct OwnFunction {
    oid: i32,
    name: String,
    aggregate: bool,
    args: Vec<DataType>,
    result: DataType,
}

/// The hdr functions (docs/sql.md), with object ids far above the ones handed out to tables.
fn own_functions() -> Vec<OwnFunction> {
    let mut out = Vec::new();
    for f in super::udf::scalar_functions() {
        let args = exact_args(f.signature());
        let result = f.return_type(&args).unwrap_or(DataType::Null);
        out.push((f.name().to_string(), false, args, result));
    }
    for f in super::udf::aggregate_functions() {
        let args = exact_args(f.signature());
        let result = f.return_type(&args).unwrap_or(DataType::Null);
        out.push((f.name().to_string(), true, args, result));
    }
    out.into_iter()
        .enumerate()
        .map(|(i, (name, aggregate, args, result))| OwnFunction {
            oid: 1_000_000 + i as i32,
            name,
            aggregate,
            args,
            result,
        })
        .collect()
}

fn exact_args(signature: &datafusion::logical_expr::Signature) -> Vec<DataType> {
    match &signature.type_signature {
        datafusion::logical_expr::TypeSignature::Exact(types) => types.clone(),
        _ => vec![],
    }
}

/// PostgreSQL's type id and name of an argument or result.
fn pg_type(t: &DataType) -> (i32, &'static str) {
    match t {
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => (17, "bytea"),
        DataType::Float64 => (701, "double precision"),
        DataType::Float32 => (700, "real"),
        DataType::Int64 | DataType::UInt64 | DataType::UInt32 => (20, "bigint"),
        DataType::Int32 | DataType::UInt16 => (23, "integer"),
        DataType::Timestamp(_, Some(_)) => (1184, "timestamp with time zone"),
        DataType::Boolean => (16, "boolean"),
        _ => (25, "text"),
    }
}

/// `pg_proc` with gatewatch's functions added, in the `public` schema.
async fn with_own_functions(
    ctx: &SessionContext,
    functions: &[OwnFunction],
) -> Result<Arc<dyn datafusion::catalog::TableProvider>, SqlError> {
    use arrow::array::{
        new_null_array, ArrayRef, BooleanArray, Float32Array, Int16Array, Int32Array, StringArray,
    };
    let public = ctx
        .sql("SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = 'public'")
        .await?
        .collect()
        .await?;
    let public = public
        .first()
        .filter(|b| b.num_rows() == 1)
        .and_then(|b| b.column(0).as_any().downcast_ref::<Int32Array>())
        .map_or(2200, |a| a.value(0));
    let listed = ctx
        .sql("SELECT * FROM pg_catalog.pg_proc")
        .await?
        .collect()
        .await?;
    let schema = ctx
        .table("pg_catalog.pg_proc")
        .await?
        .schema()
        .as_arrow()
        .clone();
    let n = functions.len();
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|field| -> ArrayRef {
            let each = |f: &dyn Fn(&OwnFunction) -> String| {
                Arc::new(StringArray::from_iter_values(functions.iter().map(f))) as ArrayRef
            };
            let ints = |f: &dyn Fn(&OwnFunction) -> i32| {
                Arc::new(Int32Array::from_iter_values(functions.iter().map(f))) as ArrayRef
            };
            let flag = |v: bool| Arc::new(BooleanArray::from(vec![v; n])) as ArrayRef;
            match field.name().as_str() {
                "oid" => ints(&|f| f.oid),
                "proname" | "prosrc" => each(&|f| f.name.clone()),
                "pronamespace" => ints(&|_| public),
                "proowner" => ints(&|_| 10),
                "prolang" => ints(&|_| 12),
                "prokind" => each(&|f| if f.aggregate { "a" } else { "f" }.into()),
                "provolatile" => each(&|_| "i".into()),
                "proparallel" => each(&|_| "s".into()),
                "proisstrict" => flag(true),
                "prorettype" => ints(&|f| pg_type(&f.result).0),
                "proargtypes" => each(&|f| {
                    f.args
                        .iter()
                        .map(|a| pg_type(a).0.to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                }),
                "pronargs" => Arc::new(Int16Array::from_iter_values(
                    functions.iter().map(|f| f.args.len() as i16),
                )),
                _ if field.is_nullable() => new_null_array(field.data_type(), n),
                _ => match field.data_type() {
                    DataType::Int32 => ints(&|_| 0),
                    DataType::Int16 => Arc::new(Int16Array::from(vec![0; n])),
                    DataType::Float32 => Arc::new(Float32Array::from(vec![0.0; n])),
                    DataType::Boolean => flag(false),
                    _ => each(&|_| String::new()),
                },
            }
        })
        .collect();
    let ours = arrow::array::RecordBatch::try_new(Arc::new(schema.clone()), columns)
        .map_err(|e| SqlError::Query(format!("pg_proc: {e}"), None))?;
    let mut batches: Vec<_> = listed
        .into_iter()
        .map(|b| b.with_schema(Arc::new(schema.clone())))
        .collect::<Result<_, _>>()
        .map_err(|e| SqlError::Query(format!("pg_proc: {e}"), None))?;
    batches.push(ours);
    Ok(Arc::new(
        datafusion::datasource::MemTable::try_new(Arc::new(schema), vec![batches])
            .map_err(SqlError::from)?,
    ))
}

/// `pg_catalog` with [`with_own_functions`]'s `pg_proc` in place of the crate's.
#[derive(Debug)]
struct WithOwnFunctions {
    inner: Arc<dyn SchemaProvider>,
    pg_proc: Arc<dyn datafusion::catalog::TableProvider>,
}

#[async_trait::async_trait]
impl SchemaProvider for WithOwnFunctions {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(
        &self,
        name: &str,
    ) -> datafusion::error::Result<Option<Arc<dyn datafusion::catalog::TableProvider>>> {
        if name.eq_ignore_ascii_case("pg_proc") {
            return Ok(Some(self.pg_proc.clone()));
        }
        self.inner.table(name).await
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

/// What psql's `\df` asks of a function besides `pg_proc`: visible, and its argument and result
/// types in words (gatewatch's functions; NULL for others).
fn register_function_info(ctx: &SessionContext, functions: Vec<OwnFunction>) {
    use arrow::array::{Array, BooleanArray, Int32Array, StringArray};
    use datafusion::logical_expr::{create_udf, ColumnarValue, Volatility};
    let words: std::collections::HashMap<i32, (String, String)> = functions
        .iter()
        .map(|f| {
            let args = f.args.iter().map(|a| pg_type(a).1).collect::<Vec<_>>();
            (f.oid, (args.join(", "), pg_type(&f.result).1.to_string()))
        })
        .collect();
    let words = Arc::new(words);
    for (name, result) in [
        ("pg_get_function_arguments", false),
        ("pg_get_function_identity_arguments", false),
        ("pg_get_function_result", true),
    ] {
        let words = words.clone();
        ctx.register_udf(create_udf(
            name,
            vec![DataType::Int32],
            DataType::Utf8,
            Volatility::Stable,
            Arc::new(move |args: &[ColumnarValue]| {
                let oids = ColumnarValue::values_to_arrays(args)?;
                let oids = oids[0]
                    .as_any()
                    .downcast_ref::<Int32Array>()
                    .expect("coerced to int4");
                let out: StringArray = (0..oids.len())
                    .map(|i| {
                        if oids.is_null(i) {
                            return None;
                        }
                        words
                            .get(&oids.value(i))
                            .map(|(a, r)| if result { r.clone() } else { a.clone() })
                    })
                    .collect();
                Ok(ColumnarValue::Array(Arc::new(out)))
            }),
        ));
    }
    ctx.register_udf(create_udf(
        "pg_function_is_visible",
        vec![DataType::Int32],
        DataType::Boolean,
        Volatility::Stable,
        Arc::new(|args: &[ColumnarValue]| {
            let n = ColumnarValue::values_to_arrays(args)?[0].len();
            Ok(ColumnarValue::Array(Arc::new(BooleanArray::from(vec![
                true;
                n
            ]))))
        }),
    ));
}

/// Where an error at `at` in `planned` (the rewritten text DataFusion planned) is in `original`
/// (what the client sent): the same word, found once, or nothing rather than a wrong place.
pub fn position_in_original(original: &str, planned: &str, at: Location) -> Option<usize> {
    if original == planned {
        return at.offset_in(original);
    }
    let start = at.offset_in(planned)? - 1;
    let word: String = planned
        .chars()
        .skip(start)
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '"' || *c == '.')
        .collect();
    if word.is_empty() {
        return None;
    }
    let lower = original.to_lowercase();
    let needle = word.to_lowercase();
    let mut hits = lower.match_indices(&needle);
    let (byte, _) = hits.next()?;
    if hits.next().is_some() {
        return None;
    }
    Some(original[..byte].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn describes_columns_and_parameter_types() {
        let pg = PgFlavor::new().await.unwrap();
        let d = pg
            .describe("SELECT server, ts FROM events WHERE ts >= $1 AND server = $2")
            .await
            .unwrap();
        assert_eq!(d.schema.fields().len(), 2);
        assert!(matches!(d.params[0], Some(DataType::Timestamp(_, _))));
        assert_eq!(d.params[1], Some(DataType::Utf8));
    }

    #[tokio::test]
    async fn psql_catalogue_queries_plan() {
        let pg = PgFlavor::new().await.unwrap();
        // psql 15's `\dt`.
        let dt = "SELECT n.nspname as \"Schema\", c.relname as \"Name\", CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence' WHEN 't' THEN 'TOAST table' WHEN 'f' THEN 'foreign table' WHEN 'p' THEN 'partitioned table' WHEN 'I' THEN 'partitioned index' END as \"Type\", pg_catalog.pg_get_userbyid(c.relowner) as \"Owner\" FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam WHERE c.relkind IN ('r','p','') AND n.nspname <> 'pg_catalog' AND n.nspname !~ '^pg_toast' AND n.nspname <> 'information_schema' AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 1,2;";
        let statements = pg.parse(dt).unwrap();
        let d = pg.describe(&statements[0].to_string()).await.unwrap();
        assert_eq!(d.schema.fields().len(), 4);
    }

    #[tokio::test]
    async fn errors_say_where() {
        let pg = PgFlavor::new().await.unwrap();
        let SqlError::Query(m, Some(at)) = pg.parse("SELECT 1;\nSELEC 2").unwrap_err() else {
            panic!("a parse error has a place");
        };
        assert_eq!((at.line, at.column), (2, 1), "{m}");
        assert!(!m.contains("Line:"), "{m}");
        let sql = "SELECT server, nope FROM servers";
        let SqlError::Query(m, Some(at)) = pg.describe(sql).await.unwrap_err() else {
            panic!("an unknown column has a place");
        };
        assert_eq!(at.offset_in(sql), Some(16), "{m}");
    }

    #[test]
    fn positions_map_back_to_what_the_client_wrote() {
        let at = Location { line: 1, column: 8 };
        assert_eq!(
            position_in_original("select nope from servers", "SELECT nope FROM servers", at),
            Some(8)
        );
        assert_eq!(at.offset_in("SELECT nope"), Some(8));
        assert_eq!(Location { line: 2, column: 1 }.offset_in("a\nb"), Some(3));
        assert_eq!(Location { line: 3, column: 1 }.offset_in("a\nb"), None);
    }
}
