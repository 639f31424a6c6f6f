//! What the daemon and a standalone `enforcer run` share about a task's life, each in one
//! place:
//!
//! - [`install`]: a task's kernel entries (rules, identities, flags, limits, the tag) written
//!   for a planned policy — where a task starts;
//! - [`drain`]: the kernel's events read, attributed to their task and generation, written —
//!   where a task gets its events (the daemon's table holds many tasks, a standalone run one);
//! - [`ending`]: which kernel event ends a task, and ending it (the kill of what is left) —
//!   where it gets counted and ended;
//! - [`task_end`]: the one `task_end` record — where it ends;
//! - [`programs`]: loading the programs, with the fallback from lsm mode in auto mode.
pub mod drain;
pub mod ending;
pub mod install;
pub mod programs;
pub mod task;
pub mod task_end;
pub mod tasks;
