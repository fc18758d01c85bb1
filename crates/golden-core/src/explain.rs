//! One shape for every error a user meets: its message and causes (`std::error::Error`), the
//! [`Kind`] that decides the exit code, and hints that say what to do next. Every error type
//! of golden implements [`Explain`]; the command line prints the chain and every hint once.

/// What an error means for the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Exit 1: fix the cause and run again.
    Failure,
    /// Exit 3: the saved plan no longer matches the world; plan again.
    StalePlan,
}

/// What golden can say about an error besides its message.
pub trait Explain {
    /// Which exit code the error means.
    fn kind(&self) -> Kind {
        Kind::Failure
    }

    /// What the user can do next, when golden knows.
    fn hints(&self) -> Vec<String> {
        Vec::new()
    }
}

impl Explain for crate::plan::PlanError {
    fn hints(&self) -> Vec<String> {
        vec![self.hint()]
    }
}
