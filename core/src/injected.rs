//! Bugs injected on purpose, so that the simulation can show it catches them. Without
//! the `injected-bugs` feature nothing can switch one on and every check below is
//! `false`; with it, a bug is switched on for the current thread only (the simulation
//! runs a whole district on one thread).

/// A bug the simulation must catch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// The server answers (and so acknowledges) changes before they are durable.
    AckBeforeCommit,
    /// The server stores every change of a message but the last, while answering that it
    /// has them all.
    DropChange,
    /// Any supervisor who may read a case decides it, a shared district's among them.
    SharedDistrictDecides,
}

#[cfg(feature = "injected-bugs")]
thread_local! {
    static INJECTED: std::cell::Cell<Option<Bug>> = const { std::cell::Cell::new(None) };
}

/// Switches `bug` on for this thread (`None`: none).
#[cfg(feature = "injected-bugs")]
pub fn inject(bug: Option<Bug>) {
    INJECTED.with(|b| b.set(bug));
}

/// Whether `bug` is switched on for this thread.
pub fn injected(bug: Bug) -> bool {
    #[cfg(feature = "injected-bugs")]
    {
        INJECTED.with(|b| b.get() == Some(bug))
    }
    #[cfg(not(feature = "injected-bugs"))]
    {
        let _ = bug;
        false
    }
}
