//! `hdr_merge`, `hdr_quantile`, `hdr_count`, `hdr_max`: HdrHistogram functions over the
//! V2-encoded `latency.hist` column. Merging is exact (bucket counts add), so a p99 over any
//! window is the true p99 of all its samples to 3 significant digits. Values out are ms.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryArray, Float64Array, Int64Array};
use arrow::datatypes::DataType;
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use hdrhistogram::Histogram;

use crate::state::latency::{self, us_to_ms};

fn histogram_arg(bytes: &[u8], func: &str) -> Result<Histogram<u64>> {
    latency::histogram_from_bytes(bytes).or_else(|e| {
        exec_err!("{func}: the argument is {e}; pass the latency.hist column or hdr_merge(hist)")
    })
}

fn binary_arg(v: &ColumnarValue, n: usize) -> Result<ArrayRef> {
    let a = v.to_array(n)?;
    Ok(match a.data_type() {
        DataType::Binary => a,
        _ => arrow::compute::cast(&a, &DataType::Binary)?,
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
enum Kind {
    Quantile,
    Count,
    Max,
}

/// A scalar hdr function.
#[derive(Debug, PartialEq, Eq, Hash)]
struct HdrScalar {
    kind: Kind,
    signature: Signature,
}

impl ScalarUDFImpl for HdrScalar {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Quantile => "hdr_quantile",
            Kind::Count => "hdr_count",
            Kind::Max => "hdr_max",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            Kind::Count => DataType::Int64,
            _ => DataType::Float64,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let hists = binary_arg(&args.args[0], n)?;
        let hists: &BinaryArray = hists.as_binary();
        let name = self.name();
        match self.kind {
            Kind::Count => {
                let out: Int64Array = hists
                    .iter()
                    .map(|b| {
                        b.map(|b| histogram_arg(b, name).map(|h| h.len() as i64))
                            .transpose()
                    })
                    .collect::<Result<_>>()?;
                Ok(ColumnarValue::Array(Arc::new(out)))
            }
            Kind::Max => {
                let out: Float64Array = hists
                    .iter()
                    .map(|b| {
                        b.map(|b| histogram_arg(b, name))
                            .transpose()
                            .map(|h| h.filter(|h| !h.is_empty()).map(|h| us_to_ms(h.max())))
                    })
                    .collect::<Result<_>>()?;
                Ok(ColumnarValue::Array(Arc::new(out)))
            }
            Kind::Quantile => {
                let q = args.args[1].to_array(n)?;
                let q = arrow::compute::cast(&q, &DataType::Float64)?;
                let q = q.as_primitive::<arrow::datatypes::Float64Type>();
                let mut out = Vec::with_capacity(n);
                for i in 0..n {
                    if hists.is_null(i) || q.is_null(i) {
                        out.push(None);
                        continue;
                    }
                    let qi = q.value(i);
                    if !(0.0..=1.0).contains(&qi) {
                        return exec_err!(
                            "hdr_quantile: the quantile must be between 0 and 1 (0.99 for p99), got {qi}"
                        );
                    }
                    let h = histogram_arg(hists.value(i), name)?;
                    out.push((!h.is_empty()).then(|| us_to_ms(h.value_at_quantile(qi))));
                }
                Ok(ColumnarValue::Array(Arc::new(Float64Array::from(out))))
            }
        }
    }
}

/// `hdr_merge(hist)`: merges histograms exactly into one (V2 encoded).
#[derive(Debug, PartialEq, Eq, Hash)]
struct HdrMerge {
    signature: Signature,
}

impl AggregateUDFImpl for HdrMerge {
    fn name(&self) -> &str {
        "hdr_merge"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Binary)
    }

    fn accumulator(&self, _acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(MergeAcc::default()))
    }
}

#[derive(Debug, Default)]
struct MergeAcc {
    counts: latency::MergedCounts,
    rows: u64,
}

impl MergeAcc {
    fn add_all(&mut self, values: &ArrayRef) -> Result<()> {
        let values = if values.data_type() == &DataType::Binary {
            values.clone()
        } else {
            arrow::compute::cast(values, &DataType::Binary)?
        };
        for b in values.as_binary::<i32>().iter().flatten() {
            self.counts.add_encoded(b).or_else(|e| {
                exec_err!("hdr_merge: the argument is {e}; pass the latency.hist column")
            })?;
            self.rows += 1;
        }
        Ok(())
    }
}

impl Accumulator for MergeAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add_all(&values[0])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Binary(
            (self.rows > 0).then(|| latency::encode(&self.counts.histogram())),
        ))
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Self>() + self.counts.heap_bytes()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.evaluate()?])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.add_all(&states[0])
    }
}

/// The scalar functions, to register on a context.
pub fn scalar_functions() -> Vec<ScalarUDF> {
    let binary = || DataType::Binary;
    vec![
        ScalarUDF::new_from_impl(HdrScalar {
            kind: Kind::Quantile,
            signature: Signature::exact(vec![binary(), DataType::Float64], Volatility::Immutable),
        }),
        ScalarUDF::new_from_impl(HdrScalar {
            kind: Kind::Count,
            signature: Signature::exact(vec![binary()], Volatility::Immutable),
        }),
        ScalarUDF::new_from_impl(HdrScalar {
            kind: Kind::Max,
            signature: Signature::exact(vec![binary()], Volatility::Immutable),
        }),
    ]
}

/// The aggregate function, to register on a context.
pub fn aggregate_functions() -> Vec<AggregateUDF> {
    vec![AggregateUDF::new_from_impl(HdrMerge {
        signature: Signature::exact(vec![DataType::Binary], Volatility::Immutable),
    })]
}
