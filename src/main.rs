//! The `ackee-gateway` binary: parse the command line, load and validate the config, run.
//!
//! Exit codes: 0 on a clean stop, a valid `-t` or a gateway that serves (`--wait-ready`), 2 on
//! a config problem or bad arguments, 1 when an address cannot be listened on, another upgrade
//! does not finish, or the gateway does not come to serve.

use std::process::ExitCode;

use ackee_gateway::config::{self, ENV_ALLOW_ORIGIN, Severity};
use ackee_gateway::logging::to_stderr;
use log::Level;
use pingora_core::server::configuration::Opt;

/// mimalloc instead of glibc's malloc: less CPU per request, and the memory of closed
/// connections goes back to the system (README, Benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_arena_eager_commit` (its enum value in mimalloc 3's `mimalloc.h`).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
/// mimalloc's `mi_option_purge_delay` (likewise).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// How long mimalloc keeps a freed page before it gives it back, in milliseconds, unless the
/// thread that collects has been quiet (then at once: src/server/allocator.rs). 0 cost one
/// madvise, a page fault and a TLB flush per request at 64 busy connections; 10, chosen when
/// a wave's memory stayed resident without a short delay, still faulted 0.86-0.91 pages in per
/// proxied POST (4,700-9,200 a second); 1000, mimalloc's own default, 0.03-0.05. The memory of
/// closed connections now comes back through the collection on every worker instead.
const PURGE_DELAY_MS: std::os::raw::c_long = 1000;

/// Sets mimalloc's purge delay (see [`PURGE_DELAY_MS`]; written out, as mimalloc's header and
/// its code disagree on the default), and makes it commit arena memory only when it is used:
/// eager commit made a fresh gateway start at 22 MB instead of 12. `MIMALLOC_PURGE_DELAY` and
/// `MIMALLOC_ARENA_EAGER_COMMIT` in the environment override these choices.
fn tune_allocator() {
    // mimalloc's own MIMALLOC_* environment variables win, so each choice can be measured.
    for (option, env, value) in [
        (
            MI_OPTION_PURGE_DELAY,
            "MIMALLOC_PURGE_DELAY",
            PURGE_DELAY_MS,
        ),
        (
            MI_OPTION_ARENA_EAGER_COMMIT,
            "MIMALLOC_ARENA_EAGER_COMMIT",
            0,
        ),
    ] {
        if std::env::var_os(env).is_none() {
            // SAFETY: setting allocator options has no preconditions; they are read when used.
            unsafe { libmimalloc_sys::mi_option_set(option, value) };
        }
    }
}

/// Turns transparent huge pages off for the whole process, unless `MIMALLOC_ALLOW_THP` is set
/// (then mimalloc follows it). mimalloc asks for huge pages on its arena (`MADV_HUGEPAGE`), so
/// the kernel backed it with 2 MiB pages, faulted in whole and refilled in the background by
/// khugepaged after mimalloc had purged parts of them: a fresh gateway started at 21-24 MB
/// (8 MB of it huge pages) instead of 11, and after 10,000 connections had closed its RSS rose
/// again while idle, by 0 to 16 MB from one run to the next (README, Benchmarks).
///
/// It runs as a constructor because mimalloc maps and advises its arena before `main`; with
/// priority 100 it comes before mimalloc's own constructor and the first allocation. The flag
/// (`PR_SET_THP_DISABLE`) also covers mappings made later, and is inherited by `--daemon`'s
/// fork.
#[cfg(target_os = "linux")]
extern "C" fn no_transparent_huge_pages() {
    // SAFETY: getenv reads the environment, which nothing changes this early; prctl with
    // PR_SET_THP_DISABLE only sets a flag of this process. Neither allocates.
    unsafe {
        if libc::getenv(c"MIMALLOC_ALLOW_THP".as_ptr()).is_null() {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
}

/// Runs [`no_transparent_huge_pages`] before mimalloc's constructor (see there).
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array.00100")]
static NO_TRANSPARENT_HUGE_PAGES: extern "C" fn() = no_transparent_huge_pages;

/// The log level a config diagnostic is written at.
fn level_of(severity: Severity) -> Level {
    match severity {
        Severity::Error => Level::Error,
        Severity::Warning => Level::Warn,
    }
}

const USAGE: &str = "\
usage: ackee-gateway [-c FILE] [-t] [-u] [-d] [--wait-ready]
       ackee-gateway explain --origin ORIGIN [-c FILE | --url URL] [options]
       ackee-gateway certificates [-c FILE]

  -c, --conf FILE   the config file (default /etc/ackee-gateway/ackee-gateway.yaml)
  -t, --test        check the config and exit: 0 if it is valid, 2 if not
  -u, --upgrade     take over the listening sockets of a running gateway (graceful upgrade)
  -d, --daemon      run in the background
      --wait-ready  wait until the daemon in the config's pid_file serves on every listener,
                    then exit 0 (1 if it exits or does not within 60 s); the last step of the
                    systemd unit's start and reload
  -V, --version     print the version
  -h, --help        print this help

`ackee-gateway explain --help` describes explain: what a browser on a site gets from
this gateway (offline) or any server (online), and why it fails.
`ackee-gateway certificates [-c FILE]` shows each certificate the gateway obtains itself
(ACME): names, issuer, expiry, next renewal, last error.

Environment: ACKEE_ALLOW_ORIGIN replaces cors.allowed_origins, as in Ackee
(one origin, \"*\", or a comma-separated list). RUST_LOG sets the log level (default info).
";

const DEFAULT_CONF: &str = "/etc/ackee-gateway/ackee-gateway.yaml";

/// How long `--wait-ready` waits, and how long `-u` waits for another upgrade to finish.
const HANDOVER_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

struct Args {
    conf: String,
    test: bool,
    upgrade: bool,
    daemon: bool,
    wait_ready: bool,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        conf: DEFAULT_CONF.to_owned(),
        test: false,
        upgrade: false,
        daemon: false,
        wait_ready: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "-c" | "--conf" => {
                args.conf = it.next().ok_or_else(|| format!("{a} needs a file name"))?;
            }
            "-t" | "--test" => args.test = true,
            "-u" | "--upgrade" => args.upgrade = true,
            "-d" | "--daemon" => args.daemon = true,
            "--wait-ready" => args.wait_ready = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(None);
            }
            "-V" | "--version" => {
                println!("ackee-gateway {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            other => {
                if let Some(file) = other.strip_prefix("--conf=") {
                    args.conf = file.to_owned();
                } else {
                    return Err(format!("unknown argument \"{other}\""));
                }
            }
        }
    }
    Ok(Some(args))
}

/// Tries to bind every listening address once, and says why any cannot be used. Addresses in
/// `inherited` (the sockets a running gateway hands over in a graceful upgrade) are not tried.
fn unbindable(
    conf: &str,
    config: &ackee_gateway::config::Config,
    inherited: &[std::net::SocketAddr],
) -> Vec<String> {
    let listeners = config
        .listeners
        .iter()
        .enumerate()
        .map(|(i, l)| (format!("listeners[{i}].address"), l.address));
    let metrics = config
        .metrics
        .iter()
        .map(|m| ("metrics.address".to_owned(), m.address));
    // HTTP/3 over UDP on the same address. A socket a running gateway holds on that address
    // over TCP is handed over with its UDP socket, if it has one.
    let udp = config
        .listeners
        .iter()
        .enumerate()
        .filter(|(_, l)| l.http3.is_some())
        .map(|(i, l)| (format!("listeners[{i}].http3"), l.address));
    let tcp = listeners
        .chain(metrics)
        .map(|(key, addr)| (key, addr, false));
    tcp.chain(udp.map(|(key, addr)| (key, addr, true)))
        .filter(|(_, addr, _)| !inherited.contains(addr))
        .filter_map(|(key, addr, udp)| {
            let e = if udp {
                std::net::UdpSocket::bind(addr).err()?
            } else {
                std::net::TcpListener::bind(addr).err()?
            };
            let low_port = addr.port() < 1024;
            let addr = if udp { format!("{addr} over UDP") } else { addr.to_string() };
            let hint = match e.kind() {
                std::io::ErrorKind::PermissionDenied if low_port => {
                    "ports below 1024 need root or CAP_NET_BIND_SERVICE, which systemd/ackee-gateway.service grants"
                }
                std::io::ErrorKind::AddrInUse => {
                    "another process listens there (nginx, or a gateway already running: use -u to take over its sockets)"
                }
                std::io::ErrorKind::AddrNotAvailable => "no interface of this host has that address",
                _ => "check the address",
            };
            Some(format!("error: {conf}: {key}: cannot listen on {addr} ({e}); {hint}"))
        })
        .collect()
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("explain") {
        return ExitCode::from(ackee_gateway::explain::cli::run(&argv[1..]));
    }
    if argv.first().map(String::as_str) == Some("certificates") {
        return ExitCode::from(ackee_gateway::acme::status::cli(&argv[1..]));
    }
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ackee-gateway: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };

    tune_allocator();
    ackee_gateway::logging::init();
    // A SIGHUP must never kill the gateway: ignore it until the certificate reloader takes it.
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }

    let loaded = match load(&args) {
        Ok(l) => l,
        Err(code) => return code,
    };
    if args.test {
        to_stderr(
            Level::Info,
            &format!("ackee-gateway: {} is valid", args.conf),
        );
        return ExitCode::SUCCESS;
    }
    if args.wait_ready {
        return wait_ready(&loaded);
    }
    match upgrade_lock(&args, &loaded).and_then(|lock| {
        check_listeners(&args, &loaded)?;
        Ok(lock)
    }) {
        Ok(lock) => serve(&args, &loaded, lock),
        Err(code) => code,
    }
}

/// Loads the config and reports its problems and warnings.
fn load(args: &Args) -> Result<config::Loaded, ExitCode> {
    let env_origins = std::env::var(ENV_ALLOW_ORIGIN).ok();
    let loaded = match config::load(&args.conf, env_origins.as_deref()) {
        Ok(l) => l,
        Err(diags) => {
            for d in diags.iter() {
                to_stderr(level_of(d.severity), &d.to_string());
            }
            let n = diags.error_count();
            let s = if n == 1 { "" } else { "s" };
            to_stderr(
                Level::Error,
                &format!("ackee-gateway: {n} problem{s} in the configuration; nothing was started"),
            );
            return Err(ExitCode::from(2));
        }
    };
    for w in loaded
        .warnings
        .iter()
        .filter(|d| d.severity == Severity::Warning)
    {
        to_stderr(Level::Warn, &w.to_string());
    }
    Ok(loaded)
}

/// `--wait-ready`: waits until the gateway of the PID file serves on every listener.
fn wait_ready(loaded: &config::Loaded) -> ExitCode {
    let pid_file = &loaded.config.server.pid_file;
    match ackee_gateway::handover::wait_ready(pid_file, HANDOVER_LIMIT) {
        Ok(pid) => {
            to_stderr(
                Level::Info,
                &format!("ackee-gateway: the gateway (PID {pid}) serves on every listener"),
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            to_stderr(
                Level::Error,
                &format!("ackee-gateway: {e} (PID file {pid_file})"),
            );
            ExitCode::from(1)
        }
    }
}

/// One upgrade at a time: a second `-u` would unlink the upgrade socket the first one is
/// waiting on. Held until this process serves on every listener (see handover).
fn upgrade_lock(
    args: &Args,
    loaded: &config::Loaded,
) -> Result<Option<ackee_gateway::handover::UpgradeLock>, ExitCode> {
    use ackee_gateway::handover::{UpgradeLock, lock_path};
    if !args.upgrade {
        return Ok(None);
    }
    let path = lock_path(&loaded.config.server.upgrade_sock);
    let lock = UpgradeLock::acquire(&path, std::time::Duration::ZERO).or_else(|_| {
        to_stderr(
            Level::Warn,
            &format!(
                "ackee-gateway: another upgrade holds {}; waiting for it to finish",
                path.display()
            ),
        );
        UpgradeLock::acquire(&path, HANDOVER_LIMIT)
    });
    match lock {
        Ok(lock) => Ok(Some(lock)),
        Err(e) => {
            to_stderr(
                Level::Error,
                &format!("ackee-gateway: {e}; nothing was started"),
            );
            Err(ExitCode::from(1))
        }
    }
}

/// A listener that cannot bind would otherwise leave a running gateway with a dead port
/// (pingora retries for 30 s, then gives up on that one service). Check first. With -u the
/// addresses the running gateway holds are handed over; every other one must bind now,
/// before the old process is told to hand over, so a failed reload leaves it serving.
fn check_listeners(args: &Args, loaded: &config::Loaded) -> Result<(), ExitCode> {
    let inherited = if args.upgrade {
        // The running gateway: the PID file's (a daemon writes one), else any process of
        // this name (one in the foreground writes none).
        use ackee_gateway::procnet;
        match procnet::running_pid(&loaded.config.server.pid_file) {
            Some(pid) => procnet::listening(pid),
            None => procnet::processes_named("ackee-gateway")
                .into_iter()
                .flat_map(procnet::listening)
                .collect(),
        }
    } else {
        Vec::new()
    };
    let problems = unbindable(&args.conf, &loaded.config, &inherited);
    if problems.is_empty() {
        return Ok(());
    }
    for p in &problems {
        to_stderr(Level::Error, p);
    }
    to_stderr(
        Level::Error,
        if args.upgrade {
            "ackee-gateway: cannot listen; nothing was started, and the running gateway keeps its sockets"
        } else {
            "ackee-gateway: cannot listen; nothing was started"
        },
    );
    Err(ExitCode::from(1))
}

/// Builds the server and runs it.
fn serve(
    args: &Args,
    loaded: &config::Loaded,
    upgrade_lock: Option<ackee_gateway::handover::UpgradeLock>,
) -> ExitCode {
    let opt = Opt {
        upgrade: args.upgrade,
        daemon: args.daemon,
        nocapture: false,
        test: false,
        conf: None,
    };
    let server = match ackee_gateway::server::build(&loaded.config, opt, upgrade_lock) {
        Ok(s) => s,
        Err(e) => {
            to_stderr(Level::Error, &format!("ackee-gateway: {e}"));
            return ExitCode::from(2);
        }
    };
    ackee_gateway::server::run(server, &loaded.config, args.upgrade)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mimalloc_option_numbers_name_the_options_mimalloc_documents() {
        // mimalloc's defaults (src/options.c) tell the options apart: purge_delay is 1000 (ms)
        // and arena_eager_commit 2. A mimalloc update that renumbers them fails here.
        // SAFETY: reading allocator options has no preconditions.
        let (purge, eager) = unsafe {
            (
                libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY),
                libmimalloc_sys::mi_option_get(MI_OPTION_ARENA_EAGER_COMMIT),
            )
        };
        assert_eq!((purge, eager), (1000, 2));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_process_runs_without_transparent_huge_pages() {
        // The constructor ran before this test binary's main, as it does before the gateway's.
        if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
            return;
        }
        // SAFETY: PR_GET_THP_DISABLE only reads a flag of this process.
        let disabled = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        assert_eq!(disabled, 1);
    }
}
