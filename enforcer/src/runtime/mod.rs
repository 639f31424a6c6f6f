//! What the daemon and a standalone `enforcer run` share about a task's life, each in one
//! place:
//!
//! - [`install`]: a task's kernel entries (rules, identities, flags, limits, the tag) written
//!   for a planned policy — where a task starts;
//! - [`ending`]: which kernel event ends a task, and why — where it gets counted and ended;
//! - [`task_end`]: the one `task_end` record — where it ends;
//! - [`programs`]: loading the programs, with the fallback from lsm mode in auto mode.
//!
//! Both drains (the daemon's over many tasks, the standalone one over its task) decode with
//! `events::kernel_event::from_kernel` and decide endings with [`ending::of`].
pub mod ending;
pub mod install;
pub mod programs;
pub mod task_end;
