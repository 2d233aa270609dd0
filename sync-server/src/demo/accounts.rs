//! The demo's accounts: three districts of Shanghai, each with a supervisor and inspectors
//! of different departments, plus an administrator; passwords are random per run.

use anjian_core::DistrictCode;
use chrono::NaiveDate;
use rand::Rng;

use crate::error::{AppError, AppResult};
use crate::storage::Storage;
use anjian_core::Role;

use crate::users::NewUser;

/// The demo's districts (黄浦区, 徐汇区, 浦东新区; their names come from the core's table of
/// districts).
pub const DISTRICTS: &[&str] = &["310101", "310104", "310115"];

/// The demo's people: username, name, role, district, department.
const PEOPLE: &[(&str, &str, Role, &str, &str)] = &[
    ("admin", "系统管理员", Role::Admin, "310101", "应急管理"),
    (
        "chenjianguo",
        "陈建国",
        Role::Supervisor,
        "310101",
        "应急管理",
    ),
    ("zhangwei", "张伟", Role::Inspector, "310101", "应急管理"),
    ("liuyang", "刘洋", Role::Inspector, "310101", "消防"),
    ("zhaomin", "赵敏", Role::Inspector, "310101", "住建"),
    ("sunlihua", "孙丽华", Role::Supervisor, "310104", "应急管理"),
    ("wangqiang", "王强", Role::Inspector, "310104", "应急管理"),
    ("zhoujie", "周杰", Role::Inspector, "310104", "燃气"),
    (
        "huangzhiming",
        "黄志明",
        Role::Supervisor,
        "310115",
        "应急管理",
    ),
    ("lina", "李娜", Role::Inspector, "310115", "应急管理"),
    ("wujun", "吴军", Role::Inspector, "310115", "消防"),
    ("xugang", "徐刚", Role::Inspector, "310115", "住建"),
];

/// Characters of generated passwords: letters and digits that cannot be misread for one
/// another (no 0/O, 1/l/I); no symbols, so that a double click selects a whole password.
const PASSWORD_ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// Length of generated passwords: about 93 bits from the alphabet above.
const PASSWORD_LENGTH: usize = 16;

/// A demo account as created, with its password in clear (shown once; `Debug` leaves it
/// out, so that a log line never carries it).
#[derive(Clone)]
pub struct DemoAccount {
    /// Sign-in name.
    pub username: String,
    /// Full name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// District.
    pub district: DistrictCode,
    /// Department.
    pub department: String,
    /// The password generated for this run.
    pub password: String,
}

impl std::fmt::Debug for DemoAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoAccount")
            .field("username", &self.username)
            .field("role", &self.role)
            .field("district", &self.district)
            .field("password", &"…")
            .finish_non_exhaustive()
    }
}

impl DemoAccount {
    /// The district's name (黄浦区 …).
    pub fn district_name(&self) -> &'static str {
        district_name(self.district.as_str())
    }
}

/// The name of a district, or `""` for a code the core's table of districts does not know.
pub fn district_name(code: &str) -> &'static str {
    anjian_core::district_name(code).unwrap_or_default()
}

/// The role as users see it.
pub fn role_label(role: Role) -> &'static str {
    match role {
        Role::Inspector => "执法检查人员",
        Role::Supervisor => "监管负责人",
        Role::Admin => "系统管理员",
    }
}

/// Creates every demo account with a fresh random password.
pub(super) fn create(storage: &Storage) -> AppResult<Vec<DemoAccount>> {
    let mut accounts = Vec::with_capacity(PEOPLE.len());
    for &(username, name, role, district, department) in PEOPLE {
        let district: DistrictCode = district
            .parse()
            .map_err(|e| AppError::Internal(format!("demo district {district}: {e}")))?;
        let password = password();
        let user = storage.add_user(&NewUser {
            username,
            name,
            role,
            district: &district,
            department,
            password: &password,
        })?;
        if role == Role::Inspector {
            // 执法证号: the district's code and the account's number, valid for years.
            let number = format!("{}{:05}", district.as_str(), user.id);
            let valid_until = NaiveDate::from_ymd_opt(2030, 12, 31).expect("a day");
            storage.set_enforcement_certificate(username, &number, valid_until)?;
        }
        accounts.push(DemoAccount {
            username: username.to_owned(),
            name: name.to_owned(),
            role,
            district,
            department: department.to_owned(),
            password,
        });
    }
    Ok(accounts)
}

/// A table of the accounts and where to sign in, for the terminal.
pub fn accounts_table(accounts: &[DemoAccount], url: &str) -> String {
    let header = ["用户名", "姓名", "角色", "辖区", "部门", "密码"];
    let rows: Vec<[String; 6]> = accounts
        .iter()
        .map(|a| {
            [
                a.username.clone(),
                a.name.clone(),
                role_label(a.role).to_owned(),
                format!("{} {}", a.district, a.district_name()),
                a.department.clone(),
                a.password.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(width);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(width(cell));
        }
    }
    let line = |cells: [&str; 6]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell}{}", " ".repeat(w - width(cell))))
            .collect();
        format!("  {}\n", padded.join("  ").trim_end())
    };
    let mut out = String::from("\n演示账号 (demo accounts; the passwords are shown only now):\n\n");
    out.push_str(&line(header));
    out.push_str(&line(
        widths.map(|w| "-".repeat(w)).each_ref().map(String::as_str),
    ));
    for row in &rows {
        out.push_str(&line(row.each_ref().map(String::as_str)));
    }
    out.push_str(&format!(
        "\n用浏览器打开 {url} ，以监管负责人身份登录查看案件 (open the URL and sign in as a supervisor).\n\n"
    ));
    out
}

/// A random password from `PASSWORD_ALPHABET`.
fn password() -> String {
    let mut rng = rand::rng();
    (0..PASSWORD_LENGTH)
        .map(|_| char::from(PASSWORD_ALPHABET[rng.random_range(0..PASSWORD_ALPHABET.len())]))
        .collect()
}

/// Columns a string takes in a terminal: CJK characters take two.
fn width(text: &str) -> usize {
    text.chars().map(|c| if is_wide(c) { 2 } else { 1 }).sum()
}

fn is_wide(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x115F | 0x2E80..=0x303E | 0x3040..=0xA4CF | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF | 0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_long_and_differ_per_call() {
        let (a, b) = (password(), password());
        assert_eq!(a.chars().count(), PASSWORD_LENGTH);
        assert_ne!(a, b);
    }

    #[test]
    fn table_columns_line_up_with_chinese_text() {
        let account = DemoAccount {
            username: "lina".into(),
            name: "李娜".into(),
            role: Role::Inspector,
            district: "310115".parse().expect("district"),
            department: "应急管理".into(),
            password: "abcdefgh".into(),
        };
        let table = accounts_table(&[account], "http://127.0.0.1:8080/");
        let lines: Vec<&str> = table.lines().filter(|l| l.starts_with("  ")).collect();
        assert_eq!(lines.len(), 3, "{table}");
        let password_column: Vec<usize> = lines
            .iter()
            .map(|l| {
                let end = l.rfind(' ').map_or(0, |i| i + 1);
                width(&l[..end])
            })
            .collect();
        assert!(password_column.windows(2).all(|w| w[0] == w[1]), "{table}");
        assert!(table.contains("http://127.0.0.1:8080/"));
    }
}
