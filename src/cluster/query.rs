//! One SQL answer from every member, through DataFusion's distribution layer
//! (`datafusion-distributed`): the query is planned once, on the member asked; each scan of a
//! gatewatch table becomes one task per member, routed to that member's Flight endpoint, where
//! it reads the member's own servers, with the filters and partial aggregates above it; only
//! what those produce crosses the network, and the final aggregation (`hdr_merge` merged
//! exactly) runs on the member asked.
//!
//! Owns: where a query's scans run (the placement: each partition read from exactly one member
//! that has its state restored), the scan node that crosses the wire ([`MemberScanExec`]) and
//! its codec, the worker side's session (gatewatch's functions and this member's engine), and
//! waiting for partitions in transit. Must not touch: the tables' rows (that is `sql::tables`
//! over a snapshot), the group's membership (Kafka's).
//!
//! Members find each other in the state store: each member's entry names its Flight address
//! and the partitions it has restored (see `super::MemberEntry`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{exec_err, internal_err, DataFusionError, Result, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::execution::{
    SendableRecordBatchStream, SessionState, SessionStateBuilder, TaskContext,
};
use datafusion::logical_expr::{col, lit, Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
};
use datafusion::prelude::SessionContext;
use datafusion_distributed::{
    DesiredTaskCountEvent, DesiredTaskCountEventResponse, DistributedExt, DistributedTaskContext,
    RouteTasksEvent, RouteTasksEventResponse, ScaleUpLeafNodeEvent, ScaleUpLeafNodeEventResponse,
    SessionStateBuilderExt, WorkerQueryContext, WorkerResolver, WorkerSessionBuilder,
};
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use futures::TryStreamExt;
use url::Url;

use super::store::StateStore;
use super::{ClusterStatus, MemberEntry};
use crate::codec::{Dec, Enc};
use crate::sql::tables::{GatewatchTable, SnapshotTable, Table};
use crate::sql::SqlError;
use crate::state::partition::PartitionKey;
use crate::state::Engine;

/// Said by a member asked for a partition it no longer holds: the query is placed again.
pub const MOVED: &str = "moved to another member while the query was planned";

/// A member whose entry is older than this is taken for gone (entries are rewritten every
/// 2 s): its partitions are in transit until Kafka gives them to a live member.
const MEMBER_TTL_MS: u64 = 10_000;

/// Output partitions of a member's scan (see [`MemberScanExec::new`]).
const SCAN_PARTITIONS: usize = 2;

/// One task of a scan: a member and the partitions it reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// The member's id (its HTTP address).
    pub member: String,
    /// Its Flight endpoint.
    pub flight: String,
    /// The partitions it reads, each read by no other task.
    pub partitions: Vec<(String, i32)>,
}

/// Where a query's scans run, and the cluster's newest event time (every member's
/// `concurrency` runs up to it, as one instance's would).
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// One task per member holding partitions.
    pub tasks: Vec<Task>,
    /// Newest event time across members.
    pub now_ms: Option<i64>,
}

/// Reads the members' entries and places each partition on the one live member that has it
/// restored. Partitions no live member has restored are in transit: waits for them up to
/// `wait`, then fails with one sentence naming them and their servers.
///
/// Which partitions exist comes from Kafka (`partition_counts`, every partition of every topic
/// consumed) and from the entries (every partition a member ever held): a partition between
/// owners is then missing, not forgotten.
pub async fn place(
    store: &StateStore,
    partition_counts: &BTreeMap<String, i32>,
    unreachable: &[String],
    wait: Duration,
) -> Result<Placement, SqlError> {
    let start = Instant::now();
    loop {
        let entries: Vec<MemberEntry> = store
            .members()
            .await
            .map_err(|e| SqlError::Query(e.to_string(), None))?
            .iter()
            .filter_map(|b| serde_json::from_slice(b).ok())
            .collect();
        let now = super::now_ms();
        let live = |e: &MemberEntry| {
            now.saturating_sub(e.updated_ms) <= MEMBER_TTL_MS && !unreachable.contains(&e.flight)
        };
        // Every partition any member has held, and its servers as last published.
        let mut known: BTreeMap<(String, i32), Vec<String>> = BTreeMap::new();
        for (topic, n) in partition_counts {
            for p in 0..*n {
                known.entry((topic.clone(), p)).or_default();
            }
        }
        for e in &entries {
            for (p, servers) in &e.servers {
                known
                    .entry(p.clone())
                    .or_default()
                    .extend(servers.iter().cloned());
            }
            for p in e
                .restored
                .iter()
                .map(|r| (r.0.clone(), r.1))
                .chain(e.restoring.iter().cloned())
            {
                known.entry(p).or_default();
            }
        }
        // Each partition goes to the live member that restored it last (an entry written just
        // before its member handed the partition over can still claim it for a moment).
        let mut owner: BTreeMap<(String, i32), (&MemberEntry, u64)> = BTreeMap::new();
        for e in entries.iter().filter(|e| live(e)) {
            for (topic, partition, since) in &e.restored {
                let k = (topic.clone(), *partition);
                if owner.get(&k).is_none_or(|(_, s)| *since > *s) {
                    owner.insert(k, (e, *since));
                }
            }
        }
        let missing: Vec<&(String, i32)> =
            known.keys().filter(|k| !owner.contains_key(*k)).collect();
        if missing.is_empty() {
            let mut tasks: BTreeMap<&str, Task> = BTreeMap::new();
            for (k, (e, _)) in &owner {
                tasks
                    .entry(e.member.as_str())
                    .or_insert_with(|| Task {
                        member: e.member.clone(),
                        flight: e.flight.clone(),
                        partitions: Vec::new(),
                    })
                    .partitions
                    .push(k.clone());
            }
            let now_ms = entries
                .iter()
                .filter(|e| live(e))
                .filter_map(|e| e.now_ms)
                .max();
            return Ok(Placement {
                tasks: tasks.into_values().collect(),
                now_ms,
            });
        }
        if start.elapsed() >= wait {
            let mut servers: Vec<String> = missing.iter().flat_map(|k| known[*k].clone()).collect();
            servers.sort();
            servers.dedup();
            let parts: Vec<String> = missing.iter().map(|(t, p)| format!("{t}/{p}")).collect();
            return Err(SqlError::Query(
                format!(
                    "partitions {} are moving between members and no member has restored them after {:.0} s (servers {}); try again in a few seconds, or see /readyz of the members",
                    parts.join(", "),
                    wait.as_secs_f64(),
                    if servers.is_empty() { "unknown".into() } else { servers.join(", ") }
                ),
                None,
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A gatewatch table of the whole cluster, on the member a query is asked of.
#[derive(Debug)]
struct ClusterTable {
    table: Table,
    placement: Arc<Placement>,
}

#[async_trait]
impl TableProvider for ClusterTable {
    fn schema(&self) -> arrow::datatypes::SchemaRef {
        self.table.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // The time bounds go to the members (a window of `concurrency` is swept alone there);
        // every filter still runs, above the scan, on the member.
        let pushed = match self.table {
            Table::Concurrency | Table::Latency => TableProviderFilterPushDown::Inexact,
            _ => TableProviderFilterPushDown::Unsupported,
        };
        Ok(vec![pushed; filters.len()])
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if self.placement.tasks.is_empty() {
            // No member has held a partition yet: there are no rows anywhere.
            let schema = match projection {
                Some(p) => Arc::new(self.table.schema().project(p)?),
                None => self.table.schema(),
            };
            return Ok(Arc::new(datafusion::physical_plan::empty::EmptyExec::new(
                schema,
            )));
        }
        let bounds = time_column(self.table).map_or((i64::MIN, i64::MAX), |c| {
            crate::sql::bounds::time_bounds(filters, c)
        });
        Ok(Arc::new(MemberScanExec::new(
            self.table,
            projection.cloned(),
            bounds,
            self.placement.clone(),
        )))
    }
}

fn time_column(t: Table) -> Option<&'static str> {
    match t {
        Table::Concurrency => Some("ts"),
        Table::Latency => Some("minute"),
        _ => None,
    }
}

/// The scan of one table, one task per member: the task numbered `i` reads the servers of
/// `placement.tasks[i]`'s partitions from that member's engine.
#[derive(Debug)]
pub struct MemberScanExec {
    table: Table,
    projection: Option<Vec<usize>>,
    bounds: (i64, i64),
    placement: Arc<Placement>,
    properties: Arc<PlanProperties>,
}

impl MemberScanExec {
    fn new(
        table: Table,
        projection: Option<Vec<usize>>,
        bounds: (i64, i64),
        placement: Arc<Placement>,
    ) -> MemberScanExec {
        let schema = match &projection {
            Some(p) => Arc::new(table.schema().project(p).expect("projection of the table")),
            None => table.schema(),
        };
        // More than one output partition (only the first has rows), so that DataFusion puts
        // an exchange above the scan even when nothing aggregates (`SELECT * FROM servers`):
        // the distribution layer cuts the plan there, and the scan runs on the members.
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(SCAN_PARTITIONS),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        MemberScanExec {
            table,
            projection,
            bounds,
            placement,
            properties,
        }
    }

    /// The filters a member's table gets for the pushed-down time bounds.
    fn bound_filters(&self) -> Vec<Expr> {
        let Some(c) = time_column(self.table) else {
            return Vec::new();
        };
        let ts = |v: i64| {
            lit(ScalarValue::TimestampMillisecond(
                Some(v),
                Some("UTC".into()),
            ))
        };
        let mut f = Vec::new();
        if self.bounds.0 != i64::MIN {
            f.push(col(c).gt_eq(ts(self.bounds.0)));
        }
        if self.bounds.1 != i64::MAX {
            f.push(col(c).lt(ts(self.bounds.1)));
        }
        f
    }
}

impl DisplayAs for MemberScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "MemberScanExec: {} on", self.table.name())?;
        for t in &self.placement.tasks {
            write!(f, " {}{:?}", t.member, t.partitions)?;
        }
        Ok(())
    }
}

impl ExecutionPlan for MemberScanExec {
    fn name(&self) -> &str {
        "MemberScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(
            &Arc<dyn PhysicalExpr>,
        ) -> Result<datafusion::common::tree_node::TreeNodeRecursion>,
    ) -> Result<datafusion::common::tree_node::TreeNodeRecursion> {
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            let schema = self.properties.eq_properties.schema().clone();
            return Ok(Box::pin(RecordBatchStreamAdapter::new(
                schema,
                futures::stream::empty(),
            )));
        }
        let task = DistributedTaskContext::from_ctx(&context);
        let tasks = &self.placement.tasks;
        if task.task_count != tasks.len() {
            return exec_err!(
                "the query was planned as {} task(s) for {} member(s); gatewatch needs one task per member",
                task.task_count,
                tasks.len()
            );
        }
        let Some(mine) = tasks.get(task.task_index) else {
            return internal_err!("task {} of {}", task.task_index, tasks.len());
        };
        let Some(local) = context.session_config().get_extension::<LocalMember>() else {
            return internal_err!("no member engine in the worker's session");
        };
        if local.id != mine.member {
            return exec_err!(
                "the task for member {} ran on {}; the members' entries are stale, try again",
                mine.member,
                local.id
            );
        }
        let snapshot = local.snapshot_of(self.table, &mine.partitions, self.placement.now_ms)?;
        let provider = GatewatchTable::provider(SnapshotTable::new(self.table, Arc::new(snapshot)));
        let filters = self.bound_filters();
        let projection = self.projection.clone();
        let schema = self.properties.eq_properties.schema().clone();
        let ctx = context.clone();
        let stream = futures::stream::once(async move {
            let state = SessionStateBuilder::new()
                .with_config(ctx.session_config().clone())
                .build();
            let plan = provider
                .scan(&state, projection.as_ref(), &filters, None)
                .await?;
            let plan: Arc<dyn ExecutionPlan> = if plan.output_partitioning().partition_count() > 1 {
                Arc::new(
                    datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec::new(
                        plan,
                    ),
                )
            } else {
                plan
            };
            plan.execute(0, ctx)
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// This member's engine, for the scans routed to it.
pub struct LocalMember {
    /// The member's id.
    pub id: String,
    /// Its engine.
    pub engine: Arc<Mutex<Engine>>,
    /// Its partitions.
    pub status: Arc<ClusterStatus>,
    /// The first topic's partition 0 (its owner lists the alert records of no server).
    pub home: PartitionKey,
}

impl LocalMember {
    /// A snapshot of the servers of `partitions`, all of which this member must hold
    /// restored; with `now`, extended to the cluster's newest event time.
    fn snapshot_of(
        &self,
        table: Table,
        partitions: &[(String, i32)],
        now: Option<i64>,
    ) -> Result<crate::state::Snapshot> {
        let keys: Vec<PartitionKey> = partitions
            .iter()
            .map(|(t, p)| (Arc::from(t.as_str()), *p))
            .collect();
        let home = keys.contains(&self.home);
        let (snapshot, names) = {
            // Ownership is checked under the engine lock: a revocation disowns a partition
            // before it takes the lock to remove its servers, so what is read here is whole.
            let e = self.engine.lock().expect("engine lock");
            {
                let owned = self.status.owned.lock().expect("not poisoned");
                for p in partitions {
                    if !owned.get(p).is_some_and(|o| o.restored) {
                        return exec_err!("partition {}/{} {MOVED}", p.0, p.1);
                    }
                }
            }
            (
                e.snapshot_of(scope_for(table)),
                e.servers_of_partitions(&keys),
            )
        };
        let mut snapshot = snapshot.only_servers(&names, home);
        snapshot.now_ms = snapshot.now_ms.max(now);
        Ok(snapshot)
    }
}

/// What a scan of `table` needs of the engine: `events` its batches, `latency` and `servers`
/// the minute histograms (`servers` reports recent rtt percentiles), the others neither.
fn scope_for(table: Table) -> crate::state::SnapshotScope {
    let all = crate::state::SnapshotScope::everything();
    match table {
        Table::Events => all.without_latency(),
        Table::Latency | Table::Servers => all.without_events(),
        _ => all.without_events().without_latency(),
    }
}

impl fmt::Debug for LocalMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalMember({})", self.id)
    }
}

/// Encodes [`MemberScanExec`] for the wire (gatewatch's own byte codec: a table name, a
/// projection, bounds and the placement).
#[derive(Debug)]
pub struct MemberScanCodec;

impl PhysicalExtensionCodec for MemberScanCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        _ctx: &TaskContext,
        _proto: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !inputs.is_empty() {
            return internal_err!("MemberScanExec has no inputs");
        }
        decode_scan(buf).map_err(|e| DataFusionError::Internal(format!("MemberScanExec: {e}")))
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        _proto: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        let Some(scan) = node.downcast_ref::<MemberScanExec>() else {
            return internal_err!("not a MemberScanExec: {}", node.name());
        };
        let mut e = Enc::default();
        e.str(scan.table.name());
        match &scan.projection {
            Some(p) => {
                e.u8(1);
                e.len(p.len());
                for &i in p {
                    e.u32(i as u32);
                }
            }
            None => e.u8(0),
        }
        e.i64(scan.bounds.0);
        e.i64(scan.bounds.1);
        e.opt_i64(scan.placement.now_ms);
        e.len(scan.placement.tasks.len());
        for t in &scan.placement.tasks {
            e.str(&t.member);
            e.str(&t.flight);
            e.len(t.partitions.len());
            for (topic, p) in &t.partitions {
                e.str(topic);
                e.i64(*p as i64);
            }
        }
        buf.extend_from_slice(&e.buf);
        Ok(())
    }
}

fn decode_scan(buf: &[u8]) -> Result<Arc<dyn ExecutionPlan>, crate::codec::DecodeError> {
    use crate::codec::bad;
    let mut d = Dec::new(buf);
    let name = d.str()?;
    let table = Table::ALL
        .into_iter()
        .find(|t| t.name() == name)
        .ok_or_else(|| bad(format!("unknown table {name:?}")))?;
    let projection = match d.u8()? {
        0 => None,
        _ => {
            let mut p = Vec::new();
            for _ in 0..d.len(4)? {
                p.push(d.u32()? as usize);
            }
            Some(p)
        }
    };
    let bounds = (d.i64()?, d.i64()?);
    let now_ms = d.opt_i64()?;
    let mut tasks = Vec::new();
    for _ in 0..d.len(8)? {
        let member = d.str()?.to_string();
        let flight = d.str()?.to_string();
        let mut partitions = Vec::new();
        for _ in 0..d.len(8)? {
            let topic = d.str()?.to_string();
            partitions.push((topic, d.i64()? as i32));
        }
        tasks.push(Task {
            member,
            flight,
            partitions,
        });
    }
    if projection
        .as_ref()
        .is_some_and(|p| p.iter().any(|&i| i >= table.schema().fields().len()))
    {
        return Err(bad("projection out of range"));
    }
    Ok(Arc::new(MemberScanExec::new(
        table,
        projection,
        bounds,
        Arc::new(Placement { tasks, now_ms }),
    )))
}

fn scan_of(plan: &Arc<dyn ExecutionPlan>) -> Option<&MemberScanExec> {
    plan.downcast_ref::<MemberScanExec>()
}

/// A scan has one task per member: no more (a member reads its partitions whole), no fewer.
fn desired_tasks(ev: DesiredTaskCountEvent) -> Option<Result<DesiredTaskCountEventResponse>> {
    let scan = scan_of(ev.plan)?;
    Some(Ok(DesiredTaskCountEventResponse::desired(
        scan.placement.tasks.len().max(1),
    )))
}

fn scale_up(ev: ScaleUpLeafNodeEvent) -> Option<Result<ScaleUpLeafNodeEventResponse>> {
    let scan = scan_of(ev.plan)?;
    if ev.task_count != scan.placement.tasks.len() {
        return Some(exec_err!(
            "the planner gave {} task(s) to a scan of {} member(s)",
            ev.task_count,
            scan.placement.tasks.len()
        ));
    }
    Some(Ok(ScaleUpLeafNodeEventResponse::new(ev.plan.clone())))
}

/// Task `i` of a stage that scans goes to member `i`'s Flight endpoint.
fn route(ev: RouteTasksEvent) -> Option<Result<RouteTasksEventResponse>> {
    let mut found: Option<Arc<Placement>> = None;
    let _ = datafusion::common::tree_node::TreeNode::apply(ev.plan, |node| {
        if let Some(s) = scan_of(node) {
            found = Some(s.placement.clone());
            return Ok(datafusion::common::tree_node::TreeNodeRecursion::Stop);
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    let placement = found?;
    if ev.task_count != placement.tasks.len() {
        return Some(exec_err!(
            "a stage of {} task(s) reads {} member(s)",
            ev.task_count,
            placement.tasks.len()
        ));
    }
    let urls: Result<Vec<Url>> = placement
        .tasks
        .iter()
        .map(|t| {
            Url::parse(&t.flight)
                .map_err(|e| DataFusionError::Execution(format!("member {}: {e}", t.member)))
        })
        .collect();
    Some(urls.map(RouteTasksEventResponse::new))
}

/// The members' Flight endpoints, as placed for one query.
struct PlacedWorkers(Vec<Url>);

impl WorkerResolver for PlacedWorkers {
    fn get_urls(&self) -> Result<Vec<Url>> {
        Ok(self.0.clone())
    }
}

/// A context of `base`'s session whose six tables are the whole cluster's, as `placement`
/// places them.
pub fn cluster_context(placement: Placement, mut base: SessionStateBuilder) -> SessionContext {
    let urls: Vec<Url> = placement
        .tasks
        .iter()
        .filter_map(|t| Url::parse(&t.flight).ok())
        .collect();
    // Two partitions at least: with one, DataFusion plans an aggregation as a single step over
    // the scan, and there is no partial step to run on the members.
    if let Some(config) = base.config().as_mut() {
        let partitions = config.target_partitions().max(2);
        *config = config.clone().with_target_partitions(partitions);
    }
    let state = base
        .with_distributed_worker_resolver(PlacedWorkers(urls))
        .with_distributed_planner()
        .with_distributed_user_codec(MemberScanCodec)
        .with_distributed_desired_task_count_handler(desired_tasks)
        .with_distributed_scale_up_leaf_node_handler(scale_up)
        .with_distributed_route_tasks_handler(route)
        .build();
    let ctx = SessionContext::new_with_state(state);
    let placement = Arc::new(placement);
    for t in Table::ALL {
        ctx.register_table(
            t.name(),
            Arc::new(ClusterTable {
                table: t,
                placement: placement.clone(),
            }),
        )
        .expect("fresh context has no tables");
    }
    crate::sql::register_functions(&ctx);
    ctx
}

/// The worker side: each task routed to this member runs in a session with gatewatch's
/// functions, the scan's codec and this member's engine.
#[derive(Clone)]
pub struct MemberWorkerSession(pub Arc<LocalMember>);

#[async_trait]
impl WorkerSessionBuilder for MemberWorkerSession {
    async fn build_session_state(
        &self,
        ctx: WorkerQueryContext,
    ) -> Result<SessionState, DataFusionError> {
        let mut state = ctx
            .builder
            .with_distributed_user_codec(MemberScanCodec)
            .build();
        state.config_mut().set_extension(self.0.clone());
        for f in crate::sql::udf::scalar_functions()
            .into_iter()
            .chain(crate::sql::bounded::scalar_functions())
        {
            datafusion::execution::FunctionRegistry::register_udf(&mut state, Arc::new(f))?;
        }
        for f in crate::sql::udf::aggregate_functions() {
            datafusion::execution::FunctionRegistry::register_udaf(&mut state, Arc::new(f))?;
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests;
