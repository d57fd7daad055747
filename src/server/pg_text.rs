//! Text values as PostgreSQL writes them where pgwire's encoder differs: PostgreSQL prints
//! the fractional seconds of a `timestamp`, `timestamptz` or `time` without trailing zeros
//! (`13:45:30.25`, `13:45:30`), pgwire always with six digits (`13:45:30.250000`). Applied
//! to text-format result rows on their way out.

use bytes::{BufMut, BytesMut};
use pgwire::api::Type;
use pgwire::api::results::{FieldFormat, FieldInfo};
use pgwire::messages::data::DataRow;

/// The positions of the text-format time columns of a result, if any.
pub fn time_columns(fields: &[FieldInfo]) -> Vec<usize> {
    fields
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            f.format() == FieldFormat::Text
                && matches!(
                    *f.datatype(),
                    Type::TIMESTAMP | Type::TIMESTAMPTZ | Type::TIME | Type::TIMETZ
                )
        })
        .map(|(i, _)| i)
        .collect()
}

/// The row with trailing zeros of fractional seconds removed in `columns`.
pub fn trim_fractions(row: DataRow, columns: &[usize]) -> DataRow {
    if columns.is_empty() {
        return row;
    }
    let mut out = BytesMut::with_capacity(row.data.len());
    let mut rest: &[u8] = &row.data;
    for i in 0..row.field_count.max(0) as usize {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return row;
        };
        let len = i32::from_be_bytes(*len);
        if len < 0 {
            out.put_i32(len);
            rest = tail;
            continue;
        }
        let Some((value, tail)) = tail.split_at_checked(len as usize) else {
            return row;
        };
        rest = tail;
        let trimmed = if columns.contains(&i) {
            trimmed_fraction(value)
        } else {
            value.to_vec()
        };
        out.put_i32(trimmed.len() as i32);
        out.put_slice(&trimmed);
    }
    DataRow::new(out, row.field_count)
}

/// `13:45:30.250000+02` → `13:45:30.25+02`, `13:45:30.000000` → `13:45:30`: the first
/// `.` that follows a digit and is followed by digits starts the fraction.
fn trimmed_fraction(value: &[u8]) -> Vec<u8> {
    let dot = value
        .windows(2)
        .position(|w| w[0] == b'.' && w[1].is_ascii_digit())
        .filter(|&d| d > 0 && value[d - 1].is_ascii_digit());
    let Some(dot) = dot else {
        return value.to_vec();
    };
    let digits_end = value[dot + 1..]
        .iter()
        .position(|b| !b.is_ascii_digit())
        .map_or(value.len(), |p| dot + 1 + p);
    let mut keep = digits_end;
    while keep > dot + 1 && value[keep - 1] == b'0' {
        keep -= 1;
    }
    if keep == dot + 1 {
        keep = dot;
    }
    let mut out = value[..keep].to_vec();
    out.extend_from_slice(&value[digits_end..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_lose_their_trailing_zeros() {
        for (pgwire, postgres) in [
            ("2024-02-29 13:45:30.250000", "2024-02-29 13:45:30.25"),
            ("2024-02-29 13:45:30.000000", "2024-02-29 13:45:30"),
            ("2024-02-29 13:45:30.123456", "2024-02-29 13:45:30.123456"),
            ("2024-02-29 11:45:30.500000+00", "2024-02-29 11:45:30.5+00"),
            ("13:45:30.000000", "13:45:30"),
            ("2024-02-29 13:45:30", "2024-02-29 13:45:30"),
            ("infinity", "infinity"),
        ] {
            assert_eq!(trimmed_fraction(pgwire.as_bytes()), postgres.as_bytes());
        }
    }

    #[test]
    fn only_the_named_columns_change() {
        let mut data = BytesMut::new();
        for value in [Some("1.500000"), None, Some("2024-01-02 03:04:05.100000")] {
            match value {
                Some(v) => {
                    data.put_i32(v.len() as i32);
                    data.put_slice(v.as_bytes());
                }
                None => data.put_i32(-1),
            }
        }
        let row = trim_fractions(DataRow::new(data, 3), &[1, 2]);
        let mut want = BytesMut::new();
        want.put_i32(8);
        want.put_slice(b"1.500000");
        want.put_i32(-1);
        want.put_i32(21);
        want.put_slice(b"2024-01-02 03:04:05.1");
        assert_eq!(row.data, want);
    }
}
