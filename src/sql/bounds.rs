//! Time ranges from a query's filters, for scans that can skip what a filter excludes.
//!
//! Owns: reading `[lo, hi)` on one timestamp column out of pushed-down filters. Used by the
//! archive (which hour directories to list) and the `concurrency` table (which seconds to
//! sweep). The bounds are never narrower than the truth, and DataFusion still applies every
//! filter, so a scan that uses them stays exact.

use datafusion::common::ScalarValue;
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
}
