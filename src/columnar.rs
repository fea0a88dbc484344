//! `paths.parquet`: the paths table as a columnar file that pandas, polars and DuckDB read
//! directly, for studies whose `paths.csv` runs to millions of rows.
//!
//! Same columns, same order and same values as `paths.csv` (`policy` as UTF-8, `path` and the
//! counts, such as `liquidated_positions`, as INT64, every other figure as DOUBLE), one row
//! group per policy and million rows, Snappy-compressed. Counts are integers so that a notebook
//! gets the same column types from every file: `pandas.read_csv` types a column by its values.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use parquet::basic::{Compression, ConvertedType, Repetition, Type as Physical};
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

use crate::error::{Error, Result};
use crate::runner::RunOutput;
use crate::scenario::Scenario;

/// File name within a result directory.
pub const FILE: &str = "paths.parquet";

/// Rows per row group at most.
const GROUP: u64 = 1_000_000;

fn column(name: &str, physical: Physical) -> Result<Arc<Type>, parquet::errors::ParquetError> {
    let mut b = Type::primitive_type_builder(name, physical).with_repetition(Repetition::REQUIRED);
    if physical == Physical::BYTE_ARRAY {
        b = b.with_converted_type(ConvertedType::UTF8);
    }
    Ok(Arc::new(b.build()?))
}

/// Writes `paths.parquet` into `dir`.
pub fn write_paths(dir: &Path, scenario: &Scenario, out: &RunOutput) -> Result<()> {
    let path = dir.join(FILE);
    let err = |e: parquet::errors::ParquetError| {
        Error::io(
            format!("cannot write {}", path.display()),
            std::io::Error::other(e),
        )
    };
    let f = scenario.file();
    let names: Vec<String> = f.venues.iter().map(|v| v.name.clone()).collect();
    let figures = out.layout.columns(&names);
    let counts = out.layout.counts();
    let mut fields = vec![
        column("policy", Physical::BYTE_ARRAY).map_err(err)?,
        column("path", Physical::INT64).map_err(err)?,
    ];
    for (name, &count) in figures.iter().zip(&counts) {
        let physical = if count {
            Physical::INT64
        } else {
            Physical::DOUBLE
        };
        fields.push(column(name, physical).map_err(err)?);
    }
    let schema = Arc::new(
        Type::group_type_builder("paths")
            .with_fields(fields)
            .build()
            .map_err(err)?,
    );
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let file = File::create(&path)
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    let mut writer = SerializedFileWriter::new(file, schema, props).map_err(err)?;
    for (p, policy) in f.policies.iter().enumerate() {
        let mut start = out.range.start;
        while start < out.range.end {
            let end = (start + GROUP).min(out.range.end);
            let mut group = writer.next_row_group().map_err(err)?;
            let mut index = 0;
            while let Some(mut col) = group.next_column().map_err(err)? {
                match index {
                    0 => {
                        let v = vec![ByteArray::from(policy.name.as_str()); (end - start) as usize];
                        col.typed::<ByteArrayType>()
                            .write_batch(&v, None, None)
                            .map_err(err)?;
                    }
                    1 => {
                        let v: Vec<i64> = (start..end).map(|i| i as i64).collect();
                        col.typed::<Int64Type>()
                            .write_batch(&v, None, None)
                            .map_err(err)?;
                    }
                    k if counts[k - 2] => {
                        // Sums of whole numbers far below 2^53: exact in the row's f64.
                        let v: Vec<i64> =
                            (start..end).map(|i| out.row(i, p)[k - 2] as i64).collect();
                        col.typed::<Int64Type>()
                            .write_batch(&v, None, None)
                            .map_err(err)?;
                    }
                    k => {
                        let v: Vec<f64> = (start..end).map(|i| out.row(i, p)[k - 2]).collect();
                        col.typed::<DoubleType>()
                            .write_batch(&v, None, None)
                            .map_err(err)?;
                    }
                }
                col.close().map_err(err)?;
                index += 1;
            }
            group.close().map_err(err)?;
            start = end;
        }
    }
    writer.close().map_err(err)?;
    Ok(())
}
