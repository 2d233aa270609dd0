//! The Chinese labels of the codes stored in documents and projections, for pages and
//! exports.

use anjian_core::{
    CaseType, Industry, Level, RectificationState, ReviewState, ViolationKind, WritKind, WritState,
};

/// A code's Chinese label, or the code itself when unknown.
pub fn label_of<T: std::str::FromStr + Labelled>(code: &str) -> String {
    code.parse::<T>()
        .map(|v| v.label().to_owned())
        .unwrap_or_else(|_| code.to_owned())
}

/// Coded enums with a Chinese label.
pub trait Labelled {
    /// The label.
    fn label(&self) -> &'static str;
}

macro_rules! labelled {
    ($($t:ty),*) => { $(impl Labelled for $t { fn label(&self) -> &'static str { <$t>::label(*self) } })* };
}
labelled!(
    Industry,
    CaseType,
    ReviewState,
    Level,
    RectificationState,
    ViolationKind,
    WritKind,
    WritState
);
