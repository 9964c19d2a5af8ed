//! `herald`: the command line. Glue only — it parses the command line
//! (clap), loads the layered configuration, sets up logging, binds the
//! listener and hands everything to `herald_server::run`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use herald_server::config::{Config, LogFormat, Overrides, SETTINGS, Setting};

/// mimalloc instead of glibc's allocator, for Rust and (feature `override`)
/// for SQLite's C code too: allocation was ~19% of the core pipeline's
/// cycles and ~8% of the SQLite writer's; 1,000-row queries went from 183
/// to 377 req/s once SQLite allocated through it as well.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// No transparent huge pages for this process. mimalloc commits its arenas
/// eagerly and asks for huge pages on them, so every 2 MiB an arena
/// touches became resident: after 75k single-event requests the process
/// held 408 MiB, 373 MiB of it huge pages, against 125 MiB without them
/// (same throughput; after 1,000-row queries 591 → 262 MiB). The flag
/// covers arenas mimalloc reserved before `main` too, which an allocator
/// option set here would not.
fn no_huge_pages() {
    // SAFETY: `prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)` takes no pointers and
    // only sets a flag on this process; on failure nothing changes.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if rc != 0 {
        eprintln!(
            "herald: could not turn off transparent huge pages ({}); memory use may read high",
            std::io::Error::last_os_error()
        );
    }
}

/// `herald`: one subcommand per task. `serve` is the server; the client
/// commands (send, query, tail, import, keys) join it as subcommands.
#[derive(Debug, Parser)]
#[command(name = "herald", version, about = "Herald, a self-hosted event hub")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server
    #[command(long_about = SERVE_ABOUT)]
    Serve(ServeArgs),
}

const SERVE_ABOUT: &str = "Run the server.

Settings are read in layers: defaults, then herald.toml (or --config), then \
HERALD_* environment variables, then these flags. A flag's herald.toml key is \
its name with `_` for `-`.";

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Read settings from FILE [default: ./herald.toml, when present]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: SettingFlags,
}

/// A flag for every setting of `config::SETTINGS` but the secrets, built
/// from that table, so help shows exactly the settings Herald accepts.
/// Values are kept as text: `Config::load` parses them, after the file
/// and the environment, and names every bad one.
#[derive(Debug, Default)]
struct SettingFlags(Overrides);

impl clap::FromArgMatches for SettingFlags {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = Overrides::default();
        for s in SETTINGS.iter().filter(|s| s.flag.is_some()) {
            if let Some(value) = matches.get_one::<String>(s.key) {
                flags.set(s.key, value.clone());
            }
        }
        Ok(SettingFlags(flags))
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl clap::Args for SettingFlags {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let defaults = Config::default();
        let described = |s: &Setting| {
            format!(
                "{} [env: {}] [default: {}]",
                s.help,
                s.env,
                (s.default)(&defaults)
            )
        };
        let secrets: String = SETTINGS
            .iter()
            .filter(|s| s.flag.is_none())
            .map(|s| {
                format!(
                    "\n  {} <{}>  (herald.toml: {})\n          {} [default: {}]",
                    s.env,
                    s.value_name,
                    s.key,
                    s.help,
                    (s.default)(&defaults)
                )
            })
            .collect();
        SETTINGS
            .iter()
            .filter_map(|s| Some((s, s.flag?)))
            .fold(cmd, |cmd, (s, flag)| {
                cmd.arg(
                    clap::Arg::new(s.key)
                        .long(flag)
                        .value_name(s.value_name)
                        .help(described(s)),
                )
            })
            .after_help(format!(
                "Secrets, from herald.toml or the environment only (a flag's value \
                 shows in the process list):{secrets}"
            ))
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

fn main() -> ExitCode {
    no_huge_pages();
    // https webhooks go through rustls, built without a crypto provider of
    // its own: ring is the process's. Installing fails only when one is
    // installed already, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Help and version exit 0, a bad command line exits 2 with clap's message.
    let cli = Cli::parse();
    let Some(Command::Serve(args)) = cli.command else {
        // No command: the overview, as `--help` prints it.
        let _ = Cli::command().print_help();
        return ExitCode::SUCCESS;
    };
    let config = match Config::load(args.config.as_deref(), std::env::vars(), args.settings.0) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("herald: {e}");
            return ExitCode::from(2);
        }
    };
    serve(config)
}

fn serve(config: Config) -> ExitCode {
    init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("herald: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(config.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!(
                    "herald: cannot listen on {}: {e} (set HERALD_LISTEN or --listen)",
                    config.listen
                );
                return ExitCode::FAILURE;
            }
        };
        match herald_server::run(listener, config, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("herald: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

fn init_logging(config: &Config) {
    let level = tracing::Level::from(config.log_level);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match config.log {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown signal received; draining");
}
