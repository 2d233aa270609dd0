//! Who is in the simulated district: three districts, five inspectors with a phone each,
//! a supervisor per district and an admin; the server's accounts are made once per
//! process (passwords are slow to hash on purpose) and copied for every schedule.

use std::path::Path;
use std::sync::OnceLock;

use anjian_core::{DistrictCode, Identity, Role};
use anjian_sync_server::Storage;
use anjian_sync_server::storage::Database;
use anjian_sync_server::users::NewUser;

/// The districts.
pub const DISTRICTS: [&str; 3] = ["310101", "310104", "310105"];

/// One inspector: username, district index.
pub const INSPECTORS: [(&str, usize); 5] = [
    ("insp-a1", 0),
    ("insp-a2", 0),
    ("insp-b1", 1),
    ("insp-b2", 1),
    ("insp-c1", 2),
];

/// One supervisor per district, and the admin.
pub const SUPERVISORS: [(&str, usize); 3] = [("sup-a", 0), ("sup-b", 1), ("sup-c", 2)];

/// The password of every account.
pub const PASSWORD: &str = "sim-password-1";

/// A district's code.
pub fn district(index: usize) -> DistrictCode {
    DISTRICTS[index].parse().expect("valid district")
}

/// The identity of inspector `index` on their phone.
pub fn identity(index: usize) -> Identity {
    let (user, d) = INSPECTORS[index];
    Identity {
        user_id: user.to_owned(),
        name: format!("检查员{user}"),
        department: "应急管理".to_owned(),
        district: district(d),
        role: Role::Inspector,
    }
}

/// The fixed actor id of inspector `index`'s phone (bound to them in the accounts).
pub fn device_actor(index: usize) -> uuid::Uuid {
    uuid::Uuid::from_bytes([index as u8 + 1; 16])
}

/// A copy of the accounts for one schedule, in `data`.
pub fn server_data(data: &Path) {
    static TEMPLATE: OnceLock<Vec<u8>> = OnceLock::new();
    let template = TEMPLATE.get_or_init(make_template);
    std::fs::create_dir_all(data).expect("data folder");
    std::fs::write(data.join("server.db"), template).expect("copy the accounts");
}

/// The accounts' database file, made once per process in a folder removed after.
fn make_template() -> Vec<u8> {
    let dir = tempfile::tempdir().expect("template folder");
    let path = dir.path().join("server.db");
    {
        let storage = Storage::open(&Database::Sqlite(path.clone())).expect("storage");
        let add = |username: &str, role: Role, d: usize| {
            storage
                .add_user(&NewUser {
                    username,
                    name: username,
                    role,
                    district: &district(d),
                    department: "应急管理",
                    password: PASSWORD,
                })
                .expect("user");
        };
        for (user, d) in INSPECTORS {
            add(user, Role::Inspector, d);
        }
        for (user, d) in SUPERVISORS {
            add(user, Role::Supervisor, d);
        }
        add("admin", Role::Admin, 0);
        for (index, (user, _)) in INSPECTORS.iter().enumerate() {
            let actor = automerge::ActorId::from(device_actor(index).as_bytes().as_slice());
            storage
                .login(
                    user,
                    PASSWORD,
                    "phone",
                    &actor.to_hex_string(),
                    None,
                    365,
                    anjian_sync_server::config::Limits::default().devices_per_user,
                )
                .expect("bind the phone");
        }
        // A fixed secret: the supervisors' server-side actors are the same in every run.
        storage
            .write(|conn| {
                conn.execute(
                    "UPDATE meta SET value = ?1 WHERE key = 'server_secret'",
                    anjian_sync_server::params![hex_secret()],
                )?;
                Ok(())
            })
            .expect("fix the secret");
    }
    // One file, whatever the journal held.
    let conn = rusqlite::Connection::open(&path).expect("reopen");
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE;")
        .expect("checkpoint");
    drop(conn);
    std::fs::read(&path).expect("read the accounts")
}

fn hex_secret() -> String {
    "5a".repeat(32)
}
