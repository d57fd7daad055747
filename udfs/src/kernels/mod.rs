//! Pure numeric kernels: no Arrow, no DataFusion. The SQL functions wrap these.

pub mod adjust;
pub mod contingency;
pub mod distributions;
pub mod ks;
pub mod logistic;
pub mod moments;
pub mod ranks;
pub mod roc;
pub mod signed_rank;
pub mod tally;
