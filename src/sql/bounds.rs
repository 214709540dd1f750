//! Time ranges from a query's filters, for scans that can skip what a filter excludes.
//!
//! Owns: reading `[lo, hi)` on one timestamp column, and the values a string column may take,
//! out of pushed-down filters. Used by the archive (which hour directories to list), the
//! `concurrency` table (which seconds to sweep) and the `latency` table (which minutes and
//! metrics to build). The bounds are never narrower than the truth, and DataFusion still applies every
//! filter, so a scan that uses them stays exact.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};

/// Milliseconds of a timestamp literal, whatever its unit.
fn literal_ms(e: &Expr) -> Option<i64> {
    let Expr::Literal(v, _) = e else { return None };
    match v {
        ScalarValue::TimestampMillisecond(Some(x), _) => Some(*x),
        ScalarValue::TimestampSecond(Some(x), _) => x.checked_mul(1000),
        ScalarValue::TimestampMicrosecond(Some(x), _) => Some(x.div_euclid(1000)),
        ScalarValue::TimestampNanosecond(Some(x), _) => Some(x.div_euclid(1_000_000)),
        _ => None,
    }
}

fn is_column(e: &Expr, name: &str) -> bool {
    matches!(e, Expr::Column(c) if c.name == name)
}

/// The time range `[lo, hi)` (ms) that filters on `column` allow; unbounded sides are
/// `i64::MIN` / `i64::MAX`. Only conjunctions of comparisons with literals narrow it: anything
/// else leaves it as wide as it was (never narrower than the truth).
pub fn time_bounds(filters: &[Expr], column: &str) -> (i64, i64) {
    let mut b = (i64::MIN, i64::MAX);
    for f in filters {
        narrow(f, column, &mut b);
    }
    b
}

fn narrow(e: &Expr, column: &str, b: &mut (i64, i64)) {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            if *op == Operator::And {
                narrow(left, column, b);
                narrow(right, column, b);
                return;
            }
            let (op, v) = if is_column(left, column) {
                match literal_ms(right) {
                    Some(v) => (*op, v),
                    None => return,
                }
            } else if is_column(right, column) {
                match (literal_ms(left), op.swap()) {
                    (Some(v), Some(op)) => (op, v),
                    _ => return,
                }
            } else {
                return;
            };
            match op {
                Operator::Eq => {
                    b.0 = b.0.max(v);
                    b.1 = b.1.min(v.saturating_add(1));
                }
                Operator::Gt => b.0 = b.0.max(v.saturating_add(1)),
                Operator::GtEq => b.0 = b.0.max(v),
                Operator::Lt => b.1 = b.1.min(v),
                Operator::LtEq => b.1 = b.1.min(v.saturating_add(1)),
                _ => {}
            }
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) if is_column(expr, column) => {
            if let (Some(lo), Some(hi)) = (literal_ms(low), literal_ms(high)) {
                b.0 = b.0.max(lo);
                b.1 = b.1.min(hi.saturating_add(1));
            }
        }
        _ => {}
    }
}

/// The values string `column` may take under `filters` (each a conjunct): `Some` when they pin
/// it to a set (`column = 'x'`, `column IN ('x', 'y')`, in any conjunct), `None` when nothing
/// does. Like [`time_bounds`], never narrower than the truth.
pub fn string_values(filters: &[Expr], column: &str) -> Option<Vec<String>> {
    let mut allowed: Option<Vec<String>> = None;
    for f in filters {
        pin(f, column, &mut allowed);
    }
    allowed
}

fn literal_str(e: &Expr) -> Option<&str> {
    let Expr::Literal(v, _) = e else { return None };
    match v {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Some(s),
        _ => None,
    }
}

fn pin(e: &Expr, column: &str, allowed: &mut Option<Vec<String>>) {
    let values: Vec<&str> = match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            if *op == Operator::And {
                pin(left, column, allowed);
                pin(right, column, allowed);
                return;
            }
            if *op != Operator::Eq {
                return;
            }
            let v = if is_column(left, column) {
                literal_str(right)
            } else if is_column(right, column) {
                literal_str(left)
            } else {
                None
            };
            match v {
                Some(v) => vec![v],
                None => return,
            }
        }
        Expr::InList(InList {
            expr,
            list,
            negated: false,
        }) if is_column(expr, column) => match list.iter().map(literal_str).collect() {
            Some(v) => v,
            None => return,
        },
        _ => return,
    };
    *allowed = Some(match allowed.take() {
        None => values.into_iter().map(str::to_string).collect(),
        Some(before) => before
            .into_iter()
            .filter(|b| values.contains(&b.as_str()))
            .collect(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{col, lit};

    fn ts(ms: i64) -> Expr {
        lit(ScalarValue::TimestampMillisecond(
            Some(ms),
            Some("UTC".into()),
        ))
    }

    #[test]
    fn bounds_from_comparisons_between_and_conjunctions() {
        let c = || col("ts");
        assert_eq!(time_bounds(&[], "ts"), (i64::MIN, i64::MAX));
        assert_eq!(
            time_bounds(&[c().gt_eq(ts(10)).and(c().lt(ts(20)))], "ts"),
            (10, 20)
        );
        assert_eq!(time_bounds(&[c().between(ts(10), ts(20))], "ts"), (10, 21));
        assert_eq!(
            time_bounds(&[ts(10).lt(c()), c().lt_eq(ts(30))], "ts"),
            (11, 31)
        );
        assert_eq!(time_bounds(&[c().eq(ts(5))], "ts"), (5, 6));
        // Disjunctions and other columns do not narrow.
        assert_eq!(
            time_bounds(&[c().lt(ts(5)).or(c().gt(ts(50)))], "ts"),
            (i64::MIN, i64::MAX)
        );
        assert_eq!(
            time_bounds(&[col("minute").lt(ts(5))], "ts"),
            (i64::MIN, i64::MAX)
        );
    }

    #[test]
    fn string_values_from_equalities_in_lists_and_conjunctions() {
        let m = || col("metric");
        let v = |xs: &[&str]| Some(xs.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert_eq!(string_values(&[], "metric"), None);
        assert_eq!(string_values(&[m().eq(lit("rtt"))], "metric"), v(&["rtt"]));
        assert_eq!(string_values(&[lit("rtt").eq(m())], "metric"), v(&["rtt"]));
        assert_eq!(
            string_values(
                &[m().in_list(vec![lit("rtt"), lit("setup")], false)],
                "metric"
            ),
            v(&["rtt", "setup"])
        );
        // Conjunctions intersect, in one filter or across filters.
        assert_eq!(
            string_values(
                &[m()
                    .in_list(vec![lit("rtt"), lit("setup")], false)
                    .and(m().eq(lit("setup")))],
                "metric"
            ),
            v(&["setup"])
        );
        assert_eq!(
            string_values(&[m().eq(lit("rtt")), m().eq(lit("setup"))], "metric"),
            v(&[])
        );
        // Anything else leaves the column free.
        for f in [
            m().eq(lit("rtt")).or(m().eq(lit("setup"))),
            m().not_eq(lit("rtt")),
            m().in_list(vec![lit("rtt")], true),
            m().like(lit("r%")),
            col("server").eq(lit("gw-01")),
            m().eq(col("server")),
        ] {
            assert_eq!(
                string_values(std::slice::from_ref(&f), "metric"),
                None,
                "{f}"
            );
        }
    }
}
