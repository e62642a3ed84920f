//! The embedded PostgreSQL: with no `DATABASE_URL`, `siteward serve` keeps a private cluster in
//! its data folder, run with the machine's own PostgreSQL binaries (`initdb`, `pg_ctl`).
//!
//! Layout of the cluster folder (e.g. `<data>/postgres`, mode 0700):
//!
//! - `data/`: the cluster itself (`PGDATA`), created by `initdb` into `data.initdb/` and renamed
//!   when complete, so a crash during `initdb` never leaves a half-made cluster behind;
//! - `password`: the random password of the `siteward` superuser (0600), kept so restarts reuse it;
//! - `port`: the TCP port on 127.0.0.1, chosen free at first start and kept while it stays free;
//! - `postgres.log`: the server log;
//! - `.s.PGSQL.<port>`: the Unix socket, when the folder's path is short and plain enough.
//!
//! - `control.lock`, `users.lock`: who may start or stop the server, and who uses it (see
//!   [`lock`]).
//!
//! Several siteward processes may use one cluster at once (`serve` and an `admin` command beside
//! it). Only one starts the server, and it is stopped only by a process allowed to (see
//! [`Tenure`]) when no other siteward process uses it.
//!
//! The server listens on 127.0.0.1 only and every connection needs the password (SCRAM). As root,
//! the tools run as the `postgres` system user (else `nobody`) through `runuser`, because
//! PostgreSQL refuses to run as root. The tools get an empty environment (plus a fixed `PATH`), so
//! siteward's own secrets never reach the server processes.

use std::ffi::{OsStr, OsString};
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use secrecy::{ExposeSecret, SecretString};

use lock::{ControlLock, UseClaim};

mod lock;
mod supervise;

pub use supervise::Supervised;

/// The superuser `initdb` creates; siteward connects as it.
const SUPERUSER: &str = "siteward";
/// The database siteward's tables live in.
const DATABASE: &str = "siteward";
/// The database that always exists, for creating [`DATABASE`].
const MAINTENANCE_DATABASE: &str = "postgres";
/// Seconds `pg_ctl` waits for the server to start or stop.
const PG_CTL_TIMEOUT_SECS: &str = "60";
/// How much of a failed command's output goes into the error.
const OUTPUT_TAIL_BYTES: usize = 2048;
/// Where Debian and Ubuntu install each PostgreSQL version (`<root>/<version>/bin`).
const VERSIONED_INSTALL_ROOT: &str = "/usr/lib/postgresql";
/// `PATH` for the tools: they are called by absolute path, this only serves their own children.
const TOOL_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// The system users that may own the cluster when siteward runs as root, in order of preference.
const UNPRIVILEGED_USERS: [&str; 2] = ["postgres", "nobody"];
/// Where `runuser` (util-linux) lives.
const RUNUSER_LOCATIONS: [&str; 4] = [
    "/usr/sbin/runuser",
    "/sbin/runuser",
    "/usr/bin/runuser",
    "/bin/runuser",
];
/// The longest Unix socket path (`sizeof(sun_path)` minus the terminating NUL on Linux).
const MAX_SOCKET_PATH_BYTES: usize = 107;
/// What PostgreSQL appends to the socket folder: `/.s.PGSQL.` and then the port.
const SOCKET_FILE_PREFIX: &str = "/.s.PGSQL.";
/// `pg_ctl` hands the data folder and log path to `/bin/sh` inside double quotes, where these
/// characters would be interpreted.
const SHELL_SPECIAL_IN_DOUBLE_QUOTES: &[char] = &['"', '$', '`', '\\'];
/// Connection attempts after start (a reused server may still be recovering), and the pause.
const CONNECT_ATTEMPTS: u32 = 10;
const CONNECT_RETRY_PAUSE: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "PostgreSQL is not installed (no initdb and pg_ctl on PATH or in /usr/lib/postgresql/*/bin): \
         install it (apt-get install postgresql) or set DATABASE_URL to use an existing database"
    )]
    BinariesNotFound,
    #[error(
        "siteward runs as root, and PostgreSQL refuses to, but neither a `postgres` nor a `nobody` \
         user exists to run it as: create one, run siteward as an ordinary user, or set DATABASE_URL"
    )]
    NoUnprivilegedUser,
    #[error(
        "siteward runs as root and needs `runuser` (util-linux) to run PostgreSQL as user `{user}`: \
         install util-linux, run siteward as an ordinary user, or set DATABASE_URL"
    )]
    RunuserNotFound { user: String },
    #[error(
        "PostgreSQL runs as user `{user}`, who cannot reach {dir} (a parent folder is not \
         traversable, as /root usually is not): choose a data folder elsewhere (e.g. under \
         /var/lib or /srv) or set DATABASE_URL"
    )]
    DirNotReachable { user: String, dir: PathBuf },
    #[error(
        "the path {dir} contains \", $, ` or \\, which pg_ctl cannot handle: choose another data \
         folder or set DATABASE_URL"
    )]
    UnsupportedPath { dir: PathBuf },
    #[error(
        "the embedded PostgreSQL cluster exists but its password file {path} is missing or empty: \
         restore it, or delete {cluster} to start over with an empty database"
    )]
    PasswordFileMissing { path: PathBuf, cluster: PathBuf },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cannot run {program}: {source}")]
    Spawn { program: String, source: io::Error },
    #[error("no free TCP port on 127.0.0.1 for PostgreSQL: {source}")]
    NoFreePort { source: io::Error },
    #[error("initdb failed to create the embedded PostgreSQL cluster: {stderr}")]
    InitdbFailed { stderr: String },
    #[error("the embedded PostgreSQL did not start (log: {log}): {stderr}")]
    StartFailed { log: PathBuf, stderr: String },
    #[error("the embedded PostgreSQL did not stop: {stderr}")]
    StopFailed { stderr: String },
    #[error("cannot connect to the embedded PostgreSQL: {detail}")]
    ConnectFailed { detail: String },
    #[error("cannot create the `siteward` database in the embedded PostgreSQL: {detail}")]
    CreateDatabaseFailed { detail: String },
}

/// What a process does with the embedded server when it is done with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tenure {
    /// `siteward serve`: keeps the server up while it runs ([`EmbeddedPostgres::supervise`]) and
    /// stops it on exit, whoever started it, unless another siteward process still uses it.
    Keeper,
    /// A one-shot command (`migrate`, `admin …`, a benchmark): stops the server on exit only if
    /// it started it and no other siteward process uses it. A server it found running (say,
    /// under a running `serve`) is left running.
    Visitor,
}

/// What [`EmbeddedPostgres::stop`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopOutcome {
    Stopped,
    /// Another siteward process still uses the server.
    LeftRunningInUse,
    /// This process found the server running and, as a [`Tenure::Visitor`], leaves it so.
    LeftRunningAdopted,
}

/// A running private PostgreSQL server. Release it with [`EmbeddedPostgres::stop`]; dropping
/// it does the same, synchronously and on a best-effort basis.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    binaries: PgBinaries,
    run_as: Option<SystemUser>,
    paths: ClusterPaths,
    port: u16,
    password: SecretString,
    tenure: Tenure,
    /// Whether this process started the server (rather than finding it running).
    started_here: bool,
    /// This process's claim on the server; `None` once `stop` ran.
    claim: Option<UseClaim>,
}

impl EmbeddedPostgres {
    /// Creates the cluster in `dir` (e.g. `<data>/postgres`) on first use, then starts it (or
    /// adopts a server already running there, started by another siteward process or left by
    /// one that was killed) and makes sure the `siteward` database exists.
    pub async fn start(dir: &Path, tenure: Tenure) -> Result<EmbeddedPostgres, EmbeddedError> {
        let binaries = find_binaries()?;
        let run_as = choose_run_as()?;
        Self::start_with(binaries, run_as, dir, tenure).await
    }

    /// `postgres://siteward:<password>@127.0.0.1:<port>/siteward`.
    pub fn database_url(&self) -> SecretString {
        self.url_for(DATABASE)
    }

    /// The cluster folder.
    pub fn dir(&self) -> &Path {
        &self.paths.root
    }

    /// Releases the server: stops it (`pg_ctl stop -m fast`, waiting for it) when this process
    /// may and no other siteward process uses it, else leaves it running. A server that is
    /// already gone counts as stopped.
    pub async fn stop(mut self) -> Result<StopOutcome, EmbeddedError> {
        let Some(claim) = self.claim.take() else {
            return Ok(StopOutcome::Stopped);
        };
        let control = ControlLock::acquire(&self.paths.root).await?;
        let outcome = self.release_decision(&claim, &control)?;
        if outcome != StopOutcome::Stopped {
            tracing::info!(dir = %self.paths.root.display(), ?outcome, "embedded PostgreSQL left running");
            return Ok(outcome);
        }
        let output = run("pg_ctl stop", self.stop_command()).await?;
        if output.status.success() || !self.is_running().await? {
            tracing::info!(dir = %self.paths.root.display(), "embedded PostgreSQL stopped");
            return Ok(StopOutcome::Stopped);
        }
        Err(EmbeddedError::StopFailed {
            stderr: failure_detail(&output, &self.password),
        })
    }

    /// Whether this process stops the server on release, decided under the control lock.
    fn release_decision(
        &self,
        claim: &UseClaim,
        control: &ControlLock,
    ) -> Result<StopOutcome, EmbeddedError> {
        if self.tenure == Tenure::Visitor && !self.started_here {
            return Ok(StopOutcome::LeftRunningAdopted);
        }
        if !claim.is_sole_user(control)? {
            return Ok(StopOutcome::LeftRunningInUse);
        }
        Ok(StopOutcome::Stopped)
    }

    /// [`EmbeddedPostgres::start`] with the binaries and the user to run them as already chosen.
    async fn start_with(
        binaries: PgBinaries,
        run_as: Option<SystemUser>,
        dir: &Path,
        tenure: Tenure,
    ) -> Result<EmbeddedPostgres, EmbeddedError> {
        let paths = prepare_cluster_dir(dir, run_as.as_ref()).await?;
        // Everything from here to a running server happens under the control lock, so two
        // processes starting at the same moment neither both run initdb nor both start it.
        let control = ControlLock::acquire(&paths.root).await?;
        let initialized = paths.is_initialized();
        let password = load_or_create_password(&paths, initialized, run_as.as_ref())?;
        if !initialized {
            init_cluster(&binaries, run_as.as_ref(), &paths, &password).await?;
        }
        let claim = UseClaim::register(&paths.root, &control)?;
        let mut server = EmbeddedPostgres {
            binaries,
            run_as,
            paths,
            port: 0,
            password,
            tenure,
            started_here: false,
            claim: None,
        };
        let (port, started) = server.start_or_adopt().await?;
        server.port = port;
        server.started_here = started;
        server.claim = Some(claim);
        server.ensure_database().await?;
        drop(control);
        Ok(server)
    }

    /// Adopts a server already running on this cluster, or starts one; returns its port and
    /// whether it was started here. Called under the control lock.
    async fn start_or_adopt(&self) -> Result<(u16, bool), EmbeddedError> {
        if self.is_running().await? {
            if let Some(port) = port_from_pid_file(&self.paths.data) {
                tracing::info!(port, dir = %self.paths.root.display(), "embedded PostgreSQL already running; using it");
                return Ok((port, false));
            }
            tracing::warn!(dir = %self.paths.root.display(), "embedded PostgreSQL is running on an unknown port; restarting it");
            run("pg_ctl stop", self.stop_command()).await?;
        }
        let port = choose_port(&self.paths.port)?;
        self.launch(port).await?;
        write_file(&self.paths.port, format!("{port}\n").as_bytes())?;
        Ok((port, true))
    }

    /// `pg_ctl start`, listening on 127.0.0.1:`port` only; waits until it accepts connections.
    async fn launch(&self, port: u16) -> Result<(), EmbeddedError> {
        let log_length_before = file_length(&self.paths.log);
        let mut command = self.pg_ctl();
        command
            .args(["start", "-w", "-t", PG_CTL_TIMEOUT_SECS, "-D"])
            .arg(&self.paths.data)
            .arg("-l")
            .arg(&self.paths.log)
            .arg("-o")
            .arg(server_options(&self.paths.root, port));
        let output = run("pg_ctl start", command).await?;
        if output.status.success() {
            tracing::info!(port, dir = %self.paths.root.display(), "embedded PostgreSQL started");
            return Ok(());
        }
        let new_log = read_from(&self.paths.log, log_length_before);
        let combined = format!("{}\n{new_log}", String::from_utf8_lossy(&output.stderr));
        Err(EmbeddedError::StartFailed {
            log: self.paths.log.clone(),
            stderr: clean_detail(&combined, &self.password),
        })
    }

    /// Whether `pg_ctl status` finds a live server for this cluster.
    async fn is_running(&self) -> Result<bool, EmbeddedError> {
        let mut command = self.pg_ctl();
        command.arg("status").arg("-D").arg(&self.paths.data);
        let output = run("pg_ctl status", command).await?;
        Ok(output.status.success())
    }

    /// Creates the `siteward` database unless it exists.
    async fn ensure_database(&self) -> Result<(), EmbeddedError> {
        let mut connection = self.connect(MAINTENANCE_DATABASE).await?;
        let presence: DatabasePresence = diesel::sql_query(format!(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = '{DATABASE}') AS present"
        ))
        .get_result(&mut connection)
        .await
        .map_err(|error| self.create_database_error(&error))?;
        if presence.present {
            return Ok(());
        }
        match diesel::sql_query(format!("CREATE DATABASE {DATABASE}"))
            .execute(&mut connection)
            .await
        {
            Ok(_) => {
                tracing::info!(
                    database = DATABASE,
                    "created the database in the embedded PostgreSQL"
                );
                Ok(())
            }
            Err(error) if is_duplicate_database(&error) => Ok(()),
            Err(error) => Err(self.create_database_error(&error)),
        }
    }

    /// Connects to `database`, retrying for a few seconds while the server finishes starting.
    async fn connect(&self, database: &str) -> Result<AsyncPgConnection, EmbeddedError> {
        let url = self.url_for(database);
        let mut attempt = 1;
        loop {
            match AsyncPgConnection::establish(url.expose_secret()).await {
                Ok(connection) => return Ok(connection),
                Err(error) if attempt >= CONNECT_ATTEMPTS => {
                    return Err(EmbeddedError::ConnectFailed {
                        detail: clean_detail(&error.to_string(), &self.password),
                    });
                }
                Err(_) => {
                    attempt += 1;
                    tokio::time::sleep(CONNECT_RETRY_PAUSE).await;
                }
            }
        }
    }

    /// The URL of `database` on this server, password included.
    fn url_for(&self, database: &str) -> SecretString {
        SecretString::from(format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{database}",
            self.password.expose_secret(),
            self.port
        ))
    }

    /// `pg_ctl stop -m fast`, waiting for the shutdown; shared by `stop` and `Drop`.
    fn stop_command(&self) -> Command {
        let mut command = self.pg_ctl();
        command
            .args(["stop", "-m", "fast", "-w", "-t", PG_CTL_TIMEOUT_SECS, "-D"])
            .arg(&self.paths.data);
        command
    }

    /// A `pg_ctl` invocation, as the right user, from inside the cluster folder.
    fn pg_ctl(&self) -> Command {
        tool_command(
            self.run_as.as_ref(),
            &self.binaries.pg_ctl,
            &self.paths.root,
        )
    }

    fn create_database_error(&self, error: &diesel::result::Error) -> EmbeddedError {
        EmbeddedError::CreateDatabaseFailed {
            detail: clean_detail(&error.to_string(), &self.password),
        }
    }
}

impl Drop for EmbeddedPostgres {
    /// Best-effort [`EmbeddedPostgres::stop`], when it was not called.
    fn drop(&mut self) {
        let Some(claim) = self.claim.take() else {
            return;
        };
        let decision = ControlLock::acquire_now(&self.paths.root)
            .and_then(|control| Ok((self.release_decision(&claim, &control)?, control)));
        let _control = match decision {
            Ok((StopOutcome::Stopped, control)) => control,
            Ok(_) => return,
            Err(error) => {
                tracing::warn!(%error, "could not decide whether to stop the embedded PostgreSQL");
                return;
            }
        };
        match self.stop_command().output() {
            Ok(output) if output.status.success() => {
                tracing::info!(dir = %self.paths.root.display(), "embedded PostgreSQL stopped");
            }
            Ok(output) => tracing::warn!(
                detail = %failure_detail(&output, &self.password),
                "could not stop the embedded PostgreSQL"
            ),
            Err(error) => {
                tracing::warn!(%error, "could not run pg_ctl to stop the embedded PostgreSQL")
            }
        }
    }
}

/// The row of the "does the database exist" query.
#[derive(diesel::QueryableByName)]
struct DatabasePresence {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    present: bool,
}

/// Whether `CREATE DATABASE` failed because the database exists (a concurrent start made it).
/// The cluster's messages are in English: `initdb --locale=C` sets `lc_messages` to C.
fn is_duplicate_database(error: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match error {
        Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => true,
        Error::DatabaseError(_, info) => info.message().contains("already exists"),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Binaries

/// The PostgreSQL tools siteward runs. `pg_ctl` finds `postgres` next to itself.
#[derive(Debug, Clone)]
struct PgBinaries {
    initdb: PathBuf,
    pg_ctl: PathBuf,
}

impl PgBinaries {
    /// The tools in `bin_dir`, if `initdb`, `pg_ctl` and `postgres` are all there.
    fn in_dir(bin_dir: &Path) -> Option<PgBinaries> {
        let complete = ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|tool| is_executable(&bin_dir.join(tool)));
        complete.then(|| PgBinaries {
            initdb: bin_dir.join("initdb"),
            pg_ctl: bin_dir.join("pg_ctl"),
        })
    }
}

/// Another PostgreSQL tool (`pg_dump`, `psql`) from the installation the embedded server runs
/// with, so its version matches; else the one on `PATH`.
pub fn client_tool(name: &str) -> Option<PathBuf> {
    let beside = find_binaries()
        .ok()
        .and_then(|b| b.pg_ctl.parent().map(|dir| dir.join(name)))
        .filter(|tool| is_executable(tool));
    beside.or_else(|| {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|dir| dir.join(name))
            .find(|tool| is_executable(tool))
    })
}

/// Finds the tools on `PATH`, else in the newest `/usr/lib/postgresql/<version>/bin`.
fn find_binaries() -> Result<PgBinaries, EmbeddedError> {
    find_binaries_in(
        std::env::var_os("PATH").as_deref(),
        Path::new(VERSIONED_INSTALL_ROOT),
    )
}

/// [`find_binaries`] with the search path and the versioned install root given.
fn find_binaries_in(
    search_path: Option<&OsStr>,
    versioned_root: &Path,
) -> Result<PgBinaries, EmbeddedError> {
    let on_search_path = search_path
        .map(|paths| std::env::split_paths(paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|dir| real_bin_dir_of(&dir.join("pg_ctl")));
    on_search_path
        .chain(versioned_bin_dirs(versioned_root))
        .find_map(|bin_dir| PgBinaries::in_dir(&bin_dir))
        .ok_or(EmbeddedError::BinariesNotFound)
}

/// The folder `tool` really lives in, following symlinks (`/usr/local/bin/pg_ctl` may point
/// into `/usr/lib/postgresql/15/bin`, where `initdb` and `postgres` are).
fn real_bin_dir_of(tool: &Path) -> Option<PathBuf> {
    if !is_executable(tool) {
        return None;
    }
    let real = std::fs::canonicalize(tool).ok()?;
    real.parent().map(Path::to_path_buf)
}

/// `<root>/<version>/bin` for every numeric version folder, newest first.
fn versioned_bin_dirs(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut versions: Vec<(Vec<u32>, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = parse_version(entry.file_name().to_str()?)?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions.into_iter().map(|(_, bin_dir)| bin_dir).collect()
}

/// `"15"` → `[15]`, `"9.6"` → `[9, 6]`; anything else is not a version.
fn parse_version(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

/// Whether `path` is a file (after symlinks) with an execute bit.
fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------------------------
// Running as root

/// The unprivileged system user the tools run as when siteward runs as root.
#[derive(Debug, Clone)]
struct SystemUser {
    name: String,
    uid: u32,
    gid: u32,
    runuser: PathBuf,
}

/// `None` when siteward is not root (the tools run as ourselves); else the user to run them as.
fn choose_run_as() -> Result<Option<SystemUser>, EmbeddedError> {
    if !rustix::process::geteuid().is_root() {
        return Ok(None);
    }
    let passwd_path = Path::new("/etc/passwd");
    let passwd = std::fs::read_to_string(passwd_path).map_err(io_error("read", passwd_path))?;
    let (name, uid, gid) = UNPRIVILEGED_USERS
        .iter()
        .find_map(|name| passwd_ids(&passwd, name).map(|(uid, gid)| (*name, uid, gid)))
        .ok_or(EmbeddedError::NoUnprivilegedUser)?;
    let runuser = RUNUSER_LOCATIONS
        .into_iter()
        .map(PathBuf::from)
        .find(|path| is_executable(path))
        .ok_or_else(|| EmbeddedError::RunuserNotFound {
            user: name.to_string(),
        })?;
    tracing::info!(
        user = name,
        "running as root: the embedded PostgreSQL runs as an unprivileged user"
    );
    Ok(Some(SystemUser {
        name: name.to_string(),
        uid,
        gid,
        runuser,
    }))
}

/// The uid and gid of `name` in the text of `/etc/passwd`, unless it is missing or root.
fn passwd_ids(passwd: &str, name: &str) -> Option<(u32, u32)> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        let _password = fields.next()?;
        let uid: u32 = fields.next()?.parse().ok()?;
        let gid: u32 = fields.next()?.parse().ok()?;
        (uid != 0).then_some((uid, gid))
    })
}

/// Gives `path` to `user`.
fn give_to(path: &Path, user: &SystemUser) -> Result<(), EmbeddedError> {
    std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
        .map_err(io_error("change the owner of", path))
}

/// Fails clearly unless `user` can reach `dir`: its parent and every folder above must be
/// traversable for them. Checked before `dir` is given to `user`, so a refusal changes nothing.
async fn ensure_reachable(user: &SystemUser, dir: &Path) -> Result<(), EmbeddedError> {
    let parent = dir.parent().unwrap_or(dir);
    let mut command = tool_command(Some(user), Path::new("test"), Path::new("/"));
    command.arg("-x").arg(parent);
    let output = run("runuser", command).await?;
    if output.status.success() {
        return Ok(());
    }
    Err(EmbeddedError::DirNotReachable {
        user: user.name.clone(),
        dir: dir.to_path_buf(),
    })
}

// ---------------------------------------------------------------------------------------------
// The cluster folder

/// The files of one cluster folder (see the module documentation).
#[derive(Debug, Clone)]
struct ClusterPaths {
    root: PathBuf,
    data: PathBuf,
    initdb_staging: PathBuf,
    password: PathBuf,
    port: PathBuf,
    log: PathBuf,
}

impl ClusterPaths {
    fn new(root: PathBuf) -> ClusterPaths {
        ClusterPaths {
            data: root.join("data"),
            initdb_staging: root.join("data.initdb"),
            password: root.join("password"),
            port: root.join("port"),
            log: root.join("postgres.log"),
            root,
        }
    }

    /// Whether `initdb` completed here before.
    fn is_initialized(&self) -> bool {
        self.data.join("PG_VERSION").is_file()
    }
}

/// Creates the cluster folder (0700, owned by the user the server runs as) and returns its
/// layout with an absolute, symlink-free root.
async fn prepare_cluster_dir(
    dir: &Path,
    run_as: Option<&SystemUser>,
) -> Result<ClusterPaths, EmbeddedError> {
    // Parents get ordinary permissions: the server's user must be able to traverse them.
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(io_error("create", parent))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(error) if error.kind() != io::ErrorKind::AlreadyExists => {
            return Err(io_error("create", dir)(error));
        }
        _ => {}
    }
    let root = std::fs::canonicalize(dir).map_err(io_error("resolve", dir))?;
    if root
        .to_string_lossy()
        .contains(SHELL_SPECIAL_IN_DOUBLE_QUOTES)
    {
        return Err(EmbeddedError::UnsupportedPath { dir: root });
    }
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700))
        .map_err(io_error("restrict the permissions of", &root))?;
    if let Some(user) = run_as {
        ensure_reachable(user, &root).await?;
        give_to(&root, user)?;
    }
    Ok(ClusterPaths::new(root))
}

/// The superuser password: read from the password file, or made up and written there (0600)
/// when the cluster is still to be created.
fn load_or_create_password(
    paths: &ClusterPaths,
    initialized: bool,
    run_as: Option<&SystemUser>,
) -> Result<SecretString, EmbeddedError> {
    let saved = match std::fs::read_to_string(&paths.password) {
        Ok(text) => Some(text.trim().to_string()).filter(|password| !password.is_empty()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => None,
        Err(error) => return Err(io_error("read", &paths.password)(error)),
    };
    let password = match saved {
        Some(password) => password,
        None if initialized => {
            return Err(EmbeddedError::PasswordFileMissing {
                path: paths.password.clone(),
                cluster: paths.root.clone(),
            });
        }
        None => {
            let password = generate_password();
            write_private_file(&paths.password, password.as_bytes())?;
            password
        }
    };
    std::fs::set_permissions(&paths.password, std::fs::Permissions::from_mode(0o600))
        .map_err(io_error("restrict the permissions of", &paths.password))?;
    if let Some(user) = run_as {
        give_to(&paths.password, user)?;
    }
    Ok(SecretString::from(password))
}

/// 32 random bytes, hex-encoded (safe in a URL as is).
fn generate_password() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Runs `initdb` into a staging folder and moves the result into place.
async fn init_cluster(
    binaries: &PgBinaries,
    run_as: Option<&SystemUser>,
    paths: &ClusterPaths,
    password: &SecretString,
) -> Result<(), EmbeddedError> {
    match std::fs::remove_dir_all(&paths.initdb_staging) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            return Err(io_error("remove the unfinished", &paths.initdb_staging)(
                error,
            ));
        }
        _ => {}
    }
    tracing::info!(dir = %paths.root.display(), "creating the embedded PostgreSQL cluster");
    let mut command = tool_command(run_as, &binaries.initdb, &paths.root);
    command
        .arg("-D")
        .arg(&paths.initdb_staging)
        .arg(format!("--username={SUPERUSER}"))
        .arg("--auth=scram-sha-256")
        .arg(prefixed("--pwfile=", &paths.password))
        .arg("--encoding=UTF8")
        .arg("--locale=C");
    let output = run("initdb", command).await?;
    if !output.status.success() {
        return Err(EmbeddedError::InitdbFailed {
            stderr: failure_detail(&output, password),
        });
    }
    std::fs::rename(&paths.initdb_staging, &paths.data)
        .map_err(io_error("move into place", &paths.initdb_staging))
}

/// The `postgres` options `pg_ctl -o` passes through `/bin/sh`: the port, loopback only, and the
/// socket in the cluster folder when its path fits and needs no quoting, else no socket at all.
fn server_options(root: &Path, port: u16) -> String {
    let socket_dirs = match root.to_str() {
        Some(text) if socket_dir_usable(text, port) => format!("'{text}'"),
        _ => "''".to_string(),
    };
    format!("-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={socket_dirs}")
}

/// Whether PostgreSQL can put its socket in `dir`: the socket path must fit in `sun_path`, and
/// the folder must be safe inside single quotes and in PostgreSQL's comma-separated list.
fn socket_dir_usable(dir: &str, port: u16) -> bool {
    let socket_path_bytes = dir.len() + SOCKET_FILE_PREFIX.len() + port.to_string().len();
    let plain = dir
        .chars()
        .all(|c| c.is_ascii_graphic() && !matches!(c, ',' | '\'' | '"' | '\\'));
    plain && socket_path_bytes <= MAX_SOCKET_PATH_BYTES
}

// ---------------------------------------------------------------------------------------------
// The port

/// The saved port if it is still free, else a new free one.
fn choose_port(port_file: &Path) -> Result<u16, EmbeddedError> {
    let saved = std::fs::read_to_string(port_file)
        .ok()
        .and_then(|text| text.trim().parse::<u16>().ok());
    match saved {
        Some(port) if is_port_free(port) => Ok(port),
        Some(port) => {
            tracing::warn!(
                port,
                "the embedded PostgreSQL's port is taken; choosing another"
            );
            free_port()
        }
        None => free_port(),
    }
}

/// Whether nothing listens on 127.0.0.1:`port`.
fn is_port_free(port: u16) -> bool {
    port != 0 && TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// A port the system considers free right now on 127.0.0.1.
fn free_port() -> Result<u16, EmbeddedError> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|source| EmbeddedError::NoFreePort { source })
}

/// The port a running server recorded in `postmaster.pid` (its fourth line).
fn port_from_pid_file(data: &Path) -> Option<u16> {
    let text = std::fs::read_to_string(data.join("postmaster.pid")).ok()?;
    text.lines().nth(3)?.trim().parse().ok()
}

// ---------------------------------------------------------------------------------------------
// Commands and files

/// A command running `tool` from `cwd` with a clean environment; through `runuser` as `run_as`
/// when given.
fn tool_command(run_as: Option<&SystemUser>, tool: &Path, cwd: &Path) -> Command {
    let mut command = match run_as {
        Some(user) => {
            let mut command = Command::new(&user.runuser);
            command.arg("-u").arg(&user.name).arg("--").arg(tool);
            command
        }
        None => Command::new(tool),
    };
    command
        .env_clear()
        .env("PATH", TOOL_PATH)
        .current_dir(cwd)
        .stdin(Stdio::null());
    command
}

/// Runs `command` to completion, capturing its output.
async fn run(program: &str, command: Command) -> Result<Output, EmbeddedError> {
    tokio::process::Command::from(command)
        .output()
        .await
        .map_err(|source| EmbeddedError::Spawn {
            program: program.to_string(),
            source,
        })
}

/// What a failed command said (stderr, else stdout), for an error message.
fn failure_detail(output: &Output, password: &SecretString) -> String {
    let said = if output.stderr.iter().all(u8::is_ascii_whitespace) {
        &output.stdout
    } else {
        &output.stderr
    };
    let detail = clean_detail(&String::from_utf8_lossy(said), password);
    if detail.is_empty() {
        output.status.to_string()
    } else {
        detail
    }
}

/// `text` without the password, cut to its last [`OUTPUT_TAIL_BYTES`], on one line.
fn clean_detail(text: &str, password: &SecretString) -> String {
    let secret = password.expose_secret();
    let redacted = if secret.is_empty() {
        text.to_string()
    } else {
        text.replace(secret, "[password]")
    };
    let kept = tail(&redacted, OUTPUT_TAIL_BYTES);
    let one_line = kept
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" | ");
    if kept.len() < redacted.len() {
        format!("…{one_line}")
    } else {
        one_line
    }
}

/// The last `max_bytes` of `text`, starting on a character boundary.
fn tail(text: &str, max_bytes: usize) -> &str {
    let mut start = text.len().saturating_sub(max_bytes);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// The length of `path`, or 0 when it does not exist yet.
fn file_length(path: &Path) -> u64 {
    std::fs::metadata(path).map(|meta| meta.len()).unwrap_or(0)
}

/// What `path` holds after its first `offset` bytes (empty when unreadable).
fn read_from(path: &Path, offset: u64) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// Writes `contents` to `path`.
fn write_file(path: &Path, contents: &[u8]) -> Result<(), EmbeddedError> {
    std::fs::write(path, contents).map_err(io_error("write", path))
}

/// Writes `contents` to `path`, which is created with mode 0600 (never readable by others,
/// not even for a moment).
fn write_private_file(path: &Path, contents: &[u8]) -> Result<(), EmbeddedError> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error("create", path))?;
    file.write_all(contents).map_err(io_error("write", path))
}

/// `prefix` followed by `path`, as one argument (`--pwfile=/x/password`).
fn prefixed(prefix: &str, path: &Path) -> OsString {
    let mut argument = OsString::from(prefix);
    argument.push(path);
    argument
}

/// Wraps an I/O error with what was being done to which path.
fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> EmbeddedError {
    let path = path.to_path_buf();
    move |source| EmbeddedError::Io {
        action,
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// A temporary folder the server's user can traverse (tempdir makes 0700 folders, and as
    /// root the server runs as `postgres`).
    fn traversable_tempdir() -> Result<tempfile::TempDir, io::Error> {
        let dir = tempfile::tempdir_in("/tmp")?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        Ok(dir)
    }

    /// Connects to `url` and runs `SELECT 1`.
    async fn select_one(url: &SecretString) -> TestResult {
        let mut connection = AsyncPgConnection::establish(url.expose_secret()).await?;
        let rows = diesel::sql_query("SELECT 1")
            .execute(&mut connection)
            .await?;
        assert_eq!(rows, 1);
        Ok(())
    }

    fn mode_of(path: &Path) -> Result<u32, io::Error> {
        Ok(std::fs::metadata(path)?.permissions().mode() & 0o777)
    }

    #[tokio::test]
    async fn a_cluster_is_created_started_restarted_with_the_same_port_and_password_and_stopped()
    -> TestResult {
        let temp = traversable_tempdir()?;
        let dir = temp.path().join("postgres");

        let server = EmbeddedPostgres::start(&dir, Tenure::Visitor).await?;
        let url = server.database_url();
        select_one(&url).await?;
        assert_eq!(mode_of(&dir)?, 0o700);
        assert_eq!(mode_of(&dir.join("password"))?, 0o600);
        let port = std::fs::read_to_string(dir.join("port"))?;
        let password = std::fs::read_to_string(dir.join("password"))?;
        assert_eq!(password.trim().len(), 64);
        assert!(
            url.expose_secret()
                .contains(&format!("127.0.0.1:{}/siteward", port.trim()))
        );
        assert_eq!(server.stop().await?, StopOutcome::Stopped);
        assert!(!dir.join("data/postmaster.pid").exists());

        let server = EmbeddedPostgres::start(&dir, Tenure::Visitor).await?;
        assert_eq!(server.database_url().expose_secret(), url.expose_secret());
        assert_eq!(std::fs::read_to_string(dir.join("password"))?, password);
        select_one(&server.database_url()).await?;
        assert_eq!(server.stop().await?, StopOutcome::Stopped);
        Ok(())
    }

    #[tokio::test]
    async fn a_visitor_leaves_a_server_it_found_running_and_a_keeper_waits_for_the_last_user()
    -> TestResult {
        let temp = traversable_tempdir()?;
        let dir = temp.path().join("postgres");

        // `serve` starts the server; an admin command beside it adopts it and leaves it up.
        let keeper = EmbeddedPostgres::start(&dir, Tenure::Keeper).await?;
        let visitor = EmbeddedPostgres::start(&dir, Tenure::Visitor).await?;
        assert_eq!(
            visitor.database_url().expose_secret(),
            keeper.database_url().expose_secret()
        );
        assert_eq!(visitor.stop().await?, StopOutcome::LeftRunningAdopted);
        select_one(&keeper.database_url()).await?;

        // A command that started the server while `serve` came up leaves it to `serve`.
        assert_eq!(keeper.stop().await?, StopOutcome::Stopped);
        let starter = EmbeddedPostgres::start(&dir, Tenure::Visitor).await?;
        let keeper = EmbeddedPostgres::start(&dir, Tenure::Keeper).await?;
        assert_eq!(starter.stop().await?, StopOutcome::LeftRunningInUse);
        select_one(&keeper.database_url()).await?;

        // A keeper that adopted a server with no other user (its starter was killed) stops it.
        assert_eq!(keeper.stop().await?, StopOutcome::Stopped);
        assert!(!dir.join("data/postmaster.pid").exists());

        // Dropping a handle releases it the same way: the dropped visitor stops nothing.
        let keeper = EmbeddedPostgres::start(&dir, Tenure::Keeper).await?;
        drop(EmbeddedPostgres::start(&dir, Tenure::Visitor).await?);
        select_one(&keeper.database_url()).await?;
        assert_eq!(keeper.stop().await?, StopOutcome::Stopped);
        Ok(())
    }

    #[tokio::test]
    async fn two_commands_starting_at_once_share_one_server() -> TestResult {
        let temp = traversable_tempdir()?;
        let dir = temp.path().join("postgres");
        let (first, second) = tokio::join!(
            EmbeddedPostgres::start(&dir, Tenure::Visitor),
            EmbeddedPostgres::start(&dir, Tenure::Visitor)
        );
        let (first, second) = (first?, second?);
        assert_eq!(
            first.database_url().expose_secret(),
            second.database_url().expose_secret()
        );
        assert!(
            first.started_here != second.started_here,
            "exactly one of them started the server"
        );
        let (starter, adopter) = if first.started_here {
            (first, second)
        } else {
            (second, first)
        };
        assert_eq!(adopter.stop().await?, StopOutcome::LeftRunningAdopted);
        select_one(&starter.database_url()).await?;
        assert_eq!(starter.stop().await?, StopOutcome::Stopped);
        Ok(())
    }

    #[tokio::test]
    async fn a_supervised_server_killed_with_sigkill_is_started_again() -> TestResult {
        let temp = traversable_tempdir()?;
        let dir = temp.path().join("postgres");
        let server = EmbeddedPostgres::start(&dir, Tenure::Keeper).await?;
        let url = server.database_url();
        let health = crate::db::health::DatabaseHealth::default();
        let supervised = server.supervise(health.clone());
        let pid_file = dir.join("data/postmaster.pid");
        let pid: i32 = std::fs::read_to_string(&pid_file)?
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .parse()?;
        let pid = rustix::process::Pid::from_raw(pid).ok_or("pid 0")?;
        rustix::process::kill_process(pid, rustix::process::Signal::KILL)?;
        let started = std::time::Instant::now();
        let mut saw_outage = false;
        while select_one(&url).await.is_err() || !saw_outage {
            saw_outage |= health.outage().is_some();
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "not back within 15 s (outage seen: {saw_outage})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        while health.outage().is_some() {
            assert!(started.elapsed() < Duration::from_secs(15));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(supervised.stop().await?, StopOutcome::Stopped);
        assert!(!pid_file.exists());
        Ok(())
    }

    #[tokio::test]
    async fn a_folder_the_server_user_cannot_reach_is_a_clear_error() -> TestResult {
        if !rustix::process::geteuid().is_root() {
            return Ok(());
        }
        let private = tempfile::tempdir_in("/tmp")?;
        std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700))?;
        let dir = private.path().join("data").join("postgres");
        match EmbeddedPostgres::start(&dir, Tenure::Visitor).await {
            Err(EmbeddedError::DirNotReachable {
                dir: unreachable, ..
            }) => {
                assert!(unreachable.ends_with("data/postgres"));
                Ok(())
            }
            other => Err(format!("expected DirNotReachable, got {other:?}").into()),
        }
    }

    #[test]
    fn missing_binaries_tell_how_to_install_postgresql_or_use_database_url() {
        let result = find_binaries_in(
            Some(OsStr::new("/nonexistent/siteward-bin")),
            Path::new("/nonexistent/siteward-lib"),
        );
        let message = match result {
            Err(error @ EmbeddedError::BinariesNotFound) => error.to_string(),
            other => format!("unexpected: {other:?}"),
        };
        assert!(message.contains("apt-get install postgresql"), "{message}");
        assert!(message.contains("DATABASE_URL"), "{message}");
    }

    /// Makes empty executable files named `tools` in `dir`.
    fn fake_tools(dir: &Path, tools: &[&str]) -> Result<(), io::Error> {
        std::fs::create_dir_all(dir)?;
        for tool in tools {
            let path = dir.join(tool);
            std::fs::write(&path, b"")?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
        Ok(())
    }

    #[test]
    fn the_newest_complete_versioned_install_wins() -> TestResult {
        let root = tempfile::tempdir_in("/tmp")?;
        let all = ["initdb", "pg_ctl", "postgres"];
        fake_tools(&root.path().join("9.6/bin"), &all)?;
        fake_tools(&root.path().join("13/bin"), &all)?;
        fake_tools(&root.path().join("16/bin"), &["initdb", "pg_ctl"])?; // no server binary
        fake_tools(&root.path().join("not-a-version/bin"), &all)?;
        let binaries = find_binaries_in(None, root.path())?;
        assert_eq!(binaries.pg_ctl, root.path().join("13/bin/pg_ctl"));
        assert_eq!(binaries.initdb, root.path().join("13/bin/initdb"));
        Ok(())
    }

    #[test]
    fn the_search_path_is_followed_through_symlinks() -> TestResult {
        let temp = tempfile::tempdir_in("/tmp")?;
        let real = temp.path().join("lib/bin");
        fake_tools(&real, &["initdb", "pg_ctl", "postgres"])?;
        let linked = temp.path().join("bin");
        std::fs::create_dir_all(&linked)?;
        std::os::unix::fs::symlink(real.join("pg_ctl"), linked.join("pg_ctl"))?;
        let search_path = std::env::join_paths([Path::new("/nonexistent"), linked.as_path()])?;
        let binaries = find_binaries_in(Some(search_path.as_os_str()), Path::new("/nonexistent"))?;
        let real = std::fs::canonicalize(&real)?;
        assert_eq!(binaries.pg_ctl, real.join("pg_ctl"));
        Ok(())
    }

    #[test]
    fn passwd_lines_give_uid_and_gid_but_never_root() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      postgres:x:101:104:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash\n\
                      evil:x:0:0::/:/bin/sh\n";
        assert_eq!(passwd_ids(passwd, "postgres"), Some((101, 104)));
        assert_eq!(passwd_ids(passwd, "nobody"), None);
        assert_eq!(passwd_ids(passwd, "evil"), None);
        assert_eq!(passwd_ids(passwd, "post"), None);
    }

    #[test]
    fn short_plain_folders_get_the_socket_and_others_none() {
        let short = server_options(Path::new("/srv/siteward/postgres"), 5432);
        assert!(
            short.contains("unix_socket_directories='/srv/siteward/postgres'"),
            "{short}"
        );
        assert!(
            short.starts_with("-p 5432 -c listen_addresses=127.0.0.1 "),
            "{short}"
        );

        let long_dir = format!("/srv/{}", "x".repeat(100));
        let long = server_options(Path::new(&long_dir), 5432);
        assert!(long.ends_with("unix_socket_directories=''"), "{long}");

        let spaced = server_options(Path::new("/home/Jane Doe/postgres"), 5432);
        assert!(spaced.ends_with("unix_socket_directories=''"), "{spaced}");
    }

    #[test]
    fn error_details_hide_the_password_and_keep_the_last_two_kilobytes_on_one_line() {
        let password = SecretString::from("0123abcd".to_string());
        let text = format!("{}\nFATAL: bad password 0123abcd\n", "é".repeat(3000));
        let detail = clean_detail(&text, &password);
        assert!(!detail.contains("0123abcd"), "{detail}");
        assert!(
            detail.ends_with("FATAL: bad password [password]"),
            "{detail}"
        );
        assert!(detail.starts_with('…'));
        assert!(detail.len() <= OUTPUT_TAIL_BYTES + '…'.len_utf8() + " | ".len());
        assert!(!detail.contains('\n'));
    }

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(parse_version("15"), Some(vec![15]));
        assert_eq!(parse_version("9.6"), Some(vec![9, 6]));
        assert_eq!(parse_version("main"), None);
        assert!(parse_version("10") > parse_version("9.6"));
    }
}
