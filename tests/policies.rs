//! Every policy shipped in policies/ parses, validates and compiles, and `enforcer policy
//! check` accepts it. Needs no privileges.
use std::{path::PathBuf, process::Command};

use enforcer::policy::{
    self, Vars,
    compile::{file_entries, landlock_grants, net_entries},
    explain::{Support, explain},
};
use enforcer_tests::enforcer;

fn shipped() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("policies/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 3,
        "policies/ should hold the default and two examples"
    );
    files
}

fn vars() -> Vars {
    [
        ("workspace", "/srv/repo"),
        ("data", "/srv/data"),
        ("output", "/srv/out"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

#[test]
fn every_shipped_policy_parses_and_compiles() {
    let support = Support {
        bpf_lsm: false,
        landlock_abi: 7,
        identity_checks: true,
        cgroup_nsdelegate: true,
    };
    for file in shipped() {
        let p = policy::load(&file, &vars()).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let files = file_entries(&p);
        let net = net_entries(&p, &Default::default());
        let grants = landlock_grants(&p);
        let e = explain(&p, &support);
        assert!(
            e.problems().is_empty(),
            "{}: {:?}",
            file.display(),
            e.problems()
        );
        assert_eq!(e.rules.len(), p.rules.len());
        eprintln!(
            "{}: {} rules, {} file entries, {} net entries, {} Landlock grants",
            file.display(),
            p.rules.len(),
            files.len(),
            net.len(),
            grants.len()
        );
    }
}

#[test]
fn policy_check_accepts_them_all_and_explains() {
    let mut cmd = Command::new(enforcer());
    cmd.args(["policy", "check", "--explain"]);
    for (k, v) in vars() {
        cmd.arg("--var").arg(format!("{k}={v}"));
    }
    let out = cmd.args(shipped()).output().expect("enforcer");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches(": ok: policy").count(), shipped().len());
    assert!(stdout.contains("[landlock]"), "{stdout}");
}

#[test]
fn policy_check_rejects_a_bad_policy_with_its_location() {
    let dir = std::env::temp_dir().join(format!("enforcer-policy-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[policy]\nname = \"x\"\nversion = 1\n[network]\nconnect = [\"10.0.0.1/8:443\"]\n",
    )
    .expect("write");
    let out = Command::new(enforcer())
        .args(["policy", "check"])
        .arg(&bad)
        .output()
        .expect("enforcer");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml:5:12: network.connect[0]"),
        "{stderr}"
    );
}
