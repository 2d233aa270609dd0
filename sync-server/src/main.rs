//! `anjian-sync-server`: run the server, or administer its users and devices.

use std::path::PathBuf;

use anjian_core::Role;
#[cfg(feature = "demo")]
use anjian_sync_server::demo;
use anjian_sync_server::evidence;
use anjian_sync_server::users::NewUser;
use anjian_sync_server::{AppError, AppResult, Settings, Storage};
use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: anjian_sync_server::memory::Allocator = anjian_sync_server::memory::ALLOCATOR;

#[derive(Parser)]
#[command(
    name = "anjian-sync-server",
    about = "安检 Anjian sync server",
    version
)]
struct Cli {
    /// A TOML settings file (defaults, then this file, then ANJIAN_* variables, then flags).
    #[arg(long, global = true, env = "ANJIAN_CONFIG")]
    config: Option<PathBuf>,
    /// Data folder (database and blobs).
    #[arg(long, global = true)]
    data: Option<PathBuf>,
    /// The database, when not `server.db` in the data folder: `postgres://user@host/db`
    /// (shared by any number of server processes) or a SQLite file.
    #[arg(long, global = true)]
    database: Option<String>,
    /// Where stored blobs are kept, when not in `blobs/` in the data folder:
    /// `s3://bucket/prefix?endpoint=URL` (an S3-compatible object store, credentials in
    /// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) or a folder.
    #[arg(long, global = true)]
    blobs: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the server.
    Serve {
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// On a fresh data folder: create demo accounts (printed with their passwords) and,
        /// while serving, a few days of sample cases synced by simulated inspectors.
        #[cfg(feature = "demo")]
        #[arg(long)]
        demo: bool,
    },
    /// Manages user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manages devices bound to users.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Manages devices' sign-in tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Evidence packages anyone can verify (docs/EVIDENCE.md).
    #[command(subcommand)]
    Evidence(EvidenceCommand),
}

#[derive(Subcommand)]
enum EvidenceCommand {
    /// Writes the evidence package of a case: every change with its device signature and
    /// the server's receipt, the authors' keys, devices and certificates, the server's
    /// public key and the photos' hashes.
    Export {
        /// The case id.
        case: String,
        /// Include the photos' bytes (originals and thumbnails the server holds).
        #[arg(long)]
        photos: bool,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Prints the server's public key (algorithm and hex), which verifiers of its evidence
    /// packages pin: publish it where they can compare.
    Key,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Adds a user.
    Add {
        /// Sign-in name.
        #[arg(long)]
        username: String,
        /// Full name.
        #[arg(long)]
        name: String,
        /// inspector, supervisor or admin.
        #[arg(long)]
        role: String,
        /// 6-digit district code.
        #[arg(long)]
        district: String,
        /// Department.
        #[arg(long, default_value = "应急管理")]
        department: String,
        /// Password (at least 8 characters); read from ANJIAN_PASSWORD if not given.
        #[arg(long, env = "ANJIAN_PASSWORD", hide_env_values = true)]
        password: String,
    },
    /// Records a user's enforcement certificate (执法证): its number and the last day it
    /// is valid. An inspector signs enforcement documents with it.
    Certify {
        /// Sign-in name.
        username: String,
        /// The certificate's number (执法证号).
        #[arg(long)]
        number: String,
        /// The last day it is valid (YYYY-MM-DD).
        #[arg(long)]
        valid_until: chrono::NaiveDate,
    },
    /// Lists users.
    List,
    /// Disables a user: their tokens are revoked and their browser sessions end (enabling
    /// them again brings none back).
    Disable {
        /// Sign-in name.
        username: String,
    },
    /// Enables a disabled user.
    Enable {
        /// Sign-in name.
        username: String,
    },
    /// Lets the server keep refusals of a user's changes again once it kept as many as
    /// `limits.refusals_per_user` allows: those kept stay final, and no longer count
    /// against the user.
    RefusalsClear {
        /// Sign-in name.
        username: String,
    },
    /// Sets a new password and revokes the user's tokens.
    ResetPassword {
        /// Sign-in name.
        username: String,
        /// The new password; read from ANJIAN_PASSWORD if not given.
        #[arg(long, env = "ANJIAN_PASSWORD", hide_env_values = true)]
        password: String,
    },
}

#[derive(Subcommand)]
enum DeviceCommand {
    /// Lists devices.
    List {
        /// Only this user's devices.
        #[arg(long)]
        user: Option<String>,
    },
    /// Revokes a device: its changes are refused and its open connections closed from
    /// now on.
    Revoke {
        /// The device's actor id (hex).
        actor_id: String,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Lists tokens (newest first) with their device, expiry and state.
    List {
        /// Only this user's tokens.
        #[arg(long)]
        user: Option<String>,
    },
    /// Revokes a token: the device must sign in again; its open connections close.
    Revoke {
        /// The token's id, as `token list` shows it.
        id: String,
    },
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    // The demo's simulated phones run the inspectors' engine in this process; its per-write
    // messages would bury the accounts table and the server's own log.
    let default_filter = match cli.command {
        #[cfg(feature = "demo")]
        Command::Serve { demo: true, .. } => "info,anjian_core=warn",
        _ => "info",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_filter.into()),
        )
        .init();
    if let Err(e) = run(cli).await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> AppResult<()> {
    let mut settings = Settings::load(cli.config.as_deref())?;
    if let Some(data) = cli.data {
        settings.data = data;
    }
    if let Some(database) = cli.database {
        settings.database = Some(database);
    }
    if let Some(blobs) = cli.blobs {
        settings.blobs = Some(blobs);
    }
    match cli.command {
        Command::Serve {
            listen,
            #[cfg(feature = "demo")]
            demo,
        } => {
            if let Some(listen) = listen {
                settings.listen = listen;
            }
            let listener = tokio::net::TcpListener::bind(settings.listen)
                .await
                .map_err(|e| {
                    AppError::Internal(format!("cannot listen on {}: {e}", settings.listen))
                })?;
            let address = listener
                .local_addr()
                .map_err(|e| AppError::Internal(e.to_string()))?;
            let database = settings.database();
            let blobs = settings
                .blobs
                .clone()
                .unwrap_or_else(|| settings.data.join("blobs").display().to_string());
            tracing::info!(%address, data = %settings.data.display(), %database, %blobs, "anjian sync server listening");
            println!(
                "安检 Anjian sync server on http://{address} (data in {}, database {database}, blobs {blobs})",
                settings.data.display()
            );
            #[cfg(feature = "demo")]
            if demo {
                start_demo(&settings, address)?;
            }
            anjian_sync_server::serve(settings, listener, shutdown_signal()).await
        }
        Command::User(command) => {
            let storage = open_storage(&settings)?;
            match command {
                UserCommand::Add {
                    username,
                    name,
                    role,
                    district,
                    department,
                    password,
                } => {
                    let district = district
                        .parse()
                        .map_err(|e: anjian_core::Error| AppError::BadRequest(e.to_string()))?;
                    let user = storage.add_user(&NewUser {
                        username: &username,
                        name: &name,
                        role: role.parse::<Role>()?,
                        district: &district,
                        department: &department,
                        password: &password,
                    })?;
                    println!(
                        "added {} ({}, {}, {})",
                        user.username, user.role, user.district, user.department
                    );
                }
                UserCommand::Certify {
                    username,
                    number,
                    valid_until,
                } => {
                    storage.set_enforcement_certificate(&username, &number, valid_until)?;
                    println!("{username}: 执法证号 {number}, valid until {valid_until}");
                }
                UserCommand::List => {
                    for u in storage.users()? {
                        let state = if u.disabled { "disabled" } else { "active" };
                        let certificate = storage
                            .enforcement_certificate(&u.username)?
                            .map(|c| format!("{} (to {})", c.number, c.valid_until))
                            .unwrap_or_default();
                        println!(
                            "{}\t{}\t{}\t{}\t{}\t{state}\t{certificate}",
                            u.username, u.name, u.role, u.district, u.department
                        );
                    }
                }
                UserCommand::Disable { username } => {
                    storage.set_disabled(&username, true)?;
                    println!("disabled {username}");
                }
                UserCommand::Enable { username } => {
                    storage.set_disabled(&username, false)?;
                    println!("enabled {username}");
                }
                UserCommand::RefusalsClear { username } => {
                    let cleared = storage.clear_refusals(&username)?;
                    println!(
                        "{cleared} refused changes of {username} no longer count against them"
                    );
                }
                UserCommand::ResetPassword { username, password } => {
                    storage.reset_password(&username, &password)?;
                    println!("password of {username} reset; their devices must sign in again");
                }
            }
            Ok(())
        }
        Command::Device(command) => {
            let storage = open_storage(&settings)?;
            match command {
                DeviceCommand::List { user } => {
                    for d in storage.devices(user.as_deref())? {
                        let state = d
                            .revoked_at
                            .map(|t| format!("revoked {t}"))
                            .unwrap_or_else(|| "active".into());
                        println!(
                            "{}\t{}\t{}\t{}\t{state}",
                            d.actor_id, d.username, d.name, d.created_at
                        );
                    }
                }
                DeviceCommand::Revoke { actor_id } => {
                    storage.revoke_device(&actor_id)?;
                    println!("revoked {actor_id}");
                }
            }
            Ok(())
        }
        Command::Token(command) => {
            let storage = open_storage(&settings)?;
            match command {
                TokenCommand::List { user } => {
                    let now = chrono::Utc::now().timestamp();
                    for t in storage.tokens(user.as_deref())? {
                        let expires = chrono::DateTime::from_timestamp(t.expires_at, 0)
                            .map(|at| at.to_rfc3339())
                            .unwrap_or_default();
                        let state = match (&t.revoked_at, t.expires_at <= now) {
                            (Some(at), _) => format!("revoked {at}"),
                            (None, true) => "expired".to_owned(),
                            (None, false) => "active".to_owned(),
                        };
                        println!(
                            "{}\t{}\t{}\t{}\t{}\texpires {expires}\t{state}",
                            t.id, t.username, t.actor_id, t.device, t.created_at
                        );
                    }
                }
                TokenCommand::Revoke { id } => {
                    storage.revoke_token(&id)?;
                    println!("revoked token {id}");
                }
            }
            Ok(())
        }
        Command::Evidence(EvidenceCommand::Key) => {
            use anjian_core::signing::Signer;
            let key = open_storage(&settings)?.server_key().public_key();
            println!("{} {}", key.algorithm().code(), hex::encode(key.bytes()));
            Ok(())
        }
        Command::Evidence(EvidenceCommand::Export { case, photos, out }) => {
            let storage = open_storage(&settings)?;
            let case: anjian_core::CaseId = case
                .parse()
                .map_err(|e: anjian_core::Error| AppError::BadRequest(e.to_string()))?;
            let blobs = anjian_sync_server::blob_store::BlobStore::open(
                settings.blobs.as_deref(),
                &settings.data,
            )?;
            let photos = if photos {
                evidence::Photos::Included { limit: None }
            } else {
                evidence::Photos::Hashes
            };
            // Reading blobs from an object store waits on the network: off the async thread.
            let package = tokio::task::spawn_blocking(move || {
                evidence::export(&storage, &blobs, case, photos)
            })
            .await
            .map_err(|e| AppError::Internal(format!("the evidence package: {e}")))??;
            match out {
                Some(path) => {
                    std::fs::write(&path, &package).map_err(|e| {
                        AppError::Internal(format!("writing {}: {e}", path.display()))
                    })?;
                    eprintln!(
                        "wrote the evidence package of case {case} to {} ({} bytes)",
                        path.display(),
                        package.len()
                    );
                }
                None => {
                    use std::io::Write;
                    std::io::stdout()
                        .write_all(&package)
                        .map_err(|e| AppError::Internal(format!("writing the package: {e}")))?;
                }
            }
            Ok(())
        }
    }
}

#[cfg(feature = "demo")]
/// `serve --demo`: on a fresh data folder creates the demo accounts, prints them, and
/// seeds the sample cases in the background once the server is serving; otherwise says
/// why nothing is added. A seeding failure is logged and leaves the server running.
fn start_demo(settings: &Settings, address: std::net::SocketAddr) -> AppResult<()> {
    let data = &settings.data;
    let accounts = match demo::prepare(data, &settings.database())? {
        demo::Prepared::Accounts(accounts) => accounts,
        demo::Prepared::NotFresh(reason) => {
            println!("{reason}");
            return Ok(());
        }
    };
    // The simulated devices reach the server over loopback when it listens on every
    // interface.
    let mut local = address;
    match local.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            local.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            local.set_ip(std::net::Ipv6Addr::LOCALHOST.into());
        }
        _ => {}
    }
    print!(
        "{}",
        demo::accounts_table(&accounts, &format!("http://{local}/"))
    );
    println!("正在生成演示数据…… (recording sample cases in the background)");
    let data = data.to_owned();
    // The simulated phones write their SQLite stores with blocking calls, as phones do; on a
    // thread and runtime of their own they never hold up the server's workers.
    std::thread::Builder::new()
        .name("demo".into())
        .spawn(move || {
            let seeded = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| AppError::Internal(format!("demo runtime: {e}")))
                .and_then(|runtime| {
                    runtime.block_on(demo::seed(&format!("http://{local}"), &data, &accounts))
                });
            match seeded {
                Ok(summary) => println!("演示数据已就绪 (demo data ready)：{summary}"),
                Err(e) => {
                    tracing::error!(error = %e, "the demo data could not be made; the server keeps running");
                    println!("演示数据生成失败 (demo data failed)：{e}");
                }
            }
        })
        .map_err(|e| AppError::Internal(format!("demo thread: {e}")))?;
    Ok(())
}

fn open_storage(settings: &Settings) -> AppResult<Storage> {
    std::fs::create_dir_all(&settings.data)
        .map_err(|e| AppError::Internal(format!("data folder {}: {e}", settings.data.display())))?;
    Storage::open(&settings.database())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
