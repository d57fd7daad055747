//! Pure numeric kernels: no Arrow, no DataFusion. The SQL functions wrap these.

pub mod adjust;
pub mod bootstrap;
pub mod contingency;
pub mod distributions;
pub mod double_double;
pub mod ks;
pub mod logistic;
pub mod moments;
pub mod permutation;
pub mod power;
pub mod ranks;
pub mod reclassification;
pub mod roc;
pub mod separation;
pub mod signed_rank;
pub mod tally;
pub mod wide;

/// How a test computes its p-value; each test documents its own rule for `Auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PValueMethod {
    /// The test's default rule for choosing between the two below.
    Auto,
    /// The exact null distribution.
    Exact,
    /// The large-sample approximation.
    Asymptotic,
}
