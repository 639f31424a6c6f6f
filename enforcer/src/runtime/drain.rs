//! Where a task gets its events: the kernel's ring is read, each event attributed to its task
//! and generation, decoded, written, and the endings it calls for collected. The daemon reads
//! for many tasks, a standalone run for its one; both through [`drain`].
use std::borrow::Cow;

use aya::maps::{MapData, RingBuf};
use enforcer_common::Event;
use serde_json::{Value, json};

use super::ending;
use crate::{
    events::{Emitter, decode, kernel_event::from_kernel, record::TaskContext},
    policy::Policy,
};

/// Whose an event is, as the runtime's task table says.
pub struct Attributed<'a> {
    /// What the record names (the task, its generation).
    pub ctx: Cow<'a, TaskContext>,
    /// The policy of the event's generation, for naming its rule.
    pub policy: &'a Policy,
    /// The task's cgroup id and whether it is ending already; `None` for an event of no known
    /// task (written, never ending anything).
    pub task: Option<(u64, bool)>,
}

/// The task table a drain attributes events with.
pub trait Attribute {
    fn attribute(&self, ev: &Event) -> Attributed<'_>;
}

/// What one drain read.
#[derive(Debug, Default)]
pub struct Drained {
    pub events: usize,
    /// The tasks (by cgroup id) the kernel ended, with why, each once.
    pub ends: Vec<(u64, String)>,
}

/// Reads at most `max` events: a task producing events as fast as they are read must not
/// starve what else the caller does (the next call reads on). Flushes every 1024 events, so a
/// flood is written in large writes but never held back long.
pub fn drain(
    ring: &mut RingBuf<MapData>,
    max: usize,
    book: &impl Attribute,
    emitter: &mut Emitter,
) -> Drained {
    let mut out = Drained::default();
    while out.events < max
        && let Some(item) = ring.next()
    {
        out.events += 1;
        let Some(ev) = decode(&item) else { continue };
        drop(item);
        if out.events.is_multiple_of(1024) {
            emitter.flush();
        }
        let who = book.attribute(&ev);
        // Ending already, or ended earlier in this same read.
        let ending = who.task.map(|(id, ending_before)| {
            (id, ending_before || out.ends.iter().any(|(e, _)| *e == id))
        });
        if ending.is_some_and(|(_, ending)| ending::is_repeat(&ev, ending)) {
            continue;
        }
        let record = from_kernel(&ev, &who.ctx, who.policy);
        if let Some((id, _)) = ending
            && let Some(why) = ending::of(&ev, record.as_ref())
            && !out.ends.iter().any(|(e, _)| *e == id)
        {
            out.ends.push((id, why));
        }
        if let Some(r) = record {
            emitter.emit(&r);
        }
    }
    out
}

/// The details of an `events_dropped` record when the kernel's drop counter rose past `seen`
/// (which it advances): a lost event is never silent.
pub fn dropped_since(seen: &mut u64, total: u64) -> Option<Value> {
    (total > *seen).then(|| {
        let details = json!({ "dropped": total - *seen, "dropped_total": total });
        *seen = total;
        details
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rise_of_the_drop_counter_is_reported_once() {
        let mut seen = 0;
        assert_eq!(dropped_since(&mut seen, 0), None);
        assert_eq!(
            dropped_since(&mut seen, 5),
            Some(json!({ "dropped": 5, "dropped_total": 5 }))
        );
        assert_eq!(dropped_since(&mut seen, 5), None);
        assert_eq!(
            dropped_since(&mut seen, 7),
            Some(json!({ "dropped": 2, "dropped_total": 7 }))
        );
    }
}
