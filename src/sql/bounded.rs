//! Bounded versions of the string functions whose output can be far bigger than their input:
//! `repeat`, `lpad`, `rpad`, `replace`, `regexp_replace`.
//!
//! DataFusion's memory pool sees what joins, sorts and aggregations hold, not the values a
//! scalar function builds: `SELECT length(repeat('a', 1500000000))` would allocate 1.5 GB
//! outside any limit. Each wrapper here computes, before calling DataFusion's own function,
//! an upper bound of the bytes the call would build for its whole batch and refuses the call
//! when that passes [`MAX_BUILT_BYTES`]; under the bound it is DataFusion's function unchanged.
//!
//! Owns: those bounds and the sentence that explains them. Must not touch: the functions'
//! semantics, types or names (the wrappers delegate everything else).

use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array};
use arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature,
};

/// Most bytes one call of a bounded function may build for one batch: 64 MiB. A few of these
/// at once per query, times `http.max_queries`, is what scalar functions can hold.
pub const MAX_BUILT_BYTES: u128 = 64 << 20;

/// How a function's output size follows from its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Growth {
    /// `repeat(s, n)`: len(s) × n.
    Repeat,
    /// `lpad(s, n [, fill])`, `rpad(...)`: n characters of at most 4 bytes.
    Pad,
    /// `replace(s, from, to)`, `regexp_replace(s, pattern, to [, flags])`: at most one `to` per
    /// byte of `s` and one more, plus `s`.
    Replace,
}

/// A DataFusion function behind a size check.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Bounded {
    inner: ScalarUDF,
    growth: Growth,
}

/// One argument, row by row.
enum PerRow {
    Scalar(Option<i64>),
    Array(Int64Array),
}

impl PerRow {
    fn get(&self, i: usize) -> Option<i64> {
        match self {
            PerRow::Scalar(v) => *v,
            PerRow::Array(a) => a.is_valid(i).then(|| a.value(i)),
        }
    }

    /// An integer argument (a count or a length).
    fn ints(v: &ColumnarValue) -> Result<PerRow> {
        Ok(match v {
            ColumnarValue::Scalar(s) => PerRow::Scalar(match s.cast_to(&DataType::Int64)? {
                ScalarValue::Int64(n) => n,
                _ => None,
            }),
            ColumnarValue::Array(a) => PerRow::Array(
                arrow::compute::cast(a, &DataType::Int64)?
                    .as_primitive::<Int64Type>()
                    .clone(),
            ),
        })
    }

    /// A string argument's length in bytes.
    fn byte_lengths(v: &ColumnarValue) -> Result<PerRow> {
        Ok(match v {
            ColumnarValue::Scalar(s) => PerRow::Scalar(match s {
                ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s) => {
                    s.as_ref().map(|s| s.len() as i64)
                }
                other if other.is_null() => None,
                other => Some(other.to_string().len() as i64),
            }),
            ColumnarValue::Array(a) => {
                let lengths = match a.data_type() {
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                        arrow::compute::kernels::length::length(a)?
                    }
                    _ => arrow::compute::kernels::length::length(&arrow::compute::cast(
                        a,
                        &DataType::Utf8,
                    )?)?,
                };
                PerRow::Array(
                    arrow::compute::cast(&lengths, &DataType::Int64)?
                        .as_primitive::<Int64Type>()
                        .clone(),
                )
            }
        })
    }
}

impl Bounded {
    /// An upper bound of the bytes this call builds, over all its rows.
    fn bound(&self, args: &[ColumnarValue], rows: usize) -> Result<u128> {
        let rows = if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
            1
        } else {
            rows
        };
        let at_least_zero = |v: Option<i64>| v.unwrap_or(0).max(0) as u128;
        let mut total: u128 = 0;
        match self.growth {
            Growth::Repeat if args.len() >= 2 => {
                let (s, n) = (PerRow::byte_lengths(&args[0])?, PerRow::ints(&args[1])?);
                for i in 0..rows {
                    total = total.saturating_add(at_least_zero(s.get(i)) * at_least_zero(n.get(i)));
                }
            }
            Growth::Pad if args.len() >= 2 => {
                let n = PerRow::ints(&args[1])?;
                for i in 0..rows {
                    total = total.saturating_add(4 * at_least_zero(n.get(i)));
                }
            }
            Growth::Replace if args.len() >= 3 => {
                let (s, to) = (
                    PerRow::byte_lengths(&args[0])?,
                    PerRow::byte_lengths(&args[2])?,
                );
                for i in 0..rows {
                    let s = at_least_zero(s.get(i));
                    total = total.saturating_add(s + (s + 1) * at_least_zero(to.get(i)));
                }
            }
            // Argument counts DataFusion's own function refuses: let it say so.
            _ => {}
        }
        Ok(total)
    }
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let bytes = self.bound(&args.args, args.number_rows)?;
        if bytes > MAX_BUILT_BYTES {
            return exec_err!(
                "{}(...) would build about {} MiB of text in one step, more than the {} MiB gatewatch allows; use smaller counts or lengths",
                self.name(),
                bytes >> 20,
                MAX_BUILT_BYTES >> 20
            );
        }
        self.inner.invoke_with_args(args)
    }
}

/// The bounded functions, registered over DataFusion's own of the same names.
pub fn scalar_functions() -> Vec<ScalarUDF> {
    use datafusion::functions::{regex, string, unicode};
    let wrap = |inner: Arc<ScalarUDF>, growth| {
        ScalarUDF::new_from_impl(Bounded {
            inner: inner.as_ref().clone(),
            growth,
        })
    };
    vec![
        wrap(string::repeat(), Growth::Repeat),
        wrap(unicode::lpad(), Growth::Pad),
        wrap(unicode::rpad(), Growth::Pad),
        wrap(string::replace(), Growth::Replace),
        wrap(regex::regexp_replace(), Growth::Replace),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(sql: &str) -> std::result::Result<String, String> {
        let ctx = datafusion::prelude::SessionContext::new();
        for f in scalar_functions() {
            ctx.register_udf(f);
        }
        let df = ctx.sql(sql).await.map_err(|e| e.to_string())?;
        let batches = df.collect().await.map_err(|e| e.to_string())?;
        Ok(arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string())
    }

    #[tokio::test]
    async fn small_calls_answer_as_datafusion_does() {
        let out = run("SELECT repeat('ab', 3) AS r, lpad('7', 3, '0') AS l, rpad('x', 2) AS p, replace('aXa', 'a', 'bb') AS q, regexp_replace('a1b2', '[0-9]', '#', 'g') AS g")
            .await
            .unwrap();
        for want in ["ababab", "007", "x ", "bbXbb", "a#b#"] {
            assert!(out.contains(want), "{want} in {out}");
        }
    }

    #[tokio::test]
    async fn huge_values_are_refused_before_they_are_built() {
        for sql in [
            "SELECT length(repeat('a', 1500000000))",
            "SELECT length(lpad('a', 1500000000))",
            "SELECT length(rpad('a', 1500000000, 'xy'))",
            "SELECT length(replace(repeat('a', 10000000), 'a', repeat('b', 100)))",
            "SELECT length(regexp_replace(repeat('a', 10000000), 'a', repeat('b', 100), 'g'))",
        ] {
            let err = run(sql).await.unwrap_err();
            assert!(
                err.contains("more than the 64 MiB gatewatch allows"),
                "{sql}: {err}"
            );
        }
    }

    #[test]
    fn the_bound_sums_over_the_rows_of_a_batch() {
        let repeat = Bounded {
            inner: datafusion::functions::string::repeat().as_ref().clone(),
            growth: Growth::Repeat,
        };
        let strings = ColumnarValue::Array(Arc::new(arrow::array::StringArray::from(vec![
            Some("ab"),
            None,
            Some("c"),
        ])));
        let counts = ColumnarValue::Array(Arc::new(Int64Array::from(vec![10, 1_000, -5])));
        // 2 × 10, a NULL string and a negative count build nothing.
        assert_eq!(repeat.bound(&[strings.clone(), counts], 3).unwrap(), 20);
        let scalar = ColumnarValue::Scalar(ScalarValue::Int64(Some(1 << 30)));
        assert_eq!(repeat.bound(&[strings, scalar], 3).unwrap(), 3 << 30);
    }
}
