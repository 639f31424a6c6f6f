//! `enforcer events --follow`: a live tail from the daemon.
use std::{
    io::{BufRead as _, BufReader, IsTerminal as _, Write as _},
    os::unix::net::UnixStream,
};

use enforcer::daemon::protocol::{self, Op, Reply};
use serde_json::Value;

use super::EventsArgs;

/// One short line: time, decision, operation, target, task, and the rule for refusals.
pub fn compact(e: &Value, colour: bool) -> String {
    let s = |k: &str| e[k].as_str().unwrap_or("");
    let time = s("time").get(11..23).unwrap_or(s("time"));
    let decision = s("decision");
    let paint = |code: &str, text: &str| {
        if colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    };
    let shown = match decision {
        "deny" => paint("1;31", "DENY "),
        "kill" => paint("1;35", "KILL "),
        "audit" => paint("33", "AUDIT"),
        "allow" => paint("32", "allow"),
        other => format!("{other:5}"),
    };
    let mut line = format!(
        "{time} {shown} {op:<10} {target} [{task_id}]",
        op = s("op"),
        target = s("target"),
        task_id = s("task_id"),
    );
    if matches!(decision, "deny" | "kill") && !s("rule").is_empty() {
        line.push_str(&format!(" {}", paint("2", s("rule"))));
    }
    line
}

pub fn run(args: EventsArgs) -> i32 {
    let socket = args
        .socket
        .clone()
        .unwrap_or_else(enforcer::daemon::client::default_socket);
    let mut stream = match UnixStream::connect(&socket) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "enforcer: cannot reach the daemon at {}: {e} (is `enforcer daemon` running?)",
                socket.display()
            );
            return 1;
        }
    };
    let op = Op::Follow {
        task: args.task.clone(),
        decision: args.decision.clone(),
    };
    let mut line = protocol::encode_request(&op);
    line.push('\n');
    if let Err(e) = stream.write_all(line.as_bytes()) {
        eprintln!("enforcer: sending to the daemon: {e}");
        return 1;
    }
    let mut reader = BufReader::new(stream);
    let mut first = String::new();
    if reader.read_line(&mut first).unwrap_or(0) == 0 {
        eprintln!("enforcer: the daemon closed the connection");
        return 1;
    }
    match serde_json::from_str::<Reply>(&first) {
        Ok(r) if r.ok => {}
        Ok(r) => {
            eprintln!("enforcer: {}", r.error.unwrap_or_default());
            return 1;
        }
        Err(e) => {
            eprintln!("enforcer: malformed reply from the daemon: {e}");
            return 1;
        }
    }
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let out = std::io::stdout();
    for l in reader.lines() {
        let Ok(l) = l else { break };
        let text = if args.output == "json" {
            l
        } else {
            match serde_json::from_str::<Value>(&l) {
                Ok(e) => compact(&e, colour),
                Err(_) => l,
            }
        };
        let mut o = out.lock();
        if writeln!(o, "{text}").and_then(|()| o.flush()).is_err() {
            return 0;
        }
    }
    eprintln!("enforcer: the daemon ended the stream");
    1
}
