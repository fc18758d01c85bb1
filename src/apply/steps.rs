//! The steps, each "make it so" against one site. (Being written.)

use super::{Context, Outcome, Progress, StepError};
use crate::plan::Step;

/// Runs one step. Safe to repeat: a step that finds its work done reports `AlreadyDone`.
pub async fn run_step(_ctx: &Context, step: &Step, _progress: &dyn Progress) -> Result<Outcome, StepError> {
    Err(StepError::Failed(format!(
        "step {} cannot run yet: the step implementations are not written",
        step.id
    )))
}
