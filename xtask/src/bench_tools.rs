//! The "real tools" table: workloads as users run them (a cargo build, an npm install, a pip
//! install into a venv, a Python analysis of a 300k-row CSV, a git clone and commit), each
//! inside a task the daemon started with a least-privilege policy, against the same workload
//! with no enforcer, interleaved, median of RUNS each. Everything is local (no network): the
//! packages are built here, the repository is cloned from a directory.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, ensure};
use serde_json::{Value, json};

use crate::{
    bench_daemon::Daemon,
    bench_harness::{DIR, Setup, median},
};

const RUNS: usize = 5;
const CSV_ROWS: usize = 300_000;

struct Workload {
    name: &'static str,
    /// Run once before any measured run, outside any task (inputs the tool itself builds).
    once: String,
    /// Run before each measured run, outside any task (puts the workspace back).
    reset: String,
    /// The measured run, as `sh -c` in the workspace.
    script: String,
    /// The programs it needs; missing ones skip the workload, loudly.
    needs: &'static [&'static str],
}

fn workspace() -> PathBuf {
    Path::new(DIR).join("tools")
}

/// What a new user would write for these tools: their binaries, the system's libraries and
/// the few files of /etc they read, the toolchains' homes read-only, the workspace writable.
fn policy(home: &str) -> String {
    format!(
        r#"[policy]
name = "tools"
version = 1
[limits]
ttl = "10m"
[exec]
allow = [
    "/usr/local/bin/", "/usr/bin/", "/usr/lib/git-core/", "/usr/libexec/", "/usr/lib/gcc/", "/usr/lib/node_modules/",
    "/usr/local/libexec/git-core/",
    "{home}/.cargo/bin/", "{home}/.rustup/toolchains/", "{home}/.pyenv/",
    "${{workspace}}/venv/bin/",
]
[files]
read = [
    "${{workspace}}/", "/tmp/", "/usr/", "/lib/", "/lib64/", "/proc/", "/sys/devices/system/cpu/",
    "/sys/kernel/mm/transparent_hugepage/",
    "/sys/fs/cgroup/",
    "/etc/ld.so.cache", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/localtime",
    "/etc/gitconfig", "/etc/ssl/", "/etc/hosts", "/etc/resolv.conf", "/etc/host.conf",
    "/etc/gai.conf", "/etc/mime.types", "/etc/npmrc", "/etc/locale.alias", "/etc/debian_version",
    "/etc/os-release", "/usr/lib/os-release",
    "{home}/.cargo/", "{home}/.rustup/", "{home}/.pyenv/", "{home}/.gitconfig",
    "/dev/null", "/dev/urandom", "/dev/random", "/dev/tty",
]
write = ["${{workspace}}/", "/tmp/", "/dev/null", "/dev/tty"]
"#
    )
}

fn sh(script: &str) -> anyhow::Result<()> {
    let status = Command::new("/usr/bin/sh")
        .args(["-c", script])
        .current_dir(workspace())
        .status()
        .with_context(|| format!("sh -c {script:?}"))?;
    ensure!(status.success(), "{script:?}: {status}");
    Ok(())
}

fn have(program: &str) -> bool {
    Command::new("/usr/bin/sh")
        .args(["-c", &format!("command -v {program} >/dev/null")])
        .status()
        .is_ok_and(|s| s.success())
}

/// The inputs every workload starts from.
fn prepare() -> anyhow::Result<Vec<Workload>> {
    let w = workspace();
    let _ = fs::remove_dir_all(&w);
    fs::create_dir_all(&w)?;
    let ws = w.display();

    // A small crate with no dependencies (a dozen modules, so rustc has work to do).
    fs::create_dir_all(w.join("crate/src"))?;
    fs::write(
        w.join("crate/Cargo.toml"),
        "[package]\nname = \"small\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )?;
    let mut main = String::new();
    for i in 0..12 {
        main.push_str(&format!("mod m{i};\n"));
        fs::write(
            w.join(format!("crate/src/m{i}.rs")),
            format!(
                "pub fn f(v: &[u64]) -> u64 {{ v.iter().map(|x| x.wrapping_mul({i} + 3)).sum() }}\n\
                 pub fn g(s: &str) -> Vec<String> {{ s.split(',').map(|p| format!(\"{i}{{p}}\")).collect() }}\n"
            ),
        )?;
    }
    main.push_str("fn main() {\n    let v: Vec<u64> = (0..100).collect();\n");
    for i in 0..12 {
        main.push_str(&format!(
            "    println!(\"{{}} {{:?}}\", m{i}::f(&v), m{i}::g(\"a,b\"));\n"
        ));
    }
    main.push_str("}\n");
    fs::write(w.join("crate/src/main.rs"), main)?;

    // npm: an app depending on a local package tarball, installed offline.
    fs::create_dir_all(w.join("dep"))?;
    fs::write(
        w.join("dep/package.json"),
        r#"{"name":"dep","version":"1.0.0","main":"index.js"}"#,
    )?;
    for i in 0..40 {
        fs::write(
            w.join(format!("dep/f{i}.js")),
            format!("module.exports = {i};\n"),
        )?;
    }
    fs::write(w.join("dep/index.js"), "module.exports = 'dep';\n")?;
    fs::create_dir_all(w.join("app"))?;
    fs::write(
        w.join("app/package.json"),
        r#"{"name":"app","version":"1.0.0","dependencies":{"dep":"file:../dep-1.0.0.tgz"}}"#,
    )?;

    // Python: a CSV to analyse, a wheel to install, and the script.
    let mut csv = String::from("region,product,qty,price\n");
    for i in 0..CSV_ROWS {
        csv.push_str(&format!(
            "r{},p{},{},{}.{:02}\n",
            i % 17,
            i % 101,
            i % 9 + 1,
            i % 500,
            i % 100
        ));
    }
    fs::write(w.join("sales.csv"), csv)?;
    fs::write(
        w.join("analyse.py"),
        "import csv, collections, json, statistics\n\
         by = collections.defaultdict(list)\n\
         with open('sales.csv') as f:\n\
         \x20   for row in csv.DictReader(f):\n\
         \x20       by[row['region']].append(int(row['qty']) * float(row['price']))\n\
         report = {r: {'n': len(v), 'sum': round(sum(v), 2), 'median': statistics.median(v)} for r, v in sorted(by.items())}\n\
         with open('report.json', 'w') as f:\n\
         \x20   json.dump(report, f, indent=1)\n",
    )?;
    fs::write(
        w.join("wheel.py"),
        "import zipfile, hashlib, base64\n\
         files = {'smallpkg/__init__.py': 'VALUE = 1\\n'}\n\
         for i in range(30): files[f'smallpkg/m{i}.py'] = f'X = {i}\\n'\n\
         di = 'smallpkg-1.0.dist-info/'\n\
         files[di + 'METADATA'] = 'Metadata-Version: 2.1\\nName: smallpkg\\nVersion: 1.0\\n'\n\
         files[di + 'WHEEL'] = 'Wheel-Version: 1.0\\nGenerator: bench\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n'\n\
         rec = []\n\
         for n, t in files.items():\n\
         \x20   d = base64.urlsafe_b64encode(hashlib.sha256(t.encode()).digest()).rstrip(b'=').decode()\n\
         \x20   rec.append(f'{n},sha256={d},{len(t)}')\n\
         rec.append(di + 'RECORD,,')\n\
         files[di + 'RECORD'] = '\\n'.join(rec) + '\\n'\n\
         with zipfile.ZipFile('smallpkg-1.0-py3-none-any.whl', 'w') as z:\n\
         \x20   for n, t in files.items(): z.writestr(n, t)\n",
    )?;

    let git = "git -c user.name=bench -c user.email=bench@example.invalid";
    let mut workloads = vec![
        Workload {
            name: "cargo build (12 modules, no deps)",
            once: String::new(),
            reset: "rm -rf crate/target".into(),
            script: format!(
                "cd crate && CARGO_HOME={ws}/cargo-home RUSTUP_TOOLCHAIN=stable cargo build --offline -q"
            ),
            needs: &["cargo", "cc"],
        },
        Workload {
            name: "npm install (local tarball)",
            once: format!(
                "cd dep && npm pack --silent --cache {ws}/npm-cache >/dev/null && mv dep-1.0.0.tgz .."
            ),
            reset: "rm -rf app/node_modules app/package-lock.json".into(),
            script: format!(
                "cd app && npm install --offline --no-audit --no-fund --cache {ws}/npm-cache --silent"
            ),
            needs: &["npm"],
        },
        Workload {
            name: "pip install into a venv",
            once: "python3 wheel.py && python3 -m venv venv".into(),
            reset: "venv/bin/pip uninstall -q -y smallpkg >/dev/null 2>&1; true".into(),
            script: "venv/bin/pip install -q --no-index --no-deps --disable-pip-version-check \
                     smallpkg-1.0-py3-none-any.whl"
                .into(),
            needs: &["python3"],
        },
        Workload {
            name: "python: 300k-row CSV to a report",
            once: String::new(),
            reset: "rm -f report.json".into(),
            script: "python3 analyse.py".into(),
            needs: &["python3"],
        },
        Workload {
            name: "git clone + commit",
            once: format!(
                "mkdir origin && cd origin && git init -q && for i in $(seq 1 200); do echo $i > f$i; done && \
                 echo readme > README && git add . && {git} commit -q -m init"
            ),
            reset: "rm -rf clone".into(),
            script: format!(
                "{git} clone -q origin clone && cd clone && echo change >> README && \
                 {git} commit -q -am change"
            ),
            needs: &["git"],
        },
    ];
    workloads.retain(|wl| {
        let missing: Vec<&str> = wl.needs.iter().copied().filter(|p| !have(p)).collect();
        if !missing.is_empty() {
            eprintln!(
                "    SKIPPED: {}: {} not installed on this host",
                wl.name,
                missing.join(", ")
            );
        }
        missing.is_empty()
    });
    for wl in workloads.iter().filter(|wl| !wl.once.is_empty()) {
        sh(&wl.once)?;
    }
    Ok(workloads)
}

/// Runs one workload once; its wall time in ms.
fn time_once(wl: &Workload, via: Option<(&Daemon, &Setup)>) -> anyhow::Result<f64> {
    sh(&wl.reset)?;
    let mut cmd = match via {
        Some((d, s)) => {
            let mut c = d.run_task(s, "tools");
            c.arg(format!("--var=workspace={}", workspace().display()))
                .arg("--")
                .arg("/usr/bin/sh");
            c
        }
        None => Command::new("/usr/bin/sh"),
    };
    cmd.args(["-c", &wl.script]).current_dir(workspace());
    let t = Instant::now();
    let status = cmd.status().with_context(|| wl.name)?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    ensure!(
        status.success(),
        "{} ({}): {status}",
        wl.name,
        if via.is_some() { "in a task" } else { "plain" }
    );
    Ok(ms)
}

pub fn run(s: &Setup) -> anyhow::Result<Value> {
    let workloads = prepare()?;
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let policy = workspace().join("tools.toml");
    fs::write(&policy, self::policy(&home))?;
    let daemon = Daemon::start_with(s, &[("tools", &policy)])?;
    let mut rows = serde_json::Map::new();
    for wl in &workloads {
        eprint!("    {}", wl.name);
        // One warm-up each, not measured (page cache, the venv's first compile of .pyc).
        time_once(wl, None)?;
        time_once(wl, Some((&daemon, s)))?;
        let (lines_before, bytes_before) = daemon.events_written()?;
        let (mut plain, mut task) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            plain.push(time_once(wl, None)?);
            task.push(time_once(wl, Some((&daemon, s)))?);
        }
        let (lines, bytes) = daemon.events_written()?;
        let (p, t) = (median(&mut plain), median(&mut task));
        eprintln!(": {t:.0} ms vs {p:.0} ms ({:.2}x)", t / p);
        rows.insert(
            wl.name.into(),
            json!({ "plain_ms": p, "in_task_ms": t, "ratio": t / p,
                    "event_lines_per_run": (lines - lines_before) as f64 / RUNS as f64,
                    "event_bytes_per_run": (bytes - bytes_before) as f64 / RUNS as f64 }),
        );
    }
    daemon.stop()?;
    Ok(json!({
        "runs": RUNS,
        "mode": "fallback (this host refuses BPF LSM programs; lsm mode is not measured here)",
        "workloads": rows,
    }))
}

pub fn print(r: &Value) {
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    println!(
        "\nreal tools through the daemon, {} ({} runs, median):",
        r["mode"].as_str().unwrap_or("?"),
        r["runs"]
    );
    println!(
        "| workload | in task ms | plain ms | in task / plain | events per run (lines, KiB) |"
    );
    println!("| --- | --- | --- | --- | --- |");
    if let Some(rows) = r["workloads"].as_object() {
        for (name, v) in rows {
            println!(
                "| {name} | {:.0} | {:.0} | {:.3} | {:.0}, {:.1} |",
                f(&v["in_task_ms"]),
                f(&v["plain_ms"]),
                f(&v["ratio"]),
                f(&v["event_lines_per_run"]),
                f(&v["event_bytes_per_run"]) / 1024.0
            );
        }
    }
}
