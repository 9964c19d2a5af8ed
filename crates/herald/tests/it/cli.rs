//! The command line of the real binary: help (a snapshot, and every
//! setting of the config table in `herald serve --help` with its variable),
//! the version, and exit code 2 with a message for a bad flag, a bad flag
//! value and an unknown `HERALD_*` variable.

use std::process::Stdio;
use std::time::Duration;

use expect_test::{expect, expect_file};
use herald_server::config::{Config, SETTINGS};

/// What one run of `herald` printed, and its exit code.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// `herald {args}` with `env` added, in an empty directory (so no
/// `herald.toml` is read); fails if it does not exit within 30 s.
async fn herald(args: &[&str], env: &[(&str, &str)]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .envs(env.iter().copied())
        .env("HERALD_DATA_DIR", dir.path().join("data"))
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start herald");
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("herald {args:?} did not exit within 30 s"))
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

#[tokio::test]
async fn serve_help_lists_every_setting_with_its_variable_and_default() {
    let run = herald(&["serve", "--help"], &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let defaults = Config::default();
    for s in SETTINGS {
        let shown = format!("[default: {}]", (s.default)(&defaults));
        let named = match s.flag {
            Some(flag) => format!("--{flag} <{}>", s.value_name),
            None => format!("{} <{}>", s.env, s.value_name),
        };
        let at = run
            .stdout
            .find(&named)
            .unwrap_or_else(|| panic!("{named} is not in serve --help:\n{}", run.stdout));
        // Its entry: its line and the help line below it.
        let entry: String = run.stdout[at..].lines().take(2).collect();
        assert!(entry.contains(&shown), "{entry} lacks {shown}");
        assert!(entry.contains(s.env), "{entry} lacks {}", s.env);
    }
    expect_file!["snapshots/serve-help.txt"].assert_eq(&run.stdout);
}

#[tokio::test]
async fn help_and_version() {
    let run = herald(&["--help"], &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    expect![[r#"
        Herald, a self-hosted event hub

        Usage: herald [COMMAND]

        Commands:
          serve  Run the server
          help   Print this message or the help of the given subcommand(s)

        Options:
          -h, --help     Print help
          -V, --version  Print version
    "#]]
    .assert_eq(&run.stdout);
    let bare = herald(&[], &[]).await;
    assert_eq!(
        (bare.code, bare.stdout),
        (Some(0), run.stdout),
        "no command: the overview"
    );

    let run = herald(&["--version"], &[]).await;
    assert_eq!(run.code, Some(0));
    assert_eq!(
        run.stdout,
        format!("herald {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn a_bad_command_line_exits_2_with_clap_s_message() {
    let run = herald(&["serve", "--listn", "127.0.0.1:0"], &[]).await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    expect![[r#"
        error: unexpected argument '--listn' found

        Usage: herald serve [OPTIONS]

        For more information, try '--help'.
    "#]]
    .assert_eq(&run.stderr);
    let run = herald(&["serv"], &[]).await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("unrecognized subcommand 'serv'"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn bad_settings_exit_2_naming_each() {
    let run = herald(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--max-event-bytes",
            "lots",
        ],
        &[("HERALD_LISTN", "127.0.0.1:0"), ("HERALD_LOG", "xml")],
    )
    .await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    expect![[r#"
        herald: invalid configuration:
          - HERALD_LISTN: not a Herald setting (did you mean HERALD_LISTEN?)
          - HERALD_LOG="xml": expected `text` or `json`
          - --max-event-bytes "lots": invalid digit found in string
    "#]]
    .assert_eq(&run.stderr);
}
