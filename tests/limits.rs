//! The task's budget: TTL and count limits, counted in the kernel. On excess the whole task is
//! killed (exit 137) and one `limit` event names the limit and the counts.
use std::net::TcpListener;

use enforcer_tests::{PolicyBuilder, Scratch, assert_common_fields, probe, require_root, run};

fn policy(s: &Scratch, limits: &[&str]) -> PolicyBuilder {
    let mut p = PolicyBuilder::default();
    p.read.push(format!("{}/", s.ws()));
    p.limits = limits.iter().map(|l| (*l).to_owned()).collect();
    p
}

fn assert_one_limit(out: &enforcer_tests::Outcome, name: &str) -> serde_json::Value {
    assert_eq!(out.code, Some(137), "killed; stderr {}", out.stderr);
    let limits: Vec<_> = out.events.iter().filter(|e| e["op"] == "limit").collect();
    assert_eq!(limits.len(), 1, "exactly one limit event:\n{}", out.dump());
    let e = limits[0];
    assert_common_fields(e);
    assert_eq!(e["target"], name);
    assert_eq!(e["decision"], "kill");
    assert_eq!(e["rule"], format!("limits.{name}"));
    let end = out.lifecycle("task_end");
    assert_eq!(end["reason"], format!("limit {name} exceeded"));
    // The process that crossed the limit dies in the kernel at once; the command's own process
    // may exit by itself before cgroup.kill reaches it, so `signal` is not asserted. The status
    // is 137 either way (checked above).
    e.clone()
}

/// The task (its command sleeps 30 s) ended within a few seconds of its 1 s TTL. Measured from
/// the task's start (`task_end.duration_ms`), not from `enforcer run`'s: loading the programs
/// takes seconds under emulation in the VM stage.
fn assert_killed_soon_after_ttl(out: &enforcer_tests::Outcome) {
    let end = out.lifecycle("task_end");
    let ms = end["duration_ms"].as_u64().unwrap_or(u64::MAX);
    assert!(
        (1_000..10_000).contains(&ms),
        "the task lasted {ms} ms: {end}"
    );
}

#[test]
fn ttl_kills_the_whole_task() {
    if !require_root("ttl_kills_the_whole_task") {
        return;
    }
    let s = Scratch::new("ttl");
    let pr = probe();
    let out = run(
        &s,
        &policy(&s, &["ttl = \"1s\""]),
        &[],
        &[&pr, "spawn", &pr, "sleep", "30"],
    );
    assert_one_limit(&out, "ttl");
    assert_killed_soon_after_ttl(&out);

    // --ttl overrides the policy.
    let out = run(
        &s,
        &policy(&s, &["ttl = \"1h\""]),
        &["--ttl", "1s"],
        &[&pr, "sleep", "30"],
    );
    assert_one_limit(&out, "ttl");
    assert_killed_soon_after_ttl(&out);
}

#[test]
fn max_execs_is_counted_in_the_kernel() {
    if !require_root("max_execs_is_counted_in_the_kernel") {
        return;
    }
    let s = Scratch::new("max-execs");
    let pr = probe();
    // 1 exec for the command itself, then 5 more: the 4th exec exceeds 3.
    let out = run(
        &s,
        &policy(&s, &["max_execs = 3"]),
        &[],
        &[&pr, "repeat", "5", &pr, "exists", "/"],
    );
    let e = assert_one_limit(&out, "max_execs");
    assert_eq!(e["count"], 4);
    assert_eq!(e["limit"], 3);
}

#[test]
fn max_connects_is_counted_in_the_kernel() {
    if !require_root("max_connects_is_counted_in_the_kernel") {
        return;
    }
    let s = Scratch::new("max-connects");
    let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = listener.local_addr().unwrap().port();
    let mut p = policy(&s, &["max_connects = 2"]);
    p.connect.push(format!("127.0.0.1:{port}"));
    let pr = probe();
    let addr = format!("127.0.0.1:{port}");
    let out = run(&s, &p, &[], &[&pr, "repeat", "4", &pr, "connect", &addr]);
    let e = assert_one_limit(&out, "max_connects");
    assert_eq!(e["count"], 3);
    assert_eq!(e["limit"], 2);
    assert_eq!(out.events("connect", "allow").len(), 2, "{}", out.dump());
    // The connect over the limit is refused in the kernel.
    let refused = out.events("connect", "deny");
    assert_eq!(refused.len(), 1, "{}", out.dump());
    assert_eq!(refused[0]["errno"], "EPERM");
}

#[test]
fn max_denials_ends_a_task_that_keeps_probing() {
    if !require_root("max_denials_ends_a_task_that_keeps_probing") {
        return;
    }
    let s = Scratch::new("max-denials");
    let pr = probe();
    let target = s.path("outside/secret.txt");
    let out = run(
        &s,
        &policy(&s, &["max_denials = 2"]),
        &[],
        &[&pr, "repeat", "5", &pr, "read", &target],
    );
    let e = assert_one_limit(&out, "max_denials");
    assert_eq!(e["count"], 3);
    assert_eq!(e["limit"], 2);
    assert_eq!(out.events("open", "deny").len(), 3, "{}", out.dump());
}
