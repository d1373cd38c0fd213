//! The `unlatch` binary: reads the command line, runs the preflight on a
//! small async runtime, drops it, then execs COMMAND. `main` alone decides
//! the exit code.

use std::ffi::OsString;
use std::process::ExitCode;

use unlatch::config::{self, Config, Env};
use unlatch::exit::{self, Code, Failure};
use unlatch::{db, launch, logging, status, supervise, trail};

const USAGE: &str = "\
unlatch: heal a stale migration lock, run the migrations, then start the app

Usage:
  unlatch [OPTIONS] [--] [COMMAND [ARGS...]]
  unlatch status [--json]
  unlatch history [--json]

With COMMAND, unlatch runs the preflight (wait for the database, take its
guard, heal the migration lock, run UNLATCH_MIGRATE_CMD) and then execs
COMMAND in its place, or, as PID 1, supervises it (signals forwarded,
zombies reaped; see UNLATCH_MODE). Without COMMAND it runs the preflight and
exits 0 (Kubernetes initContainer, Fly release_command). `unlatch -- status`
runs a COMMAND called status.

`unlatch status` prints the database, the tool, its lock, the holder's
timestamp, its age and a verdict, changing nothing; exit 0 free, 1 live,
2 stale.

`unlatch history` lists every change unlatch made to a migration tool's
table (from its table unlatch_history), oldest first, one line each: when,
the tool and place, why, the statement run, the rows as they were, and the
statements that put them back; exit 0, with or without records.
`unlatch -- history` runs a COMMAND called history.

Options:
  -h, --help     print this help
  -V, --version  print the version
  --json         (status) print one JSON object; (history) one JSON array

Environment variables:
";

/// The subcommands: `unlatch status`, `unlatch history`.
const SUBCOMMANDS: [&str; 2] = ["status", "history"];

enum Invocation {
    Help,
    Version,
    Status { json: bool },
    History { json: bool },
    Run { command: Vec<String> },
}

fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Invocation, Failure> {
    use lexopt::prelude::*;
    let usage = |msg: String| Failure::new(Code::Config, format!("{msg}; see unlatch --help"));
    let mut parser = lexopt::Parser::from_args(args);
    let mut command = Vec::new();
    while let Some(arg) = parser.next().map_err(|e| usage(e.to_string()))? {
        match arg {
            Short('h') | Long("help") => return Ok(Invocation::Help),
            Short('V') | Long("version") => return Ok(Invocation::Version),
            Value(first) if command.is_empty() && SUBCOMMANDS.iter().any(|s| first == *s) => {
                let json = match parser.next().map_err(|e| usage(e.to_string()))? {
                    None => false,
                    Some(Long("json")) => true,
                    Some(other) => {
                        return Err(usage(format!(
                            "unlatch {}: unexpected {}",
                            first.to_string_lossy(),
                            other.unexpected()
                        )))
                    }
                };
                return Ok(match first == "status" {
                    true => Invocation::Status { json },
                    false => Invocation::History { json },
                });
            }
            Value(first) => {
                command.push(first);
                command.extend(parser.raw_args().map_err(|e| usage(e.to_string()))?);
            }
            other => {
                return Err(usage(format!(
                    "{}; to run a COMMAND that starts with -, put -- before it",
                    other.unexpected()
                )))
            }
        }
    }
    let command = command
        .into_iter()
        .map(|arg| {
            arg.into_string()
                .map_err(|a| usage(format!("COMMAND argument {a:?} is not valid UTF-8")))
        })
        .collect::<Result<_, _>>()?;
    Ok(Invocation::Run { command })
}

fn main() -> ExitCode {
    // Logging settings come first, so that every later error is logged in
    // the format asked for; errors before that go to stderr plainly.
    let env = match Env::capture(std::env::vars_os())
        .and_then(|env| config::logging(&env).map(|l| (env, l)))
    {
        Ok((env, settings)) => {
            logging::init(settings);
            env
        }
        Err(failure) => {
            eprintln!("unlatch: error: {failure}");
            return ExitCode::from(failure.code.number());
        }
    };
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let termination_log = starts_the_app(&args).then(|| config::termination_log(&env));
    match run(env, args) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            log::error!("{err:#}");
            if let Some(path) = termination_log {
                logging::termination_message(&path, &format!("{err:#}"));
            }
            ExitCode::from(exit::code_of(&err).number())
        }
    }
}

/// Whether these arguments are a start (the preflight, then COMMAND), whose
/// failure is the container's to report; `status` (a probe, perhaps),
/// `history` and the supervisor's fresh image are not.
fn starts_the_app(args: &[OsString]) -> bool {
    !args
        .first()
        .is_some_and(|a| SUBCOMMANDS.iter().any(|s| a == *s) || a == supervise::FRESH_IMAGE)
}

fn run(env: Env, args: Vec<OsString>) -> anyhow::Result<u8> {
    if args.first().is_some_and(|a| a == supervise::FRESH_IMAGE) {
        let args: Vec<String> = args[1..]
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        return launch::supervise_in_fresh_image(&args);
    }
    let invocation = parse_args(args)?;
    match invocation {
        Invocation::Help => {
            print!("{USAGE}{}", config::variables_help());
            println!("\nExit codes:");
            for (code, meaning) in exit::TABLE {
                println!("  {code:<6} {}", meaning.replace('`', ""));
            }
            return Ok(0);
        }
        Invocation::Version => {
            println!("unlatch {}", env!("CARGO_PKG_VERSION"));
            return Ok(0);
        }
        _ => {}
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
    let config = Config::from_env(&env, &cwd)?;
    if let Some(target) = &config.database {
        target.password().into_iter().for_each(logging::hide);
        target.secrets().iter().for_each(|s| logging::hide(s));
    }
    // Before the runtime starts any thread: this changes the environment.
    unlatch::tls::confine_roots(config.database.as_ref().is_some_and(|t| t.only_given_roots));
    let supervised = config.launch.mode == launch::Mode::Supervise;
    if supervised && matches!(&invocation, Invocation::Run { command } if command.is_empty()) {
        return Err(Failure::new(
            Code::Config,
            "UNLATCH_MODE=supervise needs a COMMAND to supervise; expected unlatch -- COMMAND [ARGS...]",
        )
        .into());
    }
    for warning in &config.warnings {
        log::warn!("{warning}");
    }
    if let Some(line) = &config.app_profile {
        log::info!("{line}");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Any of unlatch's own statements may meet a transaction-mode pooler.
    let refuse_pooler = |err| db::refuse_pooler(err, config.database.as_ref());
    match invocation {
        Invocation::Status { json } => runtime
            .block_on(status::run(&config, json))
            .map_err(refuse_pooler),
        Invocation::History { json } => runtime
            .block_on(trail::show(&config, json))
            .map_err(refuse_pooler),
        Invocation::Run { command } => {
            let prepared = runtime
                .block_on(unlatch::preflight(&config))
                .map_err(refuse_pooler)?;
            // The connections closed with the preflight; the runtime and its
            // signal handlers go before COMMAND takes this process over.
            drop(runtime);
            // Single-threaded again: the app gets SSL_CERT_* as they were.
            unlatch::tls::release_roots();
            launch::start(&command, &config.launch, &prepared)
        }
        Invocation::Help | Invocation::Version => unreachable!("handled above"),
    }
}
