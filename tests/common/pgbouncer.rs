//! A PgBouncer of a test's own, in front of the test server: started on a free port with a
//! configuration the test writes (trust authentication, the usual
//! `ignore_startup_parameters = extra_float_digits`), in transaction or session mode, and
//! stopped when dropped. Included by path beside `common`.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;

/// How PgBouncer hands server connections to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    /// A server connection per transaction: the most common production setup.
    Transaction,
    /// A server connection per client connection.
    Session,
}

impl PoolMode {
    fn as_str(self) -> &'static str {
        match self {
            Self::Transaction => "transaction",
            Self::Session => "session",
        }
    }
}

/// A running PgBouncer; stopped when dropped.
pub struct PgBouncer {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl PgBouncer {
    /// Starts one in front of the server of `server_url` (its host, port and user), or fails
    /// the test saying how to install PgBouncer.
    pub fn start(server_url: &str, mode: PoolMode) -> Self {
        Self::start_with_pool_size(server_url, mode, 20)
    }

    /// [`PgBouncer::start`] with at most `pool_size` server connections per database and
    /// user: with one, every client's transactions run on the same server connection.
    pub fn start_with_pool_size(server_url: &str, mode: PoolMode, pool_size: usize) -> Self {
        let binary = binary();
        let server = PgConnectOptions::from_str(server_url).expect("the test server's URL");
        let user = server.get_username().to_owned();
        let dir = tempfile::tempdir().expect("temp dir");
        // PgBouncer refuses to run as root: it runs as `postgres`, which must read and write here.
        set_mode(dir.path(), 0o777);
        let port = free_port();
        let config = format!(
            "[databases]\n\
             * = host={host} port={server_port}\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {dir}/userlist.txt\n\
             pool_mode = {mode}\n\
             ignore_startup_parameters = extra_float_digits\n\
             default_pool_size = {pool_size}\n\
             max_client_conn = 500\n\
             logfile = {dir}/pgbouncer.log\n",
            host = server.get_host(),
            server_port = server.get_port(),
            dir = dir.path().display(),
            mode = mode.as_str(),
        );
        let config_file = dir.path().join("pgbouncer.ini");
        std::fs::write(&config_file, config).expect("write pgbouncer.ini");
        std::fs::write(
            dir.path().join("userlist.txt"),
            format!("\"{user}\" \"\"\n"),
        )
        .expect("write userlist.txt");
        let mut command = Command::new(&binary);
        if is_root() {
            command.args(["-u", "postgres"]);
        }
        let child = command
            .arg(&config_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let bouncer = Self { child, dir, port };
        bouncer.wait_until_listening();
        bouncer
    }

    /// `url` (of a database on the test server) with PgBouncer's address instead.
    pub fn url_for(&self, url: &str) -> String {
        let options = PgConnectOptions::from_str(url).expect("a database URL");
        let database = options.get_database().expect("a database name");
        format!(
            "postgres://{}@127.0.0.1:{}/{database}?sslmode=disable",
            options.get_username(),
            self.port
        )
    }

    /// What PgBouncer logged, for a failed test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }

    fn wait_until_listening(&self) {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "PgBouncer did not start listening on port {}:\n{}",
            self.port,
            self.log()
        );
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// PgBouncer's program: on `PATH`, or where Debian installs it.
fn binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("pgbouncer"))
                .find(|candidate| candidate.is_file())
        })
        .unwrap_or_default();
    let debian = Path::new("/usr/sbin/pgbouncer");
    match on_path {
        Some(found) => found,
        None if debian.is_file() => debian.to_owned(),
        None => panic!(
            "PgBouncer is not installed (not on PATH nor at /usr/sbin/pgbouncer): these tests run \
             through it. Install it with `apt-get install -y pgbouncer` (Debian, Ubuntu) or \
             `brew install pgbouncer` (macOS)."
        ),
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A TCP port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}
